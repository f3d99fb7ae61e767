"""Monitoring: the `monitor:` grid section, direction sweeps in TensorBoard, MLflow through Tune's
own callback (for real, in a local file store) and finished trials' checkpoints slimmed."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from raylatent.config import ConfigError, MonitorConfig
from raylatent.gridfile import load_grid

HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None
HAS_WANDB = importlib.util.find_spec("wandb") is not None


# --------------------------------------------------------------------------- the config section
def test_monitor_defaults_are_offline_and_off():
    g = load_grid("smoke")
    assert g.monitor.trackers == [] and g.monitor.wandb_mode == "offline"
    assert g.monitor.experiment == g.name  # MLflow experiments / W&B groups named after the grid


@pytest.mark.skipif(not HAS_MLFLOW, reason="mlflow not installed (pip install 'raylatent[mlflow]')")
def test_set_monitor_mlflow_makes_a_relative_store_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    g = load_grid("smoke", ["monitor.mlflow=file:./mlruns", "monitor.experiment=mine"])
    # the Train controller logs from another working directory: the URI must name one folder
    assert g.monitor.mlflow == (tmp_path / "mlruns").resolve().as_uri()
    assert g.monitor.trackers == ["mlflow"] and g.monitor.experiment == "mine"
    assert MonitorConfig(mlflow=str(tmp_path / "x")).mlflow == (tmp_path / "x").as_uri()
    assert MonitorConfig(mlflow="http://127.0.0.1:5000").mlflow == "http://127.0.0.1:5000"


def test_monitor_does_not_change_any_stage_key(tmp_path):
    """Trackers say where a run reports, not what it computes: a run with them reuses every stage."""
    from raylatent.ablate import Plan

    a, b = load_grid("smoke"), load_grid("smoke", ["monitor.sweep_directions=0", "monitor.experiment=x"])
    assert a.to_dict()["monitor"] != b.to_dict()["monitor"]
    pa, pb = Plan(a, tmp_path, tmp_path), Plan(b, tmp_path, tmp_path)
    manifest = {"fingerprint": "f"}
    assert pa.data == pb.data and pa.resolve_generators(manifest, log=lambda *_: None) == \
        pb.resolve_generators(manifest, log=lambda *_: None)


@pytest.mark.parametrize("override, words", [
    ("monitor.wandb_mode=online2", "monitor.wandb_mode 'online2'"),
    ("monitor.mlflow=ftp://host/x", "monitor.mlflow 'ftp://host/x'"),
    ("monitor.sweep_directions=-1", "monitor.sweep_directions"),
    ("monitor.sweep_latents=0", "monitor.sweep_latents"),
    ("monitor.mlflow=3", "monitor.mlflow: expected a string"),
    ("monitor.tracker=x", "monitor.tracker: unknown key"),
])
def test_bad_monitor_settings_are_one_line_errors(override, words):
    with pytest.raises(ConfigError) as e:
        load_grid("smoke", [override])
    assert words in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("field, value, extra", [("mlflow", "file:/tmp/m", "mlflow"), ("wandb_project", "p", "wandb")])
def test_a_missing_tracker_package_names_its_extra(monkeypatch, field, value, extra):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == extra else real(name, *a))
    with pytest.raises(ConfigError, match=rf"monitor.{field}: .*pip install 'raylatent\[{extra}\]'"):
        load_grid("smoke", [f"monitor.{field}={value}"])


# --------------------------------------------------------------------------- callbacks
@pytest.mark.skipif(not HAS_MLFLOW, reason="mlflow not installed (pip install 'raylatent[mlflow]')")
def test_tune_gets_rays_mlflow_callback(tmp_path):
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    from raylatent.monitor import tune_callbacks

    m = MonitorConfig(mlflow=f"file:{tmp_path}/mlruns", experiment="g")
    (cb,) = tune_callbacks(m, "directions")
    assert isinstance(cb, MLflowLoggerCallback)
    assert cb.tracking_uri == m.mlflow and cb.experiment_name == "g-directions" and not cb.should_save_artifact
    assert tune_callbacks(MonitorConfig(), "directions") == [] and tune_callbacks(None, "search") == []


@pytest.mark.skipif(not HAS_WANDB, reason="wandb not installed (pip install 'raylatent[wandb]'); only its config is tested")
def test_tune_gets_rays_wandb_callback_offline(monkeypatch):
    from ray.air.integrations.wandb import WandbLoggerCallback

    from raylatent.monitor import tune_callbacks

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    (cb,) = tune_callbacks(MonitorConfig(wandb_project="p", experiment="g"), "search")
    assert isinstance(cb, WandbLoggerCallback) and cb.kwargs["mode"] == "offline" and cb.group == "g-search"
    import os

    assert os.environ["WANDB_MODE"] == "offline"  # Ray asks for an API key unless this says offline
    cb.setup()  # no key, no network: passes only because the mode is offline


def test_epoch_tracker_pickles_without_clients():
    import pickle

    from raylatent.monitor import EpochTracker

    t = EpochTracker(MonitorConfig(), "gan", 3)
    t._mlflow = object()  # a live client never travels (Ray ships the callback to the controller)
    assert pickle.loads(pickle.dumps(t))._mlflow is None


# --------------------------------------------------------------------------- sweeps and checkpoints
def test_sweep_image_has_a_row_per_direction_and_a_column_per_shift():
    from raylatent.models import DCGANGenerator
    from raylatent.monitor import SWEEP_SHIFTS, sweep_images, sweep_latents

    G = DCGANGenerator(8, 32, 4).eval()
    A = torch.linalg.qr(torch.randn(8, 6))[0]
    z = sweep_latents(8, 2, seed=0)
    assert torch.equal(z, sweep_latents(8, 2, seed=0))  # the same latents at every evaluation
    imgs = sweep_images(G, {"A": A}, z, 6.0, n_dirs=4)
    pad = 1
    assert len(imgs) == 2 and imgs[0].shape == (3, pad + 4 * (32 + pad), pad + SWEEP_SHIFTS * (32 + pad))
    assert imgs[0].min() >= 0 and imgs[0].max() <= 1
    assert sweep_images(G, {"A": A}, z[:1], 6.0, n_dirs=100)[0].shape[1] == pad + 6 * (32 + pad)  # at most K rows


def test_a_slimmed_checkpoint_keeps_what_remeasuring_needs(tmp_path):
    from raylatent.discovery.evaluate import evaluate
    from raylatent.discovery.runner import CKPT, load_checkpoint, run, slim_checkpoint
    from raylatent.discovery.step import Discovery, DiscoveryConfig
    from raylatent.models import DCGANGenerator

    def fresh():
        torch.manual_seed(0)
        return Discovery(DCGANGenerator(8, 32, 4), DiscoveryConfig(K=8, deformator="proj", batch=8, recon_width=0.5,
                                                                   lr=1e-3, seed=7))

    a = fresh()
    run(a, 4, eval_every=4, eval_n=16, checkpoint_dir=tmp_path, checkpoint_every=4)
    full = (tmp_path / CKPT).stat().st_size
    slim_checkpoint(tmp_path)
    assert (tmp_path / CKPT).stat().st_size < 0.5 * full  # Adam's two moments were most of it
    assert torch.load(tmp_path / CKPT, weights_only=True)["opt_R"] is None
    b = fresh()
    assert load_checkpoint(b, tmp_path) and b.step_count == 4
    assert evaluate(b, n=16) == evaluate(a, n=16)
    slim_checkpoint(tmp_path)  # idempotent
    assert load_checkpoint(fresh(), tmp_path)


# --------------------------------------------------------------------------- the directions stage
@pytest.mark.ray
@pytest.mark.skipif(not HAS_MLFLOW, reason="mlflow not installed (pip install 'raylatent[mlflow]')")
def test_directions_stage_logs_to_mlflow_and_tensorboard(tmp_path, ray_session):
    """Two tiny Tune trials on the phantom generator: every evaluation reaches MLflow's file store
    (through Ray's MLflowLoggerCallback) and each trial's TensorBoard run (curve and sweep
    images); finished trials keep records, directions and slimmed checkpoints."""
    import mlflow
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from raylatent.config import DirectionsConfig, GeneratorsConfig
    from raylatent.discovery.records import RECORD
    from raylatent.discovery.runner import CKPT
    from raylatent.train.stage import write_fixed_generator
    from raylatent.tune.stage import CURVE_KEYS, TENSORBOARD, run_directions

    gens = tmp_path / "gens"
    write_fixed_generator("phantom", None, GeneratorsConfig(kinds=("phantom",), size=32), gens, log=lambda *_: None)
    d = DirectionsConfig(generators=("phantom",), reconstructors=("lenet",), deformators=({"deformator": "unit", "K": 6},),
                         seeds=(0, 1), iterations=({"steps": 4},), batch=8, eval_every=2, eval_n=16,
                         cpus_per_trial=0.5, recon_width=0.5, random_baseline=False, baselines=False, chance_pool=4)
    monitor = MonitorConfig(mlflow=f"file:{tmp_path}/mlruns", experiment="t", sweep_directions=3, sweep_latents=2)
    out = tmp_path / "dirs"
    records = run_directions(gens, d, out, monitor=monitor, log=lambda *_: None, trial_lines=False)
    trials = d.trials()
    steps = list(range(d.eval_every, trials[0].steps + 1, d.eval_every))
    # the trials, and beside them the positive controls (computed once per generator, never tracked)
    assert sorted(r["trial"] for r in records if r["reconstructor"] != "none") == sorted(t.name for t in trials)
    assert sorted(r["deformator"] for r in records if r["reconstructor"] == "none") == ["axes", "supervised"]

    mlflow.set_tracking_uri(monitor.mlflow)
    runs = mlflow.search_runs(experiment_names=["t-directions"], output_format="list")
    assert sorted(r.info.run_name for r in runs) == sorted(t.name for t in trials)
    client = mlflow.tracking.MlflowClient(monitor.mlflow)
    for r in runs:
        assert {"rca", "ls", "shift_mae", "step"} <= set(r.data.metrics) and r.info.status == "FINISHED"
        assert [int(m.value) for m in client.get_metric_history(r.info.run_id, "step")] == steps

    for t in trials:
        ea = EventAccumulator(str(out / TENSORBOARD / t.name), size_guidance={"images": 0, "scalars": 0})
        ea.Reload()
        for k in CURVE_KEYS[1:]:
            assert [e.step for e in ea.Scalars(f"directions/{k}")] == steps
        for i in range(monitor.sweep_latents):
            assert [e.step for e in ea.Images(f"sweep/z{i}")] == steps
        folder = out / "trials" / t.name
        assert (folder / RECORD).exists() and torch.load(folder / CKPT, weights_only=True)["opt_R"] is None
    assert json.loads((out / "results.json").read_text())  # the stage finished as before
    assert not list(Path(out).rglob(".discovery.pt.*"))  # no temporary files left behind


def test_an_mlflow_server_that_does_not_answer_is_one_line_before_any_work(tmp_path, capsys):
    import socket
    import time

    import pytest as _pytest

    from raylatent.ablate import main as ablate_main

    _pytest.importorskip("mlflow")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    t = time.time()
    rc = ablate_main(["--grid", "smoke", "--out", str(tmp_path / "run"), "--report-dir", str(tmp_path / "rep"),
                      "--set", f"monitor.mlflow=http://127.0.0.1:{port}"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and f"no tracking server answers at 127.0.0.1:{port}" in err and len(err.splitlines()) == 1
    assert time.time() - t < 30 and not (tmp_path / "run").exists()
