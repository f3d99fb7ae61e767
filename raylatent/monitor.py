"""Monitoring besides a run's own files: direction sweeps for TensorBoard, and the opt-in MLflow
and Weights & Biases trackers, and their settings (`monitor:` in a grid, `MonitorConfig`).

Tune stages use Ray's own `MLflowLoggerCallback` / `WandbLoggerCallback`. Ray Train v2 takes no
Tune callbacks, so the generators stage logs each epoch from a Train `UserCallback` (it runs in
the Train controller, which outlives restarted workers) through `EpochTracker` below. Offline by
default: MLflow writes a local store (`file:` URIs need `MLFLOW_ALLOW_FILE_STORE` since MLflow 3,
set here), W&B runs with `mode=offline` (and `WANDB_MODE`, which Ray checks before asking for an
API key), and `wandb sync` uploads later if wanted.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

from raylatent.errors import ConfigError, check_ranges as _check_ranges

SWEEP_SHIFTS = 5  # columns of a sweep image: -shift_scale .. +shift_scale


# the optional packages behind each tracker, and the extra that installs them
MONITOR_EXTRAS = {"mlflow": ("mlflow", "mlflow"), "wandb_project": ("wandb", "wandb")}
WANDB_MODES = ("offline", "online", "disabled")


def _mlflow_uri(uri: str) -> str:
    """An MLflow tracking URI with any local path made absolute: Tune logs from the driver but
    Train from its controller actor, whose working directory may differ, so `file:./mlruns`
    must name the same folder in both."""
    from urllib.parse import urlparse

    scheme = urlparse(uri).scheme
    if scheme in ("http", "https", "sqlite", "databricks", "postgresql", "mysql"):
        return uri
    if scheme == "file":
        path = urlparse(uri).path or "."
    elif scheme and len(scheme) > 1:  # a Windows drive letter parses as a one-letter scheme
        raise ConfigError(f"monitor.mlflow {uri!r}: a file: URI or a folder (offline), sqlite:///FILE, or an "
                          f"http(s):// tracking server")
    else:
        path = uri
    return Path(path).expanduser().resolve().as_uri()


@dataclass
class MonitorConfig:
    """Where a run reports besides its own files: TensorBoard always (under RUN_DIR, one command
    shows every stage); MLflow and Weights & Biases only when asked, through Ray's own Tune
    callbacks and a Train callback. Nothing here changes what a stage computes, so no stage key
    holds it."""

    mlflow: str = ""             # tracking URI (file:./mlruns works offline); empty = off
    experiment: str = ""         # MLflow experiment / W&B group prefix; empty = the grid's name
    wandb_project: str = ""      # empty = off
    wandb_mode: str = "offline"  # offline never touches the network (`wandb sync` uploads later)
    sweep_directions: int = 4    # directions per TensorBoard sweep image of a Tune trial (0 = none)
    sweep_latents: int = 1       # latents per sweep (one image each)

    def __post_init__(self) -> None:
        import importlib.util

        if self.wandb_mode not in WANDB_MODES:
            raise ConfigError(f"monitor.wandb_mode {self.wandb_mode!r}: one of {', '.join(WANDB_MODES)} "
                              f"(offline never uses the network)")
        _check_ranges(self, "monitor", {"sweep_directions": (0, 64), "sweep_latents": (1, 16)})
        for name, (module, extra) in MONITOR_EXTRAS.items():
            if getattr(self, name) and importlib.util.find_spec(module) is None:
                raise ConfigError(f"monitor.{name}: the {module} package is not installed; "
                                  f"pip install 'raylatent[{extra}]' (or leave monitor.{name} empty)")
        if self.mlflow:
            self.mlflow = _mlflow_uri(self.mlflow)

    @property
    def trackers(self) -> list[str]:
        return [n for n, on in (("mlflow", self.mlflow), ("wandb", self.wandb_project)) if on]


SERVER_TIMEOUT_S = 5  # a tracking server that does not answer in this long is reported, not waited for


def check_reachable(cfg: MonitorConfig | None, timeout: float = SERVER_TIMEOUT_S) -> None:
    """Before any work: an http(s) MLflow server must accept a connection within `timeout` (a closed
    port used to mean minutes of silent retries and then a traceback)."""
    import socket

    from urllib.request import getproxies, proxy_bypass

    if cfg is None or not cfg.mlflow or urlparse(cfg.mlflow).scheme not in ("http", "https"):
        return
    u = urlparse(cfg.mlflow)
    try:
        port = u.port or (443 if u.scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"monitor.mlflow {cfg.mlflow}: not a valid port; give http(s)://host:port") from None
    if not u.hostname:
        raise ConfigError(f"monitor.mlflow {cfg.mlflow}: no host; give http(s)://host:port")
    if u.scheme in getproxies() and not proxy_bypass(u.hostname):
        return  # reached through a proxy: a direct connection says nothing (MLflow's own timeouts hold)
    try:
        socket.create_connection((u.hostname, port), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(f"monitor.mlflow {cfg.mlflow}: no tracking server answers at {u.hostname}:{port} "
                          f"({type(e).__name__}, {timeout:g} s); start it, or set monitor.mlflow to a folder "
                          f"(file:./mlruns) or leave it empty") from None


def prepare_env(cfg: MonitorConfig) -> None:
    """Environment the trackers read in this process (the driver, or Train's controller)."""
    if cfg.mlflow and urlparse(cfg.mlflow).scheme in ("http", "https"):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")  # MLflow's defaults: 120 s, 7 retries
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    if cfg.mlflow and urlparse(cfg.mlflow).scheme == "file":
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses its file store otherwise
    if cfg.wandb_project:
        os.environ["WANDB_MODE"] = cfg.wandb_mode  # Ray skips its API-key check only when offline/disabled
        os.environ.setdefault("WANDB_SILENT", "true")


def tune_callbacks(cfg: MonitorConfig | None, stage: str) -> list:
    """Ray Tune's own tracker callbacks for a Tune stage (`directions`, `search`): one MLflow run
    / W&B run per trial, named like the trial, in the experiment `<experiment>-<stage>`."""
    if cfg is None or not cfg.trackers:
        return []
    prepare_env(cfg)
    name = f"{cfg.experiment}-{stage}"
    out = []
    if cfg.mlflow:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        out.append(MLflowLoggerCallback(tracking_uri=cfg.mlflow, experiment_name=name,
                                        tags={"stage": stage}, save_artifact=False))
    if cfg.wandb_project:
        from ray.air.integrations.wandb import WandbLoggerCallback

        # the logging actor runs in the trial's folder: offline runs land in <trial>/wandb/
        out.append(WandbLoggerCallback(project=cfg.wandb_project, group=name, mode=cfg.wandb_mode))
    return out


class EpochTracker:
    """One MLflow run and/or W&B run for one trained generator, one step per epoch (counted
    from 1, as the console and TensorBoard do). Picklable until the first `log` (Ray ships it to
    the Train controller inside a callback); the clients are made there, on first use."""

    def __init__(self, cfg: MonitorConfig, kind: str, epochs: int, folder: str | None = None):
        self.cfg, self.kind, self.epochs, self.folder = cfg, kind, epochs, folder  # folder: W&B's offline files
        self._mlflow = self._wandb = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_mlflow": None, "_wandb": None}

    def _start(self) -> None:
        prepare_env(self.cfg)
        name, stage = f"train-{self.kind}", f"{self.cfg.experiment}-generators"
        if self.cfg.mlflow and self._mlflow is None:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(self.cfg.mlflow)
            exp = client.get_experiment_by_name(stage)
            exp_id = exp.experiment_id if exp else client.create_experiment(stage)
            run = client.create_run(exp_id, run_name=name, tags={"stage": "generators", "kind": self.kind})
            self._mlflow = (client, run.info.run_id)
        if self.cfg.wandb_project and self._wandb is None:
            import wandb

            self._wandb = wandb.init(project=self.cfg.wandb_project, group=stage, name=name, mode=self.cfg.wandb_mode,
                                     dir=self.folder, reinit=True, config={"kind": self.kind, "epochs": self.epochs})

    def log(self, metrics: dict) -> None:
        scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        step = int(metrics["epoch"]) + 1
        self._start()
        if self._mlflow:
            from mlflow.entities import Metric

            client, run_id = self._mlflow
            ts = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric(k, v, ts, step) for k, v in scalars.items()])
        if self._wandb:
            self._wandb.log(scalars, step=step)
        if step >= self.epochs:  # Train v2's callbacks have no end-of-run hook: the last epoch closes
            self.close()

    def close(self, failed: bool = False) -> None:
        if self._mlflow:
            client, run_id = self._mlflow
            client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")
        if self._wandb:
            self._wandb.finish(exit_code=1 if failed else 0)
        self._mlflow = self._wandb = None


# --------------------------------------------------------------------------- TensorBoard sweeps
def sweep_latents(latent_dim: int, n: int, seed: int) -> torch.Tensor:
    """The fixed latents a trial's sweeps start from: the same at every evaluation, so the images
    show the directions changing, not the samples."""
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(10_000 + seed))


def sweep_images(G: torch.nn.Module, arrays: dict, z: torch.Tensor, shift_scale: float,
                 n_dirs: int) -> list[torch.Tensor]:
    """One image (3 x H x W, in [0, 1]) per latent: a row per direction (the first `n_dirs`),
    a column per shift from -shift_scale to +shift_scale (`traversal`, the reporter's own)."""
    from torchvision.utils import make_grid

    from raylatent.discovery.export import traversal
    from raylatent.models.directions import as_arrays

    K = as_arrays(arrays)["A"].shape[1]
    dirs = list(range(min(n_dirs, K)))
    shifts = torch.linspace(-shift_scale, shift_scale, SWEEP_SHIFTS).tolist()
    imgs = traversal(G, arrays, z, shifts, dirs)  # D x S x N x C x H x W, generator range [-1, 1]
    imgs = ((imgs.float() + 1) / 2).clamp(0, 1)
    return [make_grid(imgs[:, :, i].reshape(-1, *imgs.shape[3:]), nrow=len(shifts), padding=1, pad_value=1.0)
            for i in range(z.shape[0])]


__all__ = ["EpochTracker", "prepare_env", "sweep_images", "sweep_latents", "tune_callbacks"]
