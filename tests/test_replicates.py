"""Generator replicates (`generators.replicates`): each replicate's grid and folders, the dry run's
cost of them, and the main report's table of factors found per replicate."""
import json
import re
from pathlib import Path

import pytest

from raylatent.config import ConfigError
from raylatent.gridfile import load_grid

from test_dryrun import TINY

GRID = TINY.replace("name: tiny-dry", "name: reps").replace("num_workers: 2}", "num_workers: 2, seed: 5, replicates: 3}")


@pytest.fixture
def grid_file(tmp_path):
    p = tmp_path / "reps.yaml"
    p.write_text(GRID)
    return p


def test_each_replicate_reseeds_the_trained_generators_and_keeps_its_own_folders(grid_file, tmp_path):
    from raylatent.ablate import Plan

    grid = load_grid(str(grid_file))
    plan = Plan(grid, tmp_path / "run", tmp_path / "report")
    n = grid.generators.replicates
    subs = [plan.replicate(r) for r in range(n)]
    assert [s.grid.generators.seed for s in subs] == [grid.generators.seed + r for r in range(n)]
    assert all(s.grid.generators.replicates == 1 for s in subs)
    # replicate 1 is the grid itself; the others train only what is trained (the phantom is fixed)
    assert subs[0].grid.generators.kinds == grid.generators.kinds and subs[0].run_dir == plan.run_dir
    for s in subs[1:]:
        assert s.grid.generators.kinds == ("gan",) and s.grid.directions.generators == ("gan",)
    assert len({s.run_dir for s in subs}) == n and len({s.report_dir for s in subs}) == n
    assert all(s.data == plan.data for s in subs)  # one ingest for all
    # a replicate's trials are its grid's: the phantom's trials only in replicate 1
    assert len(subs[1].grid.directions.trials()) < len(subs[0].grid.directions.trials())


def test_replicates_are_validated(grid_file, tmp_path):
    with pytest.raises(ConfigError, match="generators.replicates: 0"):
        load_grid(str(grid_file), ["generators.replicates=0"])
    with pytest.raises(ConfigError, match="a whole number"):
        load_grid(str(grid_file), ["generators.replicates=1.5"])
    with pytest.raises(ConfigError, match="none of directions.generators .phantom. is trained"):
        load_grid(str(grid_file), ["directions.generators=[phantom]"])


def test_dry_run_counts_every_further_replicate(grid_file):
    from raylatent.dryrun import estimate
    from test_dryrun import _cal

    grid = load_grid(str(grid_file))
    one = load_grid(str(grid_file), ["generators.replicates=1"])
    cal = _cal(grid)
    est, est1 = estimate(grid, cal, cpus=2, gpus=0), estimate(one, cal, cpus=2, gpus=0)
    rep = estimate(grid.replicate(1), cal, cpus=2, gpus=0)
    extra = (grid.generators.replicates - 1) * sum(rep["stages"][k] for k in ("generators", "directions", "report"))
    assert est["stages"]["other replicates"] == pytest.approx(extra)
    assert est["total_s"] == pytest.approx(est1["total_s"] + extra)
    assert est["generators_hours"] == pytest.approx(est1["generators_hours"] * grid.generators.replicates)


def _record(gen, method, K, found, seed=0, found_by_K=None):
    from raylatent.interpret.labels import FACTORS

    rec = "lenet" if found_by_K is None else "none"
    name = f"{gen}-{rec}-{method}-K{K}-s{seed}"
    r = {"trial": name, "generator": gen, "reconstructor": rec, "deformator": method, "K": K, "seed": seed,
         "rca": 0.5, "ls": 0.1, "directions": f"trials/{name}/directions.npz",
         "factors": {f: {"found": f in found, "direction": 0, "rho": 0.9, "purity": 0.8, "score": 0.0, "chance": 0.5}
                     for f in FACTORS},
         "factors_found": len(found)}
    if found_by_K is not None:
        r.update(found_by_K=found_by_K, rca=None, ls=None)
    return r


def _replicate_run(root: Path, learned: list[str], random: list[str], supervised: list[str]) -> None:
    (root / "directions" / "x").mkdir(parents=True)
    records = [_record("gan", "proj", 32, learned), _record("gan", "ortho", 32, learned[:1]),
               _record("gan", "random", 32, random),
               _record("gan", "supervised", 8, supervised, found_by_K={"32": supervised})]
    (root / "directions" / "x" / "results.json").write_text(json.dumps(records))
    (root / "latest.json").write_text(json.dumps({"stages": {"directions": "directions/x"}}))


def test_report_shows_factors_found_in_every_replicate(tmp_path):
    from raylatent.report.replicates import REPLICATES, read_replicates, replicates_section

    run = tmp_path / "run"
    _replicate_run(run, ["z", "y", "rotation"], ["width"], ["z", "y", "rotation", "size"])
    _replicate_run(run / "replicates" / "1", ["z"], [], ["z", "y"])
    (run / REPLICATES).write_text(json.dumps([
        {"replicate": 0, "seed": 0, "run_dir": ".", "report": "REPORT.md"},
        {"replicate": 1, "seed": 1, "run_dir": "replicates/1", "report": "replicate-2/REPORT.md"}]))
    reps = read_replicates(run)
    assert [r["counts"]["gan"]["learned"][32] for r in reps] == [3, 1]  # the best learned: proj
    assert [r["counts"]["gan"]["margin"][32] for r in reps] == [2, 1]
    md = re.sub(" +", " ", "\n".join(replicates_section(run)))
    assert "| GAN | best learned | 3 / 1 (range 1–3) |" in md
    assert "| GAN | best learned − random | +2 / +1 (range 1–2) |" in md
    assert "| GAN | supervised (control) | 4 / 2 (range 2–4) |" in md
    assert "[replicate 2](replicate-2/REPORT.md) (seed 1)" in md
    assert replicates_section(run / "replicates" / "1") == []  # a run of one: no section
    (run / "replicates" / "1" / "latest.json").unlink()
    with pytest.raises(ConfigError, match=f"{REPLICATES}: a replicate's run is missing"):
        replicates_section(run)


@pytest.mark.ray
def test_a_grid_with_replicates_runs_each_and_sums_them_up(tmp_path, ray_session):
    """Two replicates of a tiny GAN grid from nothing: each trained with its own seed, each with its
    own directions stage and report, the main report's table reading both; a rerun redoes nothing."""
    from raylatent.ablate import main
    from raylatent.report.replicates import REPLICATES

    grid = tmp_path / "tiny-reps.yaml"
    grid.write_text("""
name: tiny-reps
data: {patients: 4, slices: 6, matrix: 64, size: 32, test_frac: 0.25}
generators: {kinds: [gan], gan_width: 4, epochs: 1, keep_last: 1, batch_size: 8, fid_samples: 16,
             fid_network: fallback, replicates: 2}
directions:
  generators: [gan]
  reconstructors: [lenet]
  deformators: [{deformator: proj, K: 8}]
  iterations: [{steps: 10}]
  eval_every: 10
  eval_n: 16
  batch: 8
  chance_pool: 16
  baselines: false
""")
    run, report = tmp_path / "run", tmp_path / "report"
    args = ["--grid", str(grid), "--out", str(run), "--report-dir", str(report), "-q"]
    assert main(args) == 0
    reps = json.loads((run / REPLICATES).read_text())
    assert [e["seed"] for e in reps] == [0, 1]
    digests = set()
    for e in reps:
        sub = run / e["run_dir"]
        assert json.loads((sub / "grid.json").read_text())["generators"]["seed"] == e["seed"]
        (gdir,) = (sub / "generators").iterdir()
        digests.add((gdir / "gan" / "generator.pt").read_bytes())
        assert (report / e["report"]).is_file()
    assert len(digests) == len(reps)  # two different generators
    md = re.sub(" +", " ", (report / "REPORT.md").read_text())
    assert "## Replicates" in md and "| GAN | best learned | " in md
    done = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.name in ("generator.pt", "results.json")}
    assert len(done) == 2 * len(reps)  # each replicate's generator and its directions' results
    assert main(args) == 0  # everything done: skipped, nothing trained or discovered again
    assert {p: p.stat().st_mtime_ns for p in done} == done
    assert len(list((run / "replicates" / "1" / "generators").iterdir())) == 1
    # a later run of one on the same folder: the old replicates are not this run's
    assert main(args[:-1] + ["--set", "generators.replicates=1", "-q"]) == 0
    assert not (run / REPLICATES).exists() and "## Replicates" not in (report / "REPORT.md").read_text()


def test_the_study_benchmark_judges_each_target_in_every_replicate(tmp_path):
    from raylatent.bench.study import summarise
    from raylatent.interpret.labels import FACTORS
    from raylatent.report.replicates import REPLICATES

    def cov(generated: int) -> dict:
        return {"gan": {"generated": generated, "factors": {f: {"spread_ratio": 0.9} for f in FACTORS},
                        "memorisation": {"memorised": False, "median_ratio": 1.2}}}

    run = tmp_path / "run"
    learned = [*FACTORS[:5], "z"]
    _replicate_run(run, learned, ["width", "height"], list(FACTORS[:6]))      # margin 4, supervised 6
    _replicate_run(run / "replicates" / "1", learned[:4], ["width"], list(FACTORS[:7]))  # margin 3, no z
    for sub, generated in ((run, 8), (run / "replicates" / "1", 6)):
        (sub / "directions" / "x" / "coverage.json").write_text(json.dumps(cov(generated)))
    (run / REPLICATES).write_text(json.dumps([
        {"replicate": 0, "seed": 0, "run_dir": ".", "report": "REPORT.md"},
        {"replicate": 1, "seed": 1, "run_dir": "replicates/1", "report": "replicate-2/REPORT.md"}]))
    t = summarise(run)["targets"]
    assert t["gan best learned >= random + 3"] == {"met": True, "margin": [{"32": 4}, {"32": 3}]}
    assert t["gan supervised >= 6 of 8 (at some K, every replicate)"]["met"] is True
    assert t["gan varies >= 7 of 8 factors"] == {"met": False, "generated": [8, 6]}
    assert t["gan z-position found by a learned cell"] == {"met": False, "per_replicate": [True, False]}
    assert t["phantom true axes >= 7 of 8 at every K"]["met"] is False  # no phantom in this run


@pytest.mark.parametrize("bad, what", [
    ({"run_dir": "../../elsewhere"}, "points outside"),
    ({"report": "javascript:alert(1)"}, "damaged"),
    ({"report": "../../x/REPORT.md"}, "damaged"),
    ({"replicate": "1"}, "damaged"),
])
def test_a_hostile_replicates_file_is_one_line_and_reads_nothing_outside(tmp_path, bad, what):
    from raylatent.report.replicates import REPLICATES, replicate_root, replicates_section

    run = tmp_path / "run"
    _replicate_run(run, ["z"], [], ["z"])
    _replicate_run(tmp_path / "elsewhere", ["y"], [], ["y"])
    entry = {"replicate": 1, "seed": 1, "run_dir": ".", "report": "replicate-2/REPORT.md", **bad}
    (run / REPLICATES).write_text(json.dumps([{"replicate": 0, "seed": 0, "run_dir": ".", "report": "REPORT.md"},
                                              entry]))
    with pytest.raises(ConfigError, match=what):
        replicates_section(run)
    # a run that claims to be a replicate of a folder that does not list it
    stray = run / "replicates" / "9"
    stray.mkdir(parents=True)
    with pytest.raises(ConfigError, match="does not list"):
        replicate_root(stray, "../..", stray / "latest.json")
