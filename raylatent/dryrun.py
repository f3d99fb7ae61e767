"""`--dry-run`: the plan (stages, trials, resources) and device-hours estimated from a short
calibration: a few timed steps of each distinct configuration on this machine's hardware, with
randomly initialised models of the grid's sizes and widths."""
from __future__ import annotations

import time

import torch
from tabulate import tabulate


def _time(fn, n: int = 2) -> float:
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(n):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / n


def calibrate_discovery(grid, trial, cap_batch: int) -> float:
    """Seconds per step at the grid's batch (measured at min(batch, cap) and scaled)."""
    from raylatent.discovery.step import Discovery, DiscoveryConfig
    from raylatent.models import as_generator, make_generator_from

    g, d = grid.generators, grid.directions
    G = as_generator(make_generator_from(trial.generator, g))
    b = min(d.batch, cap_batch)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    disc = Discovery(G, DiscoveryConfig(K=trial.K, deformator=trial.deformator,
                                        reconstructor=trial.reconstructor, recon_width=d.width_for(trial.reconstructor),
                                        batch=b), device=dev, amp=dev == "cuda")
    return _time(disc.step) * d.batch / b


def calibrate_training(grid, kind: str, cap_batch: int) -> float:
    """Seconds per training image of one generator (one real training step, one worker)."""
    from raylatent.models import kind_of, make_generator_from

    g = grid.generators
    b = min(g.batch_size, cap_batch)
    training = kind_of(kind).training(make_generator_from(kind, g), g)
    x = torch.rand(b, 1, g.size, g.size) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    return _time(lambda: training.step(x, g.noise_start, gen, "cpu")) / b


def dry_run(plan, cap_batch: int = 16, log=print) -> dict:
    grid = plan.grid
    if grid.search is not None:  # a search grid: its space, trial count and the scheduler's cost
        from raylatent.search.dryrun import dry_run_search

        return dry_run_search(plan, cap_batch, log)
    trials = grid.directions.trials()
    d, g = grid.directions, grid.generators
    log(f"grid {grid.name}: run dir {plan.run_dir}, report {plan.report_dir}")
    src = grid.data.path or f"built-in phantom ({grid.data.patients} patients x {grid.data.slices} slices, cached)"
    log(f"1. ingest     {src} -> {grid.data.size}^2 shards, test share {grid.data.test_frac}")
    log(f"2. generators {', '.join(g.kinds)}: {g.epochs} epochs, best FID of last {g.keep_last}; "
        f"{g.num_workers} workers x {{CPU: {g.cpus_per_worker}, GPU: {g.gpus_per_worker if g.use_gpu else 0}}}")
    log(f"3. directions {len(trials)} Tune trials, each {{CPU: {d.cpus_per_trial}, GPU: {d.gpus_per_trial}}}")
    log("4. report     Table 1, charts, animations, curves")
    hw = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    log(f"\ncalibrating on this machine's {hw} (a few timed steps per configuration) ...")
    cache: dict = {}
    rows, total_h = [], 0.0
    for t in trials:
        key = (t.generator, t.reconstructor, t.deformator, t.K)
        if key not in cache:
            cache[key] = calibrate_discovery(grid, t, cap_batch)
        hours = cache[key] * t.steps / 3600
        total_h += hours
        rows.append([t.name, t.steps, f"{cache[key]:.3f}", f"{hours:.2f}"])
    log(tabulate(rows, headers=["trial", "steps", "s/step", "device-hours"], tablefmt="github"))
    n_train = grid.data.patients * grid.data.slices * (1 - grid.data.test_frac) if not grid.data.path else 246_016 * 0.9
    from raylatent.models import kind_of

    trained = [k for k in g.kinds if kind_of(k).trainable]  # a kind fixed by construction costs nothing here
    train_h = sum(calibrate_training(grid, k, cap_batch) for k in trained) * n_train * g.epochs / 3600
    log(f"\nestimated device-hours on this hardware: generators {train_h:.2f} "
        f"(~{n_train:,.0f} training slices{' assumed, LIDC-IDRI' if grid.data.path else ''}), "
        f"directions {total_h:.2f}, total {train_h + total_h:.2f}")
    return {"trials": len(trials), "directions_hours": total_h, "generators_hours": train_h}
