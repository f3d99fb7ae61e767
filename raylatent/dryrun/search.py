"""`--dry-run` of a search grid: the space, the number of trials, and what ASHA can cost at
worst (no trial stopped) and at best (at every rung all but the top 1/reduction_factor stop),
in trial-steps and in device-hours from the same short calibration as the grid's dry run."""
from __future__ import annotations

import math

from raylatent.search.space import cells, max_evaluations


def asha_evaluations(n: int, max_t: int, grace: int, rf: int) -> int:
    """Trial-evaluations when at each rung only the top 1/rf (at least one) go on: n trials run
    `grace` evaluations, ceil(n/rf) of them on to grace*rf, and so on up to max_t."""
    marks, m = [], grace
    while m < max_t:
        marks.append(m)
        m *= rf
    marks.append(max_t)
    total, prev = 0, 0
    for i, m in enumerate(marks):
        total += max(1, math.ceil(n / rf ** i)) * (m - prev)
        prev = m
    return total


def search_costs(grid) -> dict:
    """Trials and their cost in trial-steps (all replicates of a trial summed)."""
    s, d = grid.search, grid.directions
    reps = cells(grid)
    n = s.n_trials() + 1  # the grid's default runs beside the samples
    steps_per_trial = sum(t.steps for t in reps)
    worst = n * steps_per_trial
    evals = max_evaluations(grid)
    if s.scheduler == "asha":
        best = asha_evaluations(n, evals, s.grace_period, s.reduction_factor) * steps_per_trial / evals
    else:
        best = worst
    return {"trials": n, "replicates": len(reps), "evaluations": evals, "worst_steps": int(worst),
            "best_steps": int(math.ceil(best)), "eval_every": d.eval_every}


def dry_run_search(plan, cap_batch: int = 16, log=print, address: str | None = None, cpus: float | None = None,
                   gpus: float | None = None) -> dict:
    """The space, the trial count, and the scheduler's worst and best case, in trial-steps,
    device-hours and wall-clock on the resources the run will have (as `dryrun.dry_run`: the
    given --cpus/--gpus, else the --address cluster's, else this machine's)."""
    from raylatent.dryrun.grid import calibrate_discovery, check_fits, cluster_resources

    grid = plan.grid
    s, d = grid.search, grid.directions
    reps = cells(grid)
    log(f"grid {grid.name} (a search): run dir {plan.run_dir}, report {plan.report_dir}")
    log(f"1. ingest     {grid.data.path or 'built-in phantom'} -> {grid.data.size}^2 shards")
    from raylatent.search.run import fixed_kinds

    trained = sorted(set(grid.directions.generators) - set(fixed_kinds(grid)))
    if trained:
        g = grid.generators
        log(f"2. generators {', '.join(trained)} trained inside every trial (one process, the trial's CPUs/GPU), "
            f"{g.epochs} epochs at the grid's values of the unsearched fields; ASHA cannot cut this part: "
            f"a trial reports only after its generators are trained"
            + (f"; {', '.join(fixed_kinds(grid))} from the generators stage" if fixed_kinds(grid) else ""))
    else:
        log(f"2. generators {', '.join(grid.generators.kinds)} (reused from the generators stage)")
    log(f"3. search     {s.algorithm}, metric {s.metric} ({s.mode}), scheduler {s.scheduler}"
        + (f" (grace {s.grace_period} evaluations, reduction factor {s.reduction_factor})" if s.scheduler == "asha" else ""))
    for x in s.specs:
        log(f"     {x.section}.{x.name}: {x.describe()}  (grid default {getattr(getattr(grid, x.section), x.name)})")
    c = search_costs(grid)
    log(f"   {c['trials']} trials ({s.n_trials()} samples + the grid's default), each on {c['replicates']} "
        f"replicates ({', '.join(t.name for t in reps)}), {c['evaluations']} evaluations every {d.eval_every} steps; "
        f"each trial {{CPU: {d.cpus_per_trial}, GPU: {d.gpus_per_trial}}}"
        + (f", at most {s.max_concurrent} at once" if s.max_concurrent else ""))
    log("4. report     SEARCH.md: best vs default, trials sorted by the metric, metric vs each parameter")
    cpus, gpus, where = cluster_resources(address, cpus, gpus)
    check_fits(d, cpus, gpus, where)
    log("\ncalibrating at the grid's default batch (a few timed steps per replicate) ...")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(d.cpus_per_trial)))  # as a trial runs (search/run.py)
    # calibrate_discovery takes the best of three timings: the first calls run several times slower
    # (allocation, lazy init: 1.7 vs 0.07 s/step measured on the phantom generator); an evaluation
    # every eval_every steps is spread over the steps
    timed = [(t, calibrate_discovery(grid, t, cap_batch)) for t in reps]
    per_step = sum((step + evaluation / min(d.eval_every, t.steps)) * t.steps
                   for t, (step, evaluation) in timed) / max(1, sum(t.steps for t in reps))
    torch.set_num_threads(threads)
    worst_h, best_h = c["worst_steps"] * per_step / 3600, c["best_steps"] * per_step / 3600
    log(f"cost: worst case (no trial stopped) {c['worst_steps']:,} trial-steps ~ {worst_h:.2f} device-hours; "
        f"best case ({'ASHA keeps the top 1/' + str(s.reduction_factor) + ' at each rung' if s.scheduler == 'asha' else 'no scheduler: the same'}) "
        f"{c['best_steps']:,} trial-steps ~ {best_h:.2f} device-hours (sampled batch sizes scale this)"
        + (f"; discovery only: add {c['trials']} trainings of {', '.join(trained)}, not calibrated here" if trained else ""))
    from raylatent.dryrun.grid import FIXED_S, duration, simulate

    per_trial = c["worst_steps"] * per_step / c["trials"]
    cap = s.max_concurrent or c["trials"]
    jobs = [(f"t{i}", per_trial, float(d.cpus_per_trial), float(d.gpus_per_trial)) for i in range(c["trials"])]
    # max_concurrent: as many trials at once as fit and the cap allows (a cap of k is k slots)
    slots_cpus = min(cpus, cap * d.cpus_per_trial) if d.cpus_per_trial else cpus
    slots_gpus = min(gpus, cap * d.gpus_per_trial) if d.gpus_per_trial else gpus
    worst_wall = FIXED_S["tune_start"] + max(e for _, e in simulate(jobs, slots_cpus, slots_gpus).values())
    log(f"wall-clock on {where} ({cpus:g} CPUs, {gpus:g} GPUs{f', at most {s.max_concurrent} at once' if s.max_concurrent else ''}): "
        f"worst case {duration(worst_wall)}, best case about {duration(worst_wall * c['best_steps'] / c['worst_steps'])} "
        "(discovery steps and evaluations; not each trial's start, a few seconds)")
    return {**c, "worst_hours": worst_h, "best_hours": best_h, "worst_wall_s": worst_wall}
