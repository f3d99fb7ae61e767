"""The `generators` stage: train the DCGAN and the VAE with Ray Train, keep the best-FID
checkpoint of the last N epochs, write it as a plain weights file with its metrics.

The Ray Train run (`ray_train/train-<kind>/`, the last N epochs' full states with optimisers) is
what an interrupted training resumes from; once the chosen epoch is exported with its metrics,
a rerun skips the kind, so the run is deleted."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from raylatent.errors import ConfigError
from raylatent.models.config import GeneratorsConfig
from raylatent.monitor import MonitorConfig
from raylatent.data.ingest import load_manifest
from raylatent.models.export import METRICS, write_export
from raylatent.train.loops import HISTORY, STATE, train_loop
RAY_TRAIN = "ray_train"  # Ray Train's runs, one per kind: kept only until the kind is exported


def pick_best(candidates: list[tuple[object, dict]]) -> tuple[object, dict]:
    """Lowest FID among (checkpoint, metrics) pairs: the kept last-N epochs."""
    if not candidates:
        raise ValueError("no checkpoints to choose from")
    return min(candidates, key=lambda cm: (cm[1]["fid"], -cm[1]["epoch"]))


def _progress_callback(kind: str, epochs: int):
    """One line per epoch, printed by the Train controller (forwarded to the driver's console)."""
    from ray.train import UserCallback

    from raylatent.models import kind_of

    keys = kind_of(kind).loss_keys

    from raylatent.console import duration

    class EpochLine(UserCallback):
        """`gan epoch 3/22: FID ..., 0.9 s; ETA 40 s`, the ETA from the pace since the first epoch
        reported (the first carries the Train run's start-up)."""

        def __init__(self):
            self.first: tuple[int, float] | None = None

        def after_report(self, run_context, metrics, checkpoint):
            import time

            m = metrics[0] if metrics else {}
            if "fid" in m:
                now, e = time.time(), m["epoch"] + 1
                if self.first is None or e <= self.first[0]:  # the first report, or a restarted run's
                    self.first = (e, now)
                pace = (now - self.first[1]) / (e - self.first[0]) if e > self.first[0] else m["epoch_s"]
                extra = " ".join(f"{k} {m[k]:.4g}" for k in (*keys, "test_recon_mse") if k in m)
                print(f"  {kind} epoch {e}/{epochs}: FID {m['fid']:.2f}, {extra}, {m['epoch_s']:.1f} s"
                      + (f"; ETA {duration(pace * (epochs - e))}" if e < epochs else ""))

    return EpochLine()


def _tracker_callback(kind: str, epochs: int, monitor: MonitorConfig, folder: Path):
    """Each epoch's metrics to MLflow / W&B (monitor: in the grid). Train v2 runs no Tune
    callbacks, so this is a Train `UserCallback`: it runs in the controller, which outlives
    restarted workers, so a retried epoch lands in the same tracker run."""
    from ray.train import UserCallback

    from raylatent.monitor import EpochTracker

    class Tracked(UserCallback):
        def __init__(self):
            self.tracker = EpochTracker(monitor, kind, epochs, str(folder.resolve()))

        def after_report(self, run_context, metrics, checkpoint):
            m = metrics[0] if metrics else {}
            if "fid" in m:  # rank 0's report
                self.tracker.log(m)

    return Tracked()


def _train_dataset(shards, cfg: GeneratorsConfig, in_memory_limit: int = 1 << 30):
    """The train split as a Ray Dataset; materialised in the object store when small, which
    cut the per-epoch start of the streaming read (~1.4 s here) that dominated short epochs."""
    from raylatent.data.shards import read_dataset

    ds = read_dataset(shards, "train", columns=["image"], shuffle_seed=cfg.seed if cfg.shuffle_buffer else None)
    n = load_manifest(shards)["counts"]["train"]
    return ds.materialize() if n * cfg.size * cfg.size * 4 < in_memory_limit else ds


def train_generator(kind: str, shards: str | os.PathLike, cfg: GeneratorsConfig, out: Path,
                    after_epoch=None, log=print, epoch_lines: bool = True,
                    monitor: MonitorConfig | None = None) -> dict:
    """Train one generator (resuming its Ray Train run if one exists) and export the chosen
    checkpoint to out/<kind>/, then delete the Ray Train run (resume no longer needs it).
    `after_epoch(epoch, rank, resumed)`, if given, runs on every worker after each epoch's report
    (it must be picklable). `monitor`: opt-in MLflow / W&B tracking of every epoch."""
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    dest = out / kind
    if (dest / METRICS).exists():
        log(f"generators: {kind} already trained ({dest}); skipping")
        return json.loads((dest / METRICS).read_text())
    n_train = (load_manifest(shards) or {}).get("counts", {}).get("train", 0)
    if n_train < cfg.batch_size * cfg.num_workers:  # every worker needs one full batch per epoch
        raise ConfigError(f"generators.batch_size {cfg.batch_size}: the train split has {n_train} slices, fewer than "
                          f"batch_size x num_workers ({cfg.batch_size} x {cfg.num_workers}); lower "
                          f"generators.batch_size or num_workers, or add data")
    resources = {"CPU": cfg.cpus_per_worker}
    if cfg.use_gpu:
        resources["GPU"] = cfg.gpus_per_worker or 1
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"cfg": asdict(cfg), "kind": kind, "shards": str(Path(shards).resolve()),
                           "after_epoch": after_epoch,
                           "tb_dir": str((out / "tensorboard" / kind).resolve())},
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                                     resources_per_worker=resources),
        run_config=RunConfig(name=f"train-{kind}", storage_path=str((out / RAY_TRAIN).resolve()),
                             checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_last),
                             failure_config=FailureConfig(max_failures=cfg.max_failures),
                             callbacks=([_progress_callback(kind, cfg.epochs)] if epoch_lines else [])
                             + ([_tracker_callback(kind, cfg.epochs, monitor, out)] if monitor and monitor.trackers else []),
                             # "Checkpoint successfully created" per worker per epoch: the driver's
                             # own epoch line says enough
                             logging_config=LoggingConfig(log_level="WARNING")),
        datasets={"train": _train_dataset(shards, cfg)},
    )
    result = trainer.fit()
    ckpt, metrics = pick_best(list(result.best_checkpoints))
    with ckpt.as_directory() as d:
        state = torch.load(os.path.join(d, STATE), map_location="cpu", weights_only=True)
        history = json.load(open(os.path.join(d, HISTORY)))
    full = json.load(open(os.path.join(result.checkpoint.path, HISTORY))) if result.checkpoint else history
    summary = write_export(out, kind, state["model"], state["epoch"], state["config"], {
        "kind": kind, "chosen_epoch": int(state["epoch"]), "fid": metrics["fid"], "fid_network": metrics.get("fid_network"),
        "candidates": [{"epoch": m["epoch"], "fid": m["fid"]} for _, m in result.best_checkpoints],
        "history": full, "config": asdict(cfg)})
    # exported with its metrics: a rerun skips this kind, so the run's checkpoints (keep_last full
    # states with optimisers, ~5x the export each) serve nothing any more
    shutil.rmtree(out / RAY_TRAIN / f"train-{kind}", ignore_errors=True)
    if (out / RAY_TRAIN).is_dir() and not any((out / RAY_TRAIN).iterdir()):
        (out / RAY_TRAIN).rmdir()
    log(f"generators: {kind} chose epoch {summary['chosen_epoch'] + 1}/{cfg.epochs} (FID {summary['fid']:.2f}, "
        f"{summary['fid_network']})")
    return summary  # the same record a skipped rerun returns


def run_generators(shards: str | os.PathLike, cfg: GeneratorsConfig, out: str | os.PathLike,
                   log=print, epoch_lines: bool = True, monitor: MonitorConfig | None = None) -> dict[str, dict]:
    out = Path(out)
    if cfg.fid_weights:  # checked on the driver (one line), not in a Ray worker (a traceback)
        from raylatent.metrics.fid import load_fid_weights

        load_fid_weights(Path(cfg.fid_weights).expanduser())
    out.mkdir(parents=True, exist_ok=True)
    from raylatent.models import kind_of

    return {kind: train_generator(kind, shards, cfg, out, log=log, epoch_lines=epoch_lines, monitor=monitor)
            if kind_of(kind).trainable else write_fixed_generator(kind, shards, cfg, out, log=log)
            for kind in cfg.kinds}


def write_fixed_generator(kind: str, shards, cfg: GeneratorsConfig, out: Path, log=print) -> dict:
    """A kind fixed by construction (the phantom generator): exported as built, no training, no
    FID, so every later stage reads it like a trained one."""
    from raylatent.models import make_generator_from

    dest = out / kind
    if (dest / METRICS).exists():
        return json.loads((dest / METRICS).read_text())
    summary = write_export(out, kind, make_generator_from(kind, cfg).state_dict(), 0, json.dumps(asdict(cfg)), {
        "kind": kind, "trained": False, "chosen_epoch": None, "fid": None, "fid_network": None,
        "candidates": [], "history": [], "config": asdict(cfg)})
    log(f"generators: {kind} is fixed by construction (no training); exported to {dest}")
    return summary


