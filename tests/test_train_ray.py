"""Both generators trained with Ray Train DDP (2 CPU workers) on a tiny phantom set."""
import json
import sys

import pytest
import torch

from raylatent.config import GeneratorsConfig, IngestConfig
from raylatent.models.export import load_generator
from raylatent.train.stage import run_generators, train_generator

pytestmark = pytest.mark.ray

TINY = dict(size=32, gan_width=8, vae_width=4, epochs=3, keep_last=2, batch_size=4,
            fid_samples=32, num_workers=2, cpus_per_worker=0.5, fid_network="fallback",
            lr_vae=1e-3)  # a tiny VAE needs a larger step to show learning in 3 epochs


@pytest.fixture(scope="module")
def shards(tmp_path_factory, ray_session):
    from raylatent.data.ingest import ingest
    from raylatent.data.phantom import PhantomParams, generate

    root = tmp_path_factory.mktemp("train")
    src = generate(root / "ph", PhantomParams(patients=6, slices=12, matrix=64, seed=2), log=lambda *_: None)
    ingest(IngestConfig(src=str(src), out=str(root / "shards"), size=32, test_frac=0.2), log=lambda *_: None)
    return root


def _by_value(fn):
    """Ray workers cannot import this test module: ship the hook by value."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return fn


@_by_value
def fail_after_epoch_1(epoch: int, rank: int, resumed: bool) -> None:
    if epoch == 1 and rank == 0 and not resumed:
        raise RuntimeError("injected failure after epoch 1 (test)")


@_by_value
def stop_after_epoch_1(epoch: int, rank: int, resumed: bool) -> None:
    if epoch == 1 and rank == 0:
        raise RuntimeError("injected interruption after epoch 1 (test)")


def _monitor(shards):
    """MLflow in a local file store when installed (the VAE's run is tracked), else nothing."""
    import importlib.util

    from raylatent.config import MonitorConfig

    if importlib.util.find_spec("mlflow") is None:
        return None
    return MonitorConfig(mlflow=f"file:{shards}/mlruns", experiment="train-test")


@pytest.fixture(scope="module")
def trained(shards):
    out = shards / "gens"
    from raylatent.train.stage import train_generator as tg

    # the GAN run loses a worker after epoch 1: FailureConfig restarts it from the checkpoint
    gan = tg("gan", shards / "shards", GeneratorsConfig(**TINY), out, after_epoch=fail_after_epoch_1, log=lambda *_: None)
    summaries = run_generators(shards / "shards", GeneratorsConfig(**TINY), out, log=lambda *_: None,
                               monitor=_monitor(shards))
    assert summaries["gan"] == gan  # already done: skipped, same record
    return out, summaries


def test_both_finish_with_one_fid_per_epoch_and_best_of_last_n(trained):
    out, summaries = trained
    for kind in ("gan", "vae"):
        s = summaries[kind]
        assert [h["epoch"] for h in s["history"]] == [0, 1, 2]
        assert all(h["fid"] > 0 and "fallback" in h["fid_network"] for h in s["history"])
        last = s["history"][-2:]
        assert s["chosen_epoch"] == min(last, key=lambda h: h["fid"])["epoch"]
        assert sorted(c["epoch"] for c in s["candidates"]) == [1, 2]
        G = load_generator(out, kind)
        assert G(torch.randn(2, 32)).shape[-2:] == (32, 32)


def test_tensorboard_events_per_generator_hold_every_epoch_and_sample_images(trained):
    """Every epoch (counted from 1, as the console does) as scalars and a grid of samples; the
    GAN's run was restarted after epoch 2, so its events come from two writers."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, summaries = trained
    for kind in ("gan", "vae"):
        ea = EventAccumulator(str(out / "tensorboard" / kind), size_guidance={"images": 0, "scalars": 0})
        ea.Reload()
        epochs = list(range(1, len(summaries[kind]["history"]) + 1))
        assert sorted({e.step for e in ea.Scalars(f"{kind}/fid")}) == epochs
        assert sorted({e.step for e in ea.Images(f"{kind}/samples")}) == epochs


def test_ddp_ranks_hold_identical_weights(trained):
    _, summaries = trained
    for kind in ("gan", "vae"):
        assert all(h["ranks_identical"] for h in summaries[kind]["history"])


def test_failed_worker_was_restarted_from_its_checkpoint(trained):
    _, summaries = trained
    starts = [h["started_at_epoch"] for h in summaries["gan"]["history"]]
    assert starts == [0, 0, 2]  # epochs 0-1 in the first attempt, epoch 2 after the restart


def test_vae_reconstruction_error_falls(trained):
    _, summaries = trained
    mse = [h["test_recon_mse"] for h in summaries["vae"]["history"]]
    assert mse[-1] < mse[0]


def test_exported_generators_leave_no_ray_train_checkpoints(trained):
    """Once a kind is exported with its metrics a rerun skips it: its Ray Train run (keep_last full
    states with optimisers) is deleted, the export and TensorBoard events stay."""
    out, summaries = trained
    assert not (out / "ray_train").exists()
    for kind in ("gan", "vae"):
        assert (out / kind / "metrics.json").exists() and (out / kind / "generator.pt").exists()
        assert any((out / "tensorboard" / kind).iterdir())


def test_vae_epochs_reach_mlflow_through_the_train_callback(trained, shards, monkeypatch):
    mlflow = pytest.importorskip("mlflow", reason="mlflow not installed (pip install 'raylatent[mlflow]')")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # to read it here (the controller set it for itself)
    out, summaries = trained
    m = _monitor(shards)
    mlflow.set_tracking_uri(m.mlflow)
    (run,) = mlflow.search_runs(experiment_names=["train-test-generators"], output_format="list")
    assert run.info.run_name == "train-vae" and run.info.status == "FINISHED"
    fid = mlflow.tracking.MlflowClient(m.mlflow).get_metric_history(run.info.run_id, "fid")
    epochs = [h["epoch"] + 1 for h in summaries["vae"]["history"]]
    assert sorted(x.step for x in fid) == epochs  # one point per epoch, counted from 1
    assert [x.value for x in sorted(fid, key=lambda x: x.step)] == [h["fid"] for h in summaries["vae"]["history"]]


def test_interrupted_training_resumes_at_the_next_epoch(shards):
    """A run stopped after epoch 1 (no retries left) keeps its Ray Train checkpoints; the rerun
    continues at epoch 2 from them, exports, and only then deletes them."""
    out = shards / "gens-interrupted"
    cfg = GeneratorsConfig(**{**TINY, "max_failures": 0})
    with pytest.raises(Exception, match="injected interruption after epoch 1"):  # that failure, no other
        train_generator("vae", shards / "shards", cfg, out, after_epoch=stop_after_epoch_1, log=lambda *_: None)
    assert not (out / "vae" / "metrics.json").exists() and any((out / "ray_train" / "train-vae").glob("checkpoint_*"))
    s = train_generator("vae", shards / "shards", cfg, out, log=lambda *_: None)
    assert [h["epoch"] for h in s["history"]] == list(range(cfg.epochs))
    assert [h["started_at_epoch"] for h in s["history"]] == [0, 0, 2]
    assert json.loads((out / "vae" / "metrics.json").read_text())["chosen_epoch"] in (1, 2)
    assert not (out / "ray_train").exists()
