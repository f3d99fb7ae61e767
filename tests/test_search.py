"""The search stage (issue 17): the `search:` section's validation, seeded samples, ASHA's cost
model, a tiny search end to end (TPE, the truth metric), ASHA stopping a clearly worse arm,
resume of a random search in-process and of a TPE search after its driver was killed."""
import json
import math
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ablate_helpers import Evil, _sets, driver_env, kill_when
from raylatent.config import ConfigError
from raylatent.gridfile import load_grid

TINY = """
name: tiny-search
data: {patients: 3, slices: 6, matrix: 64, size: 32, test_frac: 0.34}
generators: {kinds: [phantom]}
directions:
  generators: [phantom]
  reconstructors: [lenet]
  deformators: [{deformator: proj, K: 8}]
  random_baseline: false
  baselines: false
  iterations: [{steps: 40}]
  eval_every: 10
  eval_n: 32
  batch: 8
  lr: 0.01
  lr_directions: 0.0
  cpus_per_trial: 1
search:
  directions:
    lr: {loguniform: [1.0e-3, 3.0e-2]}
    gamma: {uniform: [0.1, 1.0]}
  num_samples: 3
  metric: matched_cos
  algorithm: tpe
  scheduler: none
"""


@pytest.fixture(scope="module")
def tiny_yaml(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("grid") / "tiny-search.yaml"
    p.write_text(TINY)
    return p


# --------------------------------------------------------------------------- validation (no Ray)
BAD = [
    ("search.directions.nope={uniform: [0.1, 1.0]}", "search.directions.nope: unknown field"),
    ("search.directions.eval_every={randint: [1, 5]}", "not searchable"),
    ("search.directions.lr={loguniform: [0.0, 0.1]}", "must be > 0"),
    ("search.directions.lr={uniform: [0.1, 0.01]}", "must be below high"),
    ("search.directions.lr={loguniform: [1e-4, 1.0e-2]}", "YAML reads 1e-4 as text"),
    ("search.directions.lr={loguniform: [1.0e-4, 20.0]}", "not a valid setting"),
    ("search.directions.shift_scale={uniform: [0.2, 6.0]}", "min_shift"),
    ("search.directions.batch={uniform: [8.0, 64.0]}", "whole number"),
    ("search.directions.lr={choice: []}", "non-empty"),
    ("search.directions.lr={normal: [0, 1]}", "one distribution"),
    ("search.metric=fid", "not reported by the trials"),
    ("search.mode=up", "max or min"),
    ("search.algorithm=bayes", "random or tpe"),
    ("search.scheduler=hyperband", "none or asha"),
    ("search.directions.gamma={grid: [0.1, 0.5]}", "grid needs algorithm: random"),
    ("search.num_samples=0", "search.num_samples"),
    ("search.bogus=1", "search.bogus: unknown key"),
    ("search.generators.nope={uniform: [0.1, 1.0]}", "search.generators.nope: unknown field"),
]


@pytest.mark.parametrize("override,fragment", BAD)
def test_bad_search_specs_are_one_line_errors(tiny_yaml, override, fragment):
    with pytest.raises(ConfigError) as e:
        load_grid(str(tiny_yaml), [override])
    msg = str(e.value)
    assert fragment in msg and "\n" not in msg and "search" in msg


def test_context_errors_truth_metric_and_asha_rungs(tiny_yaml):
    # a truth metric needs generators that know their true directions (the GAN does not)
    with pytest.raises(ConfigError, match="generator gan has none"):
        load_grid(str(tiny_yaml), ["generators.kinds=[gan, phantom]", "directions.generators=[gan, phantom]"])
    load_grid(str(tiny_yaml), ["generators.kinds=[gan, phantom]", "directions.generators=[gan, phantom]",
                               "search.metric=rca"])  # fine without the truth
    grid = load_grid(str(tiny_yaml))
    evals = math.ceil(grid.directions.steps_for("phantom", "lenet", 8) / grid.directions.eval_every)
    with pytest.raises(ConfigError, match="ASHA could never stop one"):
        load_grid(str(tiny_yaml), ["search.scheduler=asha", f"search.grace_period={evals}"])
    load_grid(str(tiny_yaml), ["search.scheduler=asha", f"search.grace_period={evals - 1}"])


def test_bad_spec_stops_ablate_with_one_line(tiny_yaml, capsys):
    from raylatent.ablate import main

    assert main(["--grid", str(tiny_yaml), "--dry-run", "--set", "search.metric=fid"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "search.metric" in err[0]


def test_mode_defaults_follow_the_metric(tiny_yaml):
    assert load_grid(str(tiny_yaml)).search.mode == "max"
    assert load_grid(str(tiny_yaml), ["search.metric=ls"]).search.mode == "min"
    assert load_grid(str(tiny_yaml), ["search.metric=ls", "search.mode=max"]).search.mode == "max"


def test_shipped_search_grids_load_and_smoke_uses_the_truth():
    from raylatent.models.registry import kind_of
    from raylatent.search.space import TRUTH_METRICS

    smoke, full = load_grid("search-smoke"), load_grid("search-full")
    assert (Path(__file__).parents[1] / "ablations" / "search-smoke.yaml").resolve() == \
        (Path(__file__).parents[1] / "raylatent" / "grids" / "search-smoke.yaml").resolve()
    assert smoke.search.metric in TRUTH_METRICS and smoke.search.scheduler == "asha"
    assert all(kind_of(g).truth is not None for g in smoke.directions.generators)
    assert {"lr", "lr_directions", "shift_scale", "gamma", "batch"} <= set(smoke.search.directions)
    assert smoke.search.algorithm == "tpe" and full.search.algorithm == "tpe"
    assert load_grid("smoke").search is None  # a plain grid has no search


def test_random_samples_are_seeded_within_bounds_and_counted(tiny_yaml):
    over = ["search.algorithm=random", "search.directions.batch={grid: [8, 16]}",
            "search.directions.shift_scale={randint: [2, 4]}"]
    s = load_grid(str(tiny_yaml), over).search
    a, b = s.random_samples(), s.random_samples()
    assert a == b and len(a) == s.num_samples * 2 == s.n_trials()
    assert a != load_grid(str(tiny_yaml), over + ["search.seed=1"]).search.random_samples()
    lo, hi = s.directions["lr"]["loguniform"]
    assert all(lo <= p["lr"] <= hi and p["batch"] in (8, 16) and p["shift_scale"] in (2, 3, 4) for p in a)
    assert sorted(p["batch"] for p in a) == [8] * s.num_samples + [16] * s.num_samples


def test_asha_cost_model():
    from raylatent.dryrun import asha_evaluations

    # 9 trials, rungs at 1 and 3 evaluations, 9 in all: 9*1 + 3*2 + 1*6
    assert asha_evaluations(9, 9, 1, 3) == 9 + 3 * 2 + 1 * 6
    assert asha_evaluations(4, 4, 1, 2) == 4 + 2 + 1 * 2
    assert asha_evaluations(5, 6, 1, 3) < 5 * 6


# --------------------------------------------------------------------------- end to end (Ray)
def _ablate(yaml: Path, out: Path, rep: Path, overrides=()) -> int:
    from raylatent.ablate import main

    return main(["--grid", str(yaml), "--out", str(out), "--report-dir", str(rep), "--no-dashboard",
                 *_sets(overrides)])


@pytest.fixture(scope="module")
def tpe_run(tiny_yaml, tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("search")
    t = time.time()
    assert _ablate(tiny_yaml, root / "run", root / "rep") == 0
    return root, time.time() - t


@pytest.mark.ray
def test_tiny_tpe_search_end_to_end_writes_best_config(tpe_run, tiny_yaml):
    from raylatent.search.space import DEFAULT_NAME, max_evaluations

    root, _ = tpe_run
    grid = load_grid(str(tiny_yaml))
    s = grid.search
    rows = json.loads((root / "rep" / "results.json").read_text())
    assert len(rows) == s.n_trials() + 1 and len({r["trial"] for r in rows}) == len(rows)
    vals = [r[s.metric] for r in rows]
    assert vals == sorted(vals, reverse=s.mode == "max")  # best first
    for r in rows:
        assert set(r["params"]) == set(s.directions)
        if r["trial"] != DEFAULT_NAME:  # sampled within the space
            assert 1.0e-3 <= r["params"]["lr"] <= 3.0e-2 and 0.1 <= r["params"]["gamma"] <= 1.0
        assert r["stopped_early"] is False and r["step"] == 40  # no scheduler: every trial ran to the end
    default = next(r for r in rows if r["trial"] == DEFAULT_NAME)
    assert default["params"] == {"lr": grid.directions.lr, "gamma": grid.directions.gamma}
    best = json.loads((root / "rep" / "best.json").read_text())
    assert best["best"]["trial"] == rows[0]["trial"] and best["default"]["trial"] == DEFAULT_NAME
    assert best["best_directions"]["lr"] == rows[0]["params"]["lr"]
    # the truth metric at every evaluation (what ASHA needs), from each trial's own curve
    sdir = next((root / "run" / "search").iterdir())
    for r in rows:
        curve = json.loads((sdir / "trials" / r["trial"] / "curve.json").read_text())
        assert len(curve) == max_evaluations(grid)
        assert all(0 <= c["matched_cos"] <= 1 and "axes_recovered" in c for c in curve)
        assert curve[-1]["matched_cos"] == pytest.approx(r["matched_cos"])
    md = (root / "rep" / "SEARCH.md").read_text()
    assert rows[0]["trial"] in md.split("## Trials")[0]  # the best, in the best-configuration table
    table = md.split("## Trials, best first")[1].split("##")[0]
    assert [ln.split("|")[1].split()[0] for ln in table.splitlines() if ln.startswith("| search")] == \
        [r["trial"] for r in rows]
    assert (root / "rep" / "assets" / "search-params.png").stat().st_size > 1000


def test_figure_has_one_panel_per_parameter(tmp_path):
    from raylatent.report.search import params_figure

    rows = [{"trial": f"t{i}", "params": {"lr": 10.0 ** -i, "gamma": 0.1 * i, "batch": 8 * i}, "rca": 0.1 * i,
             "stopped_early": i % 2 == 0, "default": i == 1} for i in range(1, 5)]
    assert params_figure(rows, ["lr", "gamma", "batch"], "rca", tmp_path / "f.png") == 3
    assert (tmp_path / "f.png").exists()


@pytest.mark.ray
def test_asha_stops_the_clearly_worse_arm(tpe_run, tiny_yaml):
    """lr 1e-9 learns nothing (RCA at chance) beside lr 1e-2; trials run one at a time so the
    bad arm reaches its first rung after the default (lr 1e-2) recorded a value there."""
    from raylatent.search.space import cells, max_evaluations

    root, _ = tpe_run
    over = ["directions.seeds=[0, 1]",  # two replicates per trial: the metric is their mean
            "search.algorithm=random", "search.directions={lr: {grid: [1.0e-9, 1.0e-2]}}", "search.num_samples=1",
            "search.metric=rca", "search.scheduler=asha", "search.grace_period=1", "search.reduction_factor=2",
            "search.max_concurrent=1"]
    assert _ablate(tiny_yaml, root / "run", root / "rep-asha", over) == 0
    grid = load_grid(str(tiny_yaml), over)
    rows = json.loads((root / "rep-asha" / "results.json").read_text())
    assert len(rows) == grid.search.n_trials() + 1
    bad = [r for r in rows if r["params"]["lr"] == 1.0e-9]
    assert bad and all(r["stopped_early"] is True for r in bad)
    assert all(r["evaluations"] < max_evaluations(grid) for r in bad)
    assert any(r["stopped_early"] is False for r in rows)  # the good arm ran to the end
    # seeds as replicates: each trial ran every seed, and its metric is their mean
    sdir = next(p for p in (root / "run" / "search").iterdir() if (p / "trials" / bad[0]["trial"]).exists())
    reps = [t.name for t in cells(grid)]
    assert len(reps) == 2
    for r in rows:
        curve = json.loads((sdir / "trials" / r["trial"] / "curve.json").read_text())
        assert sorted(curve[-1]["replicates"]) == sorted(reps)
        assert r["rca"] == pytest.approx(sum(v["rca"] for v in curve[-1]["replicates"].values()) / len(reps))
        assert all((sdir / "trials" / r["trial"] / n / "directions.npz").exists() for n in reps)
    md = (root / "rep-asha" / "SEARCH.md").read_text()
    assert f"{len([r for r in rows if r['stopped_early']])} stopped early" in md


@pytest.mark.ray
def test_random_search_resume_reruns_only_unfinished(tpe_run, tiny_yaml):
    """A random search interrupted after some trials: --resume regenerates the same seeded
    samples and runs only those without a record (here: one whose record we removed)."""
    from raylatent.ablate import Plan
    from raylatent.search.run import run_search

    root, _ = tpe_run
    over = ["search.algorithm=random", "search.num_samples=2"]
    assert _ablate(tiny_yaml, root / "run", root / "rep-rand", over) == 0
    grid = load_grid(str(tiny_yaml), over)
    plan = Plan(grid, root / "run", root / "rep-rand")
    plan.generators = next((root / "run" / "generators").iterdir())
    sdir = plan.resolve_search(log=lambda *a: None)
    records = sorted(sdir.glob("trials/*/record.json"))
    assert len(records) == grid.search.n_trials() + 1
    # two kinds of unfinished trial: the default killed after its last evaluation, before its
    # record; a sample killed before anything but its parameters was written (rerun from zero)
    default, sample = sdir / "trials" / "search-default", records[0].parent
    old = json.loads((sample / "record.json").read_text())
    (sdir / "results.json").unlink()
    (default / "record.json").unlink()
    for p in sample.iterdir():
        if p.name != "params.json":
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    before = {p.parent.name: p.stat().st_mtime_ns for p in records if p.exists()}
    logs = []
    rows = run_search(plan.generators, grid, sdir, resume=True, log=logs.append)
    assert len(rows) == grid.search.n_trials() + 1
    assert any(f"{len(before)} of {len(records)} trials finished" in x for x in logs)
    assert (default / "record.json").exists()
    new = json.loads((sample / "record.json").read_text())
    assert new["params"] == old["params"]  # the same seeded sample, regenerated
    assert new["matched_cos"] == pytest.approx(old["matched_cos"], abs=1e-6)  # and rerun to the same result
    for name, mtime in before.items():
        assert (sdir / "trials" / name / "record.json").stat().st_mtime_ns == mtime, f"{name} was rerun"


@pytest.mark.ray
def test_killed_tpe_search_resumes_without_repeating_finished_trials(tpe_run, tiny_yaml, tmp_path):
    root, _ = tpe_run
    run = tmp_path / "run"
    shutil.copytree(root / "run", run, ignore=shutil.ignore_patterns("search"))
    over = ["search.num_samples=6", "search.max_concurrent=1", "directions.iterations=[{steps: 60}]"]
    grid = load_grid(str(tiny_yaml), over)
    total = grid.search.n_trials() + 1
    cmd = [sys.executable, "-m", "raylatent.ablate", "--grid", str(tiny_yaml), "--out", str(run),
           "--report-dir", str(tmp_path / "rep"), "--no-dashboard", *_sets(over)]
    finished_before = kill_when(cmd, lambda: run.glob("search/*/trials/*/record.json"), total)
    assert finished_before, "no two trials finished before the search ended or timed out"
    finished_before = {p.parent.name: p.stat().st_mtime_ns for p in run.glob("search/*/trials/*/record.json")}
    assert len(finished_before) < total, "the search finished before it could be interrupted"
    told = len([n for n in finished_before if n != "search-default"])
    # a run directory handed over by someone else: Tune's pickles planted with code that leaves a
    # marker when unpickled; resuming must never unpickle them
    marker = tmp_path / "pwned"
    for exp in run.glob("search/*/tune*"):
        for name in ("tuner.pkl", "trainable.pkl"):
            (exp / name).write_bytes(pickle.dumps(Evil(str(marker))))
    r = subprocess.run(cmd + ["--resume"], env=driver_env(), capture_output=True, text=True, timeout=600,
                       start_new_session=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"told {told} finished trials" in r.stdout  # the rebuilt TPE learnt from them
    rows = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert len(rows) == total and len({x["trial"] for x in rows}) == total
    sdir = next(run.glob("search/*"))
    for name, mtime in finished_before.items():
        assert (sdir / "trials" / name / "record.json").stat().st_mtime_ns == mtime, f"{name} was rerun"
    assert not marker.exists()


def test_dry_run_prints_space_trials_and_asha_costs(tiny_yaml, capsys):
    from raylatent.ablate import main
    from raylatent.dryrun import asha_evaluations, search_costs

    over = ["search.scheduler=asha", "search.reduction_factor=2", "search.num_samples=5"]
    assert main(["--grid", str(tiny_yaml), "--dry-run", *_sets(over)]) == 0
    out = capsys.readouterr().out
    grid = load_grid(str(tiny_yaml), over)
    c = search_costs(grid)
    n = grid.search.n_trials() + 1
    assert c["trials"] == n == 6
    steps = grid.directions.steps_for("phantom", "lenet", 8)
    assert c["worst_steps"] == n * steps
    assert c["best_steps"] == asha_evaluations(n, c["evaluations"], 1, 2) * grid.directions.eval_every
    assert c["best_steps"] < c["worst_steps"]
    for name, spec in grid.search.directions.items():
        assert f"directions.{name}: {next(iter(spec))}" in out
    assert f"{n} trials" in out and f"{c['worst_steps']:,} trial-steps" in out and f"{c['best_steps']:,} trial-steps" in out


GEN_SEARCH = ["generators.kinds=[gan]", "generators.gan_width=8", "generators.epochs=2", "generators.keep_last=1",
              "generators.batch_size=4", "generators.fid_network=fallback", "generators.fid_samples=8",
              "generators.num_workers=1", "directions.generators=[gan]", "directions.iterations=[{steps: 20}]",
              "search.metric=rca", "search.algorithm=random", "search.num_samples=1",
              "search.directions={lr: {choice: [0.01]}}",
              "search.generators={lr_gan: {loguniform: [1.0e-4, 1.0e-2]}}"]


def test_generators_search_validation(tiny_yaml, capsys):
    from raylatent.ablate import main

    with pytest.raises(ConfigError, match="search.generators.num_workers: not searchable"):
        load_grid(str(tiny_yaml), ["search.generators={num_workers: {randint: [1, 3]}}"])
    with pytest.raises(ConfigError, match="search.generators.latent_dim: not searchable"):
        load_grid(str(tiny_yaml), ["search.generators={latent_dim: {choice: [16, 32]}}"])
    # the phantom generator is fixed by construction: nothing of it to search
    with pytest.raises(ConfigError, match="no generator of directions.generators \\(phantom\\) is trained") as e:
        load_grid(str(tiny_yaml), ["search.metric=rca", "search.generators={lr_gan: {loguniform: [1.0e-4, 1.0e-3]}}"])
    assert "\n" not in str(e.value)
    # a range end that is not a valid generators setting (keep_last above epochs)
    with pytest.raises(ConfigError, match="search.generators.epochs: randint value 1 is not a valid setting"):
        load_grid(str(tiny_yaml), GEN_SEARCH[:-1] + ["search.generators={epochs: {randint: [1, 3]}}",
                                                     "generators.keep_last=2"])
    grid = load_grid(str(tiny_yaml), GEN_SEARCH)
    assert grid.search.trains_generators
    assert grid.search.default_params(grid) == {"lr": grid.directions.lr, "generators.lr_gan": grid.generators.lr_gan}
    assert all(set(p) == {"lr", "generators.lr_gan"} for p in grid.search.random_samples())
    assert main(["--grid", str(tiny_yaml), "--dry-run", *_sets(GEN_SEARCH)]) == 0
    out = capsys.readouterr().out
    assert "gan trained inside every trial" in out and "generators.lr_gan: loguniform" in out


@pytest.mark.ray
def test_generators_search_trains_each_samples_own_generators(tpe_run, tiny_yaml):
    """Each trial (the default too) trains its own GAN with the sampled lr_gan in-process, then
    runs discovery on it; the generators stage trains none; the report pastes both sections."""
    from raylatent.models.export import WEIGHTS
    from raylatent.search.space import DEFAULT_NAME
    from raylatent.stages import file_digest

    root, _ = tpe_run
    assert _ablate(tiny_yaml, root / "run", root / "rep-gen", GEN_SEARCH) == 0
    grid = load_grid(str(tiny_yaml), GEN_SEARCH)
    rows = json.loads((root / "rep-gen" / "results.json").read_text())
    assert len(rows) == grid.search.n_trials() + 1
    lo, hi = grid.search.generators["lr_gan"]["loguniform"]
    sample = next(r["trial"] for r in rows if r["trial"] != DEFAULT_NAME)  # the default's name is in every search
    sdir = next(p for p in (root / "run" / "search").iterdir() if (p / "trials" / sample).exists())
    digests = set()
    for r in rows:
        lr = r["params"]["generators.lr_gan"]
        assert lr == grid.generators.lr_gan if r["trial"] == DEFAULT_NAME else lo <= lr <= hi
        g = r["generators"]["gan"]
        assert 0 <= g["chosen_epoch"] < grid.generators.epochs and g["fid"] > 0
        export = sdir / "trials" / r["trial"] / "generators" / "gan"
        cfg = json.loads((export / "metrics.json").read_text())["config"]
        assert cfg["lr_gan"] == lr and cfg["num_workers"] == grid.generators.num_workers
        digests.add(file_digest(export / WEIGHTS))
        assert r["step"] == 20 and 0 <= r["rca"] <= 1
    assert len(digests) == len(rows)  # every sample trained a generator of its own
    assert not list((root / "run" / "generators").glob(f"*/gan/{WEIGHTS}"))  # the stage trained none
    best = json.loads((root / "rep-gen" / "best.json").read_text())
    assert best["best_generators"]["lr_gan"] == rows[0]["params"]["generators.lr_gan"]
    assert "lr_gan" not in best["best_directions"]
    md = (root / "rep-gen" / "SEARCH.md").read_text()
    assert "generators:\n  lr_gan: " in md and "directions:\n  lr: " in md
    assert "its generators (FID, chosen epoch)" in md and "trained its own generators" in md


def test_tpe_without_optuna_is_a_one_line_error(tiny_yaml, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a))
    with pytest.raises(ConfigError, match=r"raylatent\[search\]"):
        load_grid(str(tiny_yaml))
    load_grid(str(tiny_yaml), ["search.algorithm=random"])  # random search needs nothing more


def test_a_stopped_generator_search_trial_keeps_its_generators(tmp_path):
    """ASHA stops a trial only after its first report, which follows its generators' training:
    the record the driver writes for it carries them, as a finished trial's does."""
    from raylatent.discovery.records import write_json
    from raylatent.search.run import _stopped_record

    folder = tmp_path / "search-0003-abcdef"
    (folder / "generators" / "gan").mkdir(parents=True)
    write_json(folder / "params.json", {"trial": folder.name, "params": {"generators.lr_gan": 1e-3}})
    write_json(folder / "curve.json", [{"step": 10, "rca": 0.4, "ls": 0.3, "shift_mae": 1.0, "wall_s": 3.0,
                                        "replicates": {}}])
    write_json(folder / "generators" / "gan" / "metrics.json", {"chosen_epoch": 4, "fid": 2.5, "history": []})
    rec = _stopped_record(folder)
    assert rec["stopped_early"] is True and rec["step"] == 10 and "replicates" not in rec
    assert rec["generators"] == {"gan": {"chosen_epoch": 4, "fid": 2.5}}


@pytest.mark.ray
def test_a_batch_the_train_split_cannot_fill_is_refused_before_any_trial(tpe_run, tiny_yaml, tmp_path):
    from raylatent.search.run import run_search

    root, _ = tpe_run
    shards = next((root / "run" / "data").iterdir())
    grid = load_grid(str(tiny_yaml), GEN_SEARCH + ["search.generators={batch_size: {randint: [4, 1024]}}"])
    with pytest.raises(ConfigError, match="batch_size: up to 1024 slices a batch, and the train split has") as e:
        run_search(tmp_path / "gens", grid, tmp_path / "out", shards=shards, log=lambda *a: None)
    assert "\n" not in str(e.value) and not list((tmp_path / "out").glob("trials/*"))


def test_the_hessian_weight_is_searchable_and_applies_to_every_learned_cell():
    from raylatent.search.run import best_directions
    from raylatent.search.space import criteria_of

    grid = load_grid("search-smoke", ["search.directions={hessian: {loguniform: [0.001, 1.0]}}"])
    (spec,) = grid.search.specs
    assert (spec.key, spec.dist, grid.search.default_params(grid)) == ("hessian", "loguniform", {"hessian": 0.0})
    assert criteria_of({"lr": 0.1, "hessian": 0.3}) == ({"lr": 0.1}, {"hessian": 0.3})
    best = best_directions(grid, {"hessian": 0.3})
    assert all(e["hessian"] == 0.3 for e in best["deformators"])
    with pytest.raises(ConfigError, match="search.directions.hessian: uniform value -1"):
        load_grid("search-smoke", ["search.directions={hessian: {uniform: [-1, 1]}}"])
    with pytest.raises(ConfigError, match="sets it already"):
        load_grid("search-smoke", ["search.directions={hessian: {uniform: [0, 1]}}",
                                   "directions.deformators=[{deformator: proj, K: 32, hessian: 0.1}]"])
