"""`--dry-run` in wall-clock time: the FIFO schedule replayed on the resources the run will have,
the estimate built from a calibration (checked here with made-up timings, so every figure is
derived exactly), the printed plan, and the calibration run as a Ray task on a cluster."""
import math
import os

import pytest

from raylatent.dryrun import FIXED_S, config_key, estimate, n_train_slices, simulate
from raylatent.gridfile import load_grid

TINY = """
name: tiny-dry
data: {patients: 4, slices: 8, matrix: 64, size: 32, test_frac: 0.25}
generators: {kinds: [gan, phantom], gan_width: 8, epochs: 3, keep_last: 1, batch_size: 4, fid_samples: 16,
             fid_network: fallback, num_workers: 2}
directions:
  generators: [gan, phantom]
  reconstructors: [lenet]
  deformators: [{deformator: proj, K: 8}]
  iterations: [{deformator: random, steps: 10}, {steps: 20}]
  eval_every: 10
  eval_n: 32
  batch: 8
  chance_pool: 16
  cpus_per_trial: 1
"""


@pytest.fixture
def tiny(tmp_path):
    p = tmp_path / "tiny-dry.yaml"
    p.write_text(TINY)
    return p


def test_simulate_is_a_fifo_queue_on_the_resources():
    # n equal one-CPU jobs on C CPUs: ceil(n / C) waves
    for n, c in ((5, 2), (4, 4), (7, 3)):
        t = simulate([(f"j{i}", 10.0, 1.0, 0.0) for i in range(n)], c, 0)
        assert max(e for _, e in t.values()) == math.ceil(n / c) * 10.0
    # GPU-bound: 64 CPUs, 4 GPUs, one GPU a trial
    t = simulate([(f"j{i}", 10.0, 2.0, 1.0) for i in range(9)], 64, 4)
    assert max(e for _, e in t.values()) == math.ceil(9 / 4) * 10.0
    # FIFO: a two-CPU job waits for both CPUs, and the one-CPU job behind it waits too
    t = simulate([("a", 10.0, 1.0, 0.0), ("big", 5.0, 2.0, 0.0), ("b", 1.0, 1.0, 0.0)], 2, 0)
    assert t["big"] == (10.0, 15.0) and t["b"] == (15.0, 16.0)
    with pytest.raises(ValueError, match="huge asks for 4.0 CPUs"):
        simulate([("huge", 1.0, 4.0, 0.0)], 2, 0)


def _cal(grid, step=0.01, ev=0.2, img=0.001, fid=0.5, label=0.1, draw=0.0) -> dict:
    trials = grid.directions.trials()
    return {"hardware": "made up", "step_s": {config_key(t): step for t in trials},
            "eval_s": {config_key(t): ev for t in trials}, "train_image_s": {"gan": img},
            "fid_epoch_s": {"gan": fid}, "label_s": {g: label for g in grid.directions.generators},
            "draw_s": {g: draw for g in grid.directions.generators}}


def test_estimate_is_derived_from_the_calibration(tiny):
    grid = load_grid(str(tiny))
    g, d = grid.generators, grid.directions
    cal = _cal(grid)
    est = estimate(grid, cal, cpus=2, gpus=0)
    # generators: only the trainable kind, one Train start plus epochs x (compute per worker + FID + overhead)
    n_train = n_train_slices(grid)
    assert est["generators"] == {"gan": pytest.approx(FIXED_S["train_start"] + g.epochs * (
        n_train / g.num_workers * 0.001 + 0.5 + FIXED_S["epoch_overhead"]))}
    # every trial: steps, evaluations, and labelling its K directions
    for t in d.trials():
        start, end = est["jobs"][t.name]
        assert end - start == pytest.approx(t.steps * 0.01 + math.ceil(t.steps / d.eval_every) * 0.2 + t.K * 0.1)
    # one pool job per generator (chance pool + every closed-form method at the largest K, each at
    # most the latent size), started first
    pools = [n for n in est["jobs"] if n.startswith("chance pool")]
    assert len(pools) == len(d.generators)
    assert all(est["jobs"][p][0] == 0 for p in pools[:2])
    from raylatent.discovery.controls import CONTROL_LABEL_UNITS  # ... and the positive controls beside them
    from raylatent.discovery.methods import METHODS

    k_closed = max(x["K"] for x in d.deformators) if d.baselines else 0
    closed = [m for m in METHODS.values() if m.role == "closed-form"]
    labelled = sum(min(k_closed, g.latent_dim) if m.fit_size is None else m.fit_size(g.latent_dim, k_closed)
                   for m in closed)
    for p in pools:
        start, end = est["jobs"][p]
        assert end - start == pytest.approx((d.chance_pool + labelled + CONTROL_LABEL_UNITS) * 0.1)
    # ... plus the images a closed-form method draws through the generator (the Hessian method's)
    drawn = sum(m.fit_images(g.latent_dim, k_closed) for m in closed if m.fit_images)
    assert drawn > 0
    slow = estimate(grid, _cal(grid, draw=0.01), cpus=2, gpus=0)
    for p in pools:
        assert (slow["jobs"][p][1] - slow["jobs"][p][0]) - (est["jobs"][p][1] - est["jobs"][p][0]) \
            == pytest.approx(drawn * 0.01)
    assert sum(est["stages"].values()) == pytest.approx(est["total_s"])
    # more CPUs: the directions stage shortens, the work (device-hours) does not change
    more = estimate(grid, cal, cpus=8, gpus=0)
    assert more["stages"]["directions"] < est["stages"]["directions"]
    assert more["directions_hours"] == pytest.approx(est["directions_hours"])
    assert more["slots"] == 8 // d.cpus_per_trial and est["slots"] == 2


def test_dry_run_prints_progress_wall_clock_and_assumptions(tiny, capsys):
    from raylatent.ablate import main

    assert main(["--grid", str(tiny), "--dry-run", "--cpus", "4"]) == 0
    out = capsys.readouterr().out
    grid = load_grid(str(tiny))
    configs = {config_key(t) for t in grid.directions.trials()}
    progress = [ln for ln in out.splitlines() if "calibrating [" in ln]
    n = len(configs) + 2 * 1 + 1  # each configuration, the GAN's training and FID, the labelling
    assert len(progress) == n and progress[-1].strip().startswith(f"calibrating [{n}/{n}]")
    assert "wall-clock estimate on the resources given: 4 CPUs, 0 GPUs" in out
    for t in grid.directions.trials():
        assert t.name in out
    assert "| total" in out and "4 trials at once" in out


def test_cluster_calibration_needs_an_address(tiny, capsys):
    from raylatent.ablate import main

    assert main(["--grid", str(tiny), "--dry-run", "--calibrate-on", "cluster"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--calibrate-on cluster: needs --address" in err


@pytest.mark.ray
def test_calibration_runs_as_a_ray_task_on_the_cluster(tiny, ray_session, capsys):
    """On a cluster the timings come from a task with a trial's resources (its node's
    accelerator), not from the planning machine's process."""
    from raylatent.ablate import Plan
    from raylatent.dryrun import dry_run

    grid = load_grid(str(tiny))
    plan = Plan(grid, tiny.parent / "run", tiny.parent / "rep")
    lines = []
    res = dry_run(plan, log=lines.append, address="auto", calibrate_on="cluster")
    assert res["calibration"]["pid"] != os.getpid()
    assert set(res["calibration"]["step_s"]) == {config_key(t) for t in grid.directions.trials()}
    total = ray_session.cluster_resources()["CPU"]
    assert any(f"on the cluster at auto: {total:g} CPUs" in ln for ln in lines)


def test_trials_that_cannot_start_are_one_line_before_calibrating(tiny, capsys):
    from raylatent.ablate import main

    gpu = ["--set", "directions.gpus_per_trial=1"]
    assert main(["--grid", str(tiny), "--dry-run", "--gpus", "0", *gpu]) == 2
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert "\n" not in err and "no trial could start" in err and "--gpus" in err
    assert "calibrating [" not in cap.out  # refused before minutes of timing
    assert main(["--grid", str(tiny), "--dry-run", "--gpus", "2", "--cpus", "8", *gpu]) == 0
    assert "2 trials at once" in capsys.readouterr().out  # two GPUs, one a trial


def test_search_dry_run_plans_for_the_resources_given(tmp_path, capsys):
    from raylatent.ablate import main

    over = ["--set", "search.num_samples=2", "--set", "directions.iterations=[{steps: 40}]", "--set", "directions.eval_every=20"]
    assert main(["--grid", "search-smoke", "--dry-run", "--cpus", "6", *over]) == 0
    assert "on the resources given (6 CPUs, 0 GPUs" in capsys.readouterr().out
    assert main(["--grid", "search-smoke", "--dry-run", "--cpus", "2", "--set", "directions.gpus_per_trial=1",
                 *over]) == 2
    assert "no trial could start" in capsys.readouterr().err
