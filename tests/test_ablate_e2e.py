"""The study end to end on a reduced phantom (phantom -> shards -> generators -> Tune -> report),
then resume, retry and a two-node cluster on the same run directory."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raylatent.ablate import main as ablate_main
from raylatent.config import load_grid

pytestmark = pytest.mark.ray

REDUCED = [
    "data.patients=6", "data.slices=10", "data.matrix=64", "data.size=32", "data.test_frac=0.2",
    "generators.epochs=2", "generators.keep_last=1", "generators.gan_width=8", "generators.vae_width=4",
    "generators.batch_size=8", "generators.fid_samples=32", "generators.fid_network=fallback",
    "directions.iterations=[{reconstructor: lenet, steps: 30}, {reconstructor: resnet, steps: 6}]",
    "directions.batch=8", "directions.eval_every=10", "directions.eval_n=32", "directions.cpus_per_trial=0.5",
    "directions.recon_width=0.5",
]


def _sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("ablate")
    args = ["--grid", "smoke", "--out", str(root / "run"), "--report-dir", str(root / "report"), *_sets(REDUCED)]
    t = time.time()
    assert ablate_main(args) == 0
    return root, args, time.time() - t


def test_results_have_every_configuration(smoke_run):
    root, _, _ = smoke_run
    records = json.loads((root / "report" / "results.json").read_text())
    grid = load_grid("smoke", REDUCED)
    want = {(t["generator"], t["reconstructor"], t["deformator"], t["K"], t["seed"]) for t in grid.directions.trials()}
    got = {(r["generator"], r["reconstructor"], r["deformator"], r["K"], r["seed"]) for r in records}
    assert got == want and len(records) == 14
    for r in records:
        assert 0 <= r["rca"] <= 1 and r["ls"] > 0 and r["wall_s"] > 0
        assert r["iterations"] == (30 if r["reconstructor"] == "lenet" else 6)
        assert (root / "run" / "directions").rglob(Path(r["directions"]).name)
    assert (root / "report" / "REPORT.md").exists()
    # TensorBoard event files for every trial
    events = list((root / "run" / "directions").rglob("events.out.tfevents.*"))
    assert len({e.parent.name for e in events}) >= 14


def test_rerun_skips_every_stage(smoke_run, capsys):
    root, args, first = smoke_run
    t = time.time()
    assert ablate_main(args) == 0
    out = capsys.readouterr().out
    assert "nothing to do" in out and "already trained" in out and "exists; skipping" in out
    assert time.time() - t < first / 2


def test_a_failing_trial_is_retried_from_its_checkpoint(smoke_run, tmp_path):
    from raylatent.tune.stage import run_directions

    root, _, _ = smoke_run
    gens = next((root / "run" / "generators").iterdir())
    d = load_grid("smoke", REDUCED + ["directions.generators=[vae]", "directions.reconstructors=[lenet]",
                                      "directions.deformators=[{deformator: unit, K: 8}]",
                                      "directions.random_baseline=false"]).directions
    records = run_directions(gens, d, tmp_path / "dirs", fail_once_at=10, log=lambda *_: None)
    assert len(records) == 1 and records[0]["iterations"] == 30
    curve = json.loads((tmp_path / "dirs" / "trials" / records[0]["trial"] / "curve.json").read_text())
    assert [c["step"] for c in curve] == [10, 20, 30]  # resumed after step 10, not restarted at 0
