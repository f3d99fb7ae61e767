"""`--dry-run`: the plan (stages, trials, resources) and what it will cost in wall-clock time.

Three parts, so each can be checked on its own:

1. `calibrate` times the work units on real hardware: a few steps of each distinct discovery
   configuration, a generator training step per image, one epoch's held-out FID measurement,
   the labelling of one direction (what every trial, chance pool and closed-form method pays
   per direction) and an evaluation. Randomly initialised models of the grid's sizes: the cost
   of a step does not depend on what was learned. Each unit is the best of three timings (the
   first calls of a fresh process run several times slower: allocation, lazy initialisation).
   It returns plain numbers, so it can run as a Ray task on the cluster's accelerator
   (`--calibrate-on cluster`) instead of on the machine that plans.
2. `schedule` replays the run on the resources it will have: generators one kind at a time,
   each on its DDP workers (scaling assumed linear in workers); then the chance pools and
   closed-form methods (one CPU each, started first) and the trials in grid order, each started
   as soon as its CPUs/GPUs are free, as Tune does.
3. Fixed costs measured on the smoke grid here (Ray start, a Train run's start, Tune's start,
   renders and report) are added as they are: they do not scale with the hardware.

Pure torch (no Ray) except the optional remote calibration.
"""
from __future__ import annotations

import heapq
import math
import os
import time

import torch
from tabulate import tabulate

# seconds, measured on the smoke grid on this project's 2-core machine (session 6-7 runs): they
# are start-up and bookkeeping, not compute, so they are not scaled by the calibration
# epoch_overhead: a Ray Train epoch's report, checkpoint and data-iterator start beside its
# compute (smoke: ~2.0 s between epoch lines for ~0.8 s of calibrated compute and FID)
FIXED_S = {"ray_start": 8.0, "train_start": 20.0, "epoch_overhead": 1.2, "tune_start": 6.0, "renders": 8.0,
           "report": 5.0}
# ingest: the built-in phantom renders ~60 slices/s at 128^2 here (smoke: 512 slices in 8.6 s);
# a DICOM folder is read at the speed of its storage, assumed here as 100 slices/s per CPU
PHANTOM_SLICES_S, DICOM_SLICES_S = 60.0, 100.0
LIDC_SLICES = 246_016  # LIDC-IDRI's CT slices: the training set a data path is assumed to hold
LABEL_PROBE = 2        # directions labelled when timing the labelling (its cost is linear in K)


def _time(fn, n: int = 2, repeats: int = 3) -> float:
    """Seconds per call: the best of `repeats` means of `n` calls, after a warm-up call."""
    fn()
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t) / n)
    return best


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (GPU)"
    return f"CPU ({torch.get_num_threads()} threads)"


def config_key(trial) -> str:
    return f"{trial.generator}/{trial.reconstructor}/{trial.deformator}/K{trial.K}"


def calibrate_discovery(grid, trial, cap_batch: int) -> tuple[float, float]:
    """(seconds per step at the grid's batch, measured at min(batch, cap) and scaled; seconds of
    one held-out evaluation of eval_n fresh latents), both on one randomly initialised trial."""
    from raylatent.discovery.evaluate import evaluate
    from raylatent.discovery.step import Discovery, DiscoveryConfig
    from raylatent.models import as_generator, make_generator_from

    g, d = grid.generators, grid.directions
    G = as_generator(make_generator_from(trial.generator, g))
    dev = _device()
    disc = Discovery(G, DiscoveryConfig.for_trial(d, trial, batch=min(d.batch, cap_batch)), device=dev, amp=dev == "cuda")
    step = _time(disc.step) * d.batch / disc.cfg.batch
    n = min(d.eval_n, 4 * disc.cfg.batch)
    return step, _time(lambda: evaluate(disc, n=n), n=1, repeats=2) * d.eval_n / n


def calibrate_training(grid, kind: str, cap_batch: int) -> float:
    """Seconds per training image of one generator (one real training step, one worker)."""
    from raylatent.models import kind_of, make_generator_from

    g = grid.generators
    b = min(g.batch_size, cap_batch)
    dev = _device()
    training = kind_of(kind).training(make_generator_from(kind, g), g)
    for m in training.modules.values():
        m.to(dev)
    x = torch.rand(b, 1, g.size, g.size, device=dev) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    return _time(lambda: training.step(x, g.noise_start, gen, dev)) / b


def calibrate_fid(grid, kind: str, cap: int = 64) -> float:
    """Seconds of one epoch's held-out measurement: fid_samples generated and featurised (the
    test split's features are computed once), from a timing at min(fid_samples, cap)."""
    from raylatent.metrics.fid import feature_extractor, features_of
    from raylatent.models import as_generator, make_generator_from

    g = grid.generators
    n = min(g.fid_samples, cap)
    dev = _device()
    G = as_generator(make_generator_from(kind, g)).to(dev).eval()
    ex = feature_extractor(g.fid_network, g.fid_weights or None).to(dev)

    def once():
        with torch.no_grad():
            features_of(ex, G(torch.randn(n, g.latent_dim, device=dev)))

    return _time(once, n=1) * g.fid_samples / n


def calibrate_drawing(grid, kinds) -> dict[str, float]:
    """Seconds per image that each kind's own network takes to draw at the grid's size and width,
    in batches of the labelling sweep's size, on one CPU thread (the phantom's always included:
    it is the labelling's reference)."""
    from raylatent.models import as_generator, make_generator_from

    sweep = grid.directions.sweep()
    n = sweep.latents * sweep.steps
    z = torch.randn(n, grid.generators.latent_dim, generator=torch.Generator().manual_seed(1))

    @torch.no_grad()
    def draw(kind: str) -> float:
        net = as_generator(make_generator_from(kind, grid.generators)).eval()
        return _time(lambda: net(z), n=1, repeats=2) / n

    return {kind: draw(kind) for kind in sorted({"phantom", *kinds})}


def calibrate_labelling(grid, kinds, drawing: dict[str, float] | None = None) -> dict[str, float]:
    """Seconds to label one direction on the CPU, per generator kind (trials, chance pools and
    closed-form methods all label this way: the grid's sweep scored in HU, interpret/labels.py).
    The attribute measurement is timed on the phantom generator at the grid's size, for every
    kind: it depends on what the slices show, and an untrained GAN or VAE draws noise that measures
    differently (a random VAE timed 2x what the trained one costs; the phantom was within 25% of
    the smoke run's pools). Drawing the sweep's images is timed on each kind's own network at the
    grid's size and width (`calibrate_drawing`, unless given): at 128^2 the paper's DCGAN draws 40
    images 7x slower than they measure."""
    from raylatent.interpret.labels import score_directions
    from raylatent.models import as_generator, make_generator_from

    sweep = grid.directions.sweep()
    G = as_generator(make_generator_from("phantom", grid.generators)).eval()
    A = torch.randn(G.latent_dim, LABEL_PROBE, generator=torch.Generator().manual_seed(0))
    measure = _time(lambda: score_directions(G, A / A.norm(dim=0), n_latents=sweep.latents, n_eps=sweep.steps),
                    n=1, repeats=2) / LABEL_PROBE
    drawing = drawing or calibrate_drawing(grid, kinds)
    n = sweep.latents * sweep.steps
    return {kind: measure + max(0.0, drawing[kind] - drawing["phantom"]) * n for kind in kinds}


def calibrate(grid, cap_batch: int = 16, progress=print) -> dict:
    """Every work unit of the grid, timed on this process's hardware; plain numbers (it may run
    as a Ray task). Torch threads are set as the run will have them (trials: cpus_per_trial;
    generator workers: cpus_per_worker; labelling in chance pools: 1)."""
    from raylatent.models import kind_of

    g, d = grid.generators, grid.directions
    threads = torch.get_num_threads()
    out = {"hardware": hardware(), "pid": os.getpid(), "host": os.uname().nodename, "cap_batch": cap_batch,
           "step_s": {}, "eval_s": {}, "train_image_s": {}, "fid_epoch_s": {}, "label_s": {}, "draw_s": {}}
    trials = d.trials()
    configs = {}
    for t in trials:
        configs.setdefault(config_key(t), t)
    kinds = [k for k in g.kinds if kind_of(k).trainable]
    gens = sorted({t.generator for t in trials})
    total = len(configs) + 2 * len(kinds) + 1
    i = 0

    def say(what: str, value: float, unit: str) -> None:
        nonlocal i
        i += 1
        progress(f"  calibrating [{i}/{total}] {what}: {value:.4g} {unit}")

    try:
        torch.set_num_threads(max(1, int(d.cpus_per_trial)))
        for key, t in configs.items():
            out["step_s"][key], out["eval_s"][key] = calibrate_discovery(grid, t, cap_batch)
            say(f"discovery {key}", out["step_s"][key], "s/step")
        torch.set_num_threads(max(1, int(g.cpus_per_worker)))
        for kind in kinds:
            out["train_image_s"][kind] = calibrate_training(grid, kind, cap_batch)
            say(f"training {kind}", out["train_image_s"][kind], "s/image")
            out["fid_epoch_s"][kind] = calibrate_fid(grid, kind)
            say(f"held-out FID {kind} ({g.fid_samples} samples)", out["fid_epoch_s"][kind], "s/epoch")
        torch.set_num_threads(1)
        every = sorted({*gens, *d.generators})  # every generator's pool, trials or not
        out["draw_s"] = calibrate_drawing(grid, every)
        out["label_s"] = calibrate_labelling(grid, every, out["draw_s"])
        say("labelling (slowest kind)", max(out["label_s"].values()), "s/direction")
    finally:
        torch.set_num_threads(threads)
    return out


def calibrate_on_cluster(grid, cap_batch: int, progress=print) -> dict:
    """`calibrate` as one Ray task with a trial's resources, so it runs where the trials will
    (a GPU node when trials take GPUs), and reports that node's hardware."""
    import ray

    d = grid.directions
    task = ray.remote(num_cpus=d.cpus_per_trial, num_gpus=d.gpus_per_trial)(calibrate)
    return ray.get(task.remote(grid, cap_batch, print))


# --------------------------------------------------------------------------- the schedule
def simulate(jobs: list[tuple[str, float, float, float]], cpus: float, gpus: float) -> dict[str, tuple[float, float]]:
    """Start and end of each (name, seconds, cpus, gpus) job when they are started in list order,
    each as soon as the resources it asks for are free and every job before it has started (a
    FIFO queue, as Tune starts a grid's trials). A job asking for more than there is never fits:
    a ValueError naming it."""
    free_c, free_g, now = cpus, gpus, 0.0
    running: list[tuple[float, int, float, float]] = []  # (end, i, cpus, gpus)
    times: dict[str, tuple[float, float]] = {}
    for i, (name, secs, c, g) in enumerate(jobs):
        if c > cpus + 1e-9 or g > gpus + 1e-9:
            raise ValueError(f"{name} asks for {c} CPUs and {g} GPUs; the cluster has {cpus} and {gpus}")
        while free_c + 1e-9 < c or free_g + 1e-9 < g:
            end, _, rc, rg = heapq.heappop(running)
            now, free_c, free_g = max(now, end), free_c + rc, free_g + rg
        free_c, free_g = free_c - c, free_g - g
        times[name] = (now, now + secs)
        heapq.heappush(running, (now + secs, i, c, g))
    return times


def n_train_slices(grid) -> float:
    data = grid.data
    return data.patients * data.slices * (1 - data.test_frac) if not data.path else LIDC_SLICES * (1 - data.test_frac)


def estimate(grid, cal: dict, cpus: float, gpus: float) -> dict:
    """Wall-clock seconds per stage (and device-hours) of the grid on `cpus`/`gpus`, from the
    calibration `cal`."""
    from raylatent.models import kind_of

    g, d, data = grid.generators, grid.directions, grid.data
    n_slices = data.patients * data.slices if not data.path else LIDC_SLICES
    ingest = n_slices / (PHANTOM_SLICES_S * (data.matrix / 128) ** 2 if not data.path else DICOM_SLICES_S * max(1, cpus))
    n_train = n_train_slices(grid)
    gens, gen_h = {}, 0.0
    for kind in (k for k in g.kinds if kind_of(k).trainable):
        per_epoch = n_train / g.num_workers * cal["train_image_s"][kind] + cal["fid_epoch_s"][kind] + FIXED_S["epoch_overhead"]
        gens[kind] = FIXED_S["train_start"] + g.epochs * per_epoch
        gen_h += g.epochs * n_train * cal["train_image_s"][kind] / 3600
    trials = d.trials()
    jobs, dev_s = [], 0.0
    if d.baselines or d.chance_pool:  # once per generator, started before the trials (tune/stage.py)
        from raylatent.discovery.controls import CONTROL_LABEL_UNITS

        from raylatent.discovery.methods import METHODS

        k_closed = max(x["K"] for x in d.deformators) if d.baselines else 0
        closed = [m for m in METHODS.values() if m.role == "closed-form"] if d.baselines else []
        n_closed = sum(m.most_directions(g.latent_dim, k_closed) for m in closed)  # directions labelled
        drawn = sum(m.fit_images(g.latent_dim, k_closed) for m in closed if m.fit_images)
        for kind in sorted(d.generators):
            secs = ((d.chance_pool + n_closed + CONTROL_LABEL_UNITS) * cal["label_s"][kind]
                    + drawn * cal.get("draw_s", {}).get(kind, 0.0))
            jobs.append((f"chance pool {kind}", secs, 1.0, 0.0))
            dev_s += secs
    for t in trials:
        key = config_key(t)
        evals = math.ceil(t.steps / min(d.eval_every, t.steps))
        secs = t.steps * cal["step_s"][key] + evals * cal["eval_s"][key] + t.K * cal["label_s"][t.generator]
        jobs.append((t.name, secs, float(d.cpus_per_trial), float(d.gpus_per_trial)))
        dev_s += secs
    times = simulate(jobs, cpus, gpus)
    directions = FIXED_S["tune_start"] + max((e for _, e in times.values()), default=0.0) + FIXED_S["renders"]
    stages = {"ray start": FIXED_S["ray_start"], "ingest": ingest, "generators": sum(gens.values()),
              "directions": directions, "report": FIXED_S["report"]}
    if g.replicates > 1:  # every further replicate: its generators, directions and report again
        rep = estimate(grid.replicate(1), cal, cpus, gpus)
        n = g.replicates - 1
        stages["other replicates"] = n * sum(rep["stages"][k] for k in ("generators", "directions", "report"))
        gen_h += n * rep["generators_hours"]
        dev_s += n * rep["directions_hours"] * 3600
    return {"stages": stages, "total_s": sum(stages.values()), "generators": gens, "jobs": times,
            "slots": _slots(d, cpus, gpus), "generators_hours": gen_h, "directions_hours": dev_s / 3600}


def check_fits(d, cpus: float, gpus: float, where: str) -> None:
    """A trial that asks for more than the cluster has never starts: one line saying so (and how
    to plan for the cluster it is meant for), not an estimate of forever."""
    if _slots(d, cpus, gpus) == 0:
        from raylatent.config import ConfigError

        raise ConfigError(f"directions: a trial asks for {{CPU: {d.cpus_per_trial}, GPU: {d.gpus_per_trial}}} and "
                          f"{where} has {cpus:g} CPUs and {gpus:g} GPUs: no trial could start (give --cpus/--gpus of "
                          "the target cluster, or lower directions.cpus_per_trial / gpus_per_trial)")


def _slots(d, cpus: float, gpus: float) -> int:
    by_cpu = math.floor(cpus / d.cpus_per_trial + 1e-9) if d.cpus_per_trial else 10 ** 6
    by_gpu = math.floor(gpus / d.gpus_per_trial + 1e-9) if d.gpus_per_trial else 10 ** 6
    return max(0, min(by_cpu, by_gpu))


def duration(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def cluster_resources(address: str | None, cpus: float | None, gpus: float | None) -> tuple[float, float, str]:
    """What the run will have: the figures given, else the attached cluster's, else this machine's."""
    where = "this machine"
    if address:
        import ray

        if not ray.is_initialized():
            ray.init(address=address, logging_config=ray.LoggingConfig(log_level="WARNING"))
        res = ray.cluster_resources()
        c, g, where = res.get("CPU", 0.0), res.get("GPU", 0.0), f"the cluster at {address}"
    else:
        c, g = float(os.cpu_count() or 1), float(torch.cuda.device_count())
    if cpus is not None or gpus is not None:
        where = "the resources given"
    return (float(cpus) if cpus is not None else c), (float(gpus) if gpus is not None else g), where


# --------------------------------------------------------------------------- the command
def dry_run(plan, cap_batch: int = 16, log=print, address: str | None = None, calibrate_on: str = "local",
            cpus: float | None = None, gpus: float | None = None) -> dict:
    grid = plan.grid
    trials = grid.directions.trials()
    d, g = grid.directions, grid.generators
    log(f"grid {grid.name}: run dir {plan.run_dir}, report {plan.report_dir}")
    src = grid.data.path or f"built-in phantom ({grid.data.patients} patients x {grid.data.slices} slices, cached)"
    log(f"1. ingest     {src} -> {grid.data.size}^2 shards, test share {grid.data.test_frac}")
    log(f"2. generators {', '.join(g.kinds)}: {g.epochs} epochs, best FID of last {g.keep_last}; "
        f"{g.num_workers} workers x {{CPU: {g.cpus_per_worker}, GPU: {g.gpus_per_worker if g.use_gpu else 0}}}")
    log(f"3. directions {len(trials)} Tune trials, each {{CPU: {d.cpus_per_trial}, GPU: {d.gpus_per_trial}}}"
        + (f"; per generator a chance pool of {d.chance_pool} random directions" if d.chance_pool else "")
        + (" and the closed-form methods" if d.baselines else ""))
    log("4. report     Table 1, charts, animations, curves")
    c, gp, where = cluster_resources(address, cpus, gpus)
    check_fits(d, c, gp, where)  # before the calibration: minutes on a CPU at paper scale
    if calibrate_on == "cluster":
        if not address:
            from raylatent.config import ConfigError

            raise ConfigError("--calibrate-on cluster: needs --address (the cluster whose accelerators to time)")
        log(f"\ncalibrating as a Ray task on {where} with a trial's resources (a few timed steps per configuration) ...")
        cal = calibrate_on_cluster(grid, cap_batch, log)
    else:
        log(f"\ncalibrating on this machine's {hardware()} (a few timed steps per configuration; "
            f"--calibrate-on cluster --address ADDR times the cluster's accelerator instead) ...")
        cal = calibrate(grid, cap_batch, log)
    est = estimate(grid, cal, c, gp)
    rows = [[t.name, t.steps, f"{cal['step_s'][config_key(t)]:.4f}", duration(est["jobs"][t.name][1] - est["jobs"][t.name][0])]
            for t in trials]
    log(tabulate(rows, headers=["trial", "steps", "s/step", "trial wall-clock"], tablefmt="github"))
    slots = est["slots"]
    par = {"ray start": "", "ingest": f"{n_train_slices(grid):,.0f} training slices of {grid.data.patients * grid.data.slices if not grid.data.path else LIDC_SLICES:,}"
           + (" (LIDC-IDRI assumed)" if grid.data.path else ""),
           "generators": f"one kind at a time, {g.num_workers} DDP workers each (assumed to scale linearly)",
           "directions": f"{min(slots, len(trials))} trials at once ({slots} fit), pools first",
           "report": "renders included in directions",
           "other replicates": f"{g.replicates - 1} more: generators, directions and report again (trained kinds only)"}
    log(f"\nwall-clock estimate on {where}: {c:g} CPUs, {gp:g} GPUs, timed on {cal['hardware']}")
    log(tabulate([[k, par[k], duration(v)] for k, v in est["stages"].items()] + [["total", "", duration(est["total_s"])]],
                 headers=["stage", "assumes", "wall-clock"], tablefmt="github"))
    log(f"device-hours (what a bill counts): generators {est['generators_hours']:.2f}, "
        f"directions {est['directions_hours']:.2f}; fixed start-up costs are this machine's ({', '.join(f'{k} {v:g} s' for k, v in FIXED_S.items())})")
    return {"trials": len(trials), "calibration": cal, **est}
