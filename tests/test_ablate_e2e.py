"""The study end to end on a reduced phantom (phantom -> shards -> generators -> Tune -> report),
then resume, retry and a two-node cluster on the same run directory."""
import json
import time
from pathlib import Path

import pytest

from ablate_helpers import REDUCED
from raylatent.ablate import main as ablate_main
from raylatent.config import load_grid

pytestmark = pytest.mark.ray


def test_results_have_every_configuration(smoke_run):
    root, _, _ = smoke_run
    records = json.loads((root / "report" / "results.json").read_text())
    grid = load_grid("smoke", REDUCED)
    want = {(t["generator"], t["reconstructor"], t["deformator"], t["K"], t["seed"]) for t in grid.directions.trials()}
    trained = [r for r in records if r["reconstructor"] != "none"]
    got = {(r["generator"], r["reconstructor"], r["deformator"], r["K"], r["seed"]) for r in trained}
    assert got == want and len(trained) == 14
    baselines = sorted((r["generator"], r["deformator"]) for r in records if r["reconstructor"] == "none")
    assert baselines == [("gan", "ganspace"), ("gan", "sefa"), ("vae", "ganspace"), ("vae", "sefa")]
    for r in records:  # every configuration says what its directions do
        assert len(r["labels"]) == r["K"] and set(r["factors"]) == {
            "width", "height", "size", "rotation", "y", "thickness", "breast", "z"}
    for r in trained:
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
                                      "directions.random_baseline=false", "directions.baselines=false"]).directions
    records = run_directions(gens, d, tmp_path / "dirs", fail_once_at=10, log=lambda *_: None)
    assert len(records) == 1 and records[0]["iterations"] == 30
    curve = json.loads((tmp_path / "dirs" / "trials" / records[0]["trial"] / "curve.json").read_text())
    assert [c["step"] for c in curve] == [10, 20, 30]  # resumed after step 10, not restarted at 0
