"""The `directions` stage: every direction-discovery configuration as a Ray Tune trial.

Generator weights go once into the object store (`tune.with_parameters`, numpy arrays), never
into `param_space`. Each trial reports held-out RCA and Ls to Tune every `eval_every` steps
(Tune's tensorboardX logger writes them under `tune/<name>/`; the trial itself writes its curve
and a sweep image of a few directions to `tensorboard/<name>/`, and MLflow / W&B runs when the
grid's `monitor:` asks) and keeps its own state in `trials/<name>/`: a weights-only checkpoint,
its directions, its curve and, when done, its labels and record. A finished trial's checkpoint
keeps only the trained A and R (what re-measuring its numbers needs), not the optimiser states. A failed trial is retried from that checkpoint, and `--resume` reruns only the trials
without a record, never restoring Tune's pickled experiment state. On a multi-node cluster the run
directory must be on storage every node shares (as Tune's own storage_path requires).
Results land in `results.json`, one record per trial.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from raylatent.discovery.config import DirectionsConfig
from raylatent.monitor import MonitorConfig
from raylatent.discovery.evaluate import evaluate
from raylatent.discovery.records import (LABELS, NO_RECONSTRUCTOR, RESULTS, Trial, TrialRecord, finished, folder_of,
                                         read_json, record_of, write_json)
from raylatent.discovery.runner import run
from raylatent.discovery.step import Discovery, DiscoveryConfig
from raylatent.interpret.reading import label_directions, truth_of
from raylatent.tune.trials import (TrialFolder, directions_of, generator_from_store, generator_weights, keep_earlier_trials,
                                   trial_device)

EXPERIMENT = "tune"
TENSORBOARD = "tensorboard"  # the trials' own event files (curves, direction sweeps), one folder each
CURVE_KEYS = ("step", "rca", "ls", "shift_mae", "train_rca", "loss")
CHANCE = "chance.json"
COUPLINGS = "couplings.json"
COVERAGE = "coverage.json"
COVERAGE_SLICES = 8192  # slices per split the coverage check reads (a stable pseudo-random subset beyond)
__all__ = ["RESULTS", "run_directions", "directions_trainable", "z_regressor"]


def directions_trainable(config: dict, weights: dict | None = None, zreg=None, settings: dict | None = None) -> None:
    """One trial: discovery for its steps, reporting to Tune. The shared settings (directions and
    generators configuration, generator digests) come through `with_parameters`, so Tune's console
    shows each trial's own configuration only."""
    import ray
    from ray import tune

    t = Trial.from_dict(config["trial"])
    d: DirectionsConfig = settings["directions"]
    G = generator_from_store(t.generator, weights[t.generator], settings["generators"])
    device = trial_device(d)
    disc = Discovery(G, DiscoveryConfig.for_trial(d, t), device=device, amp=device == "cuda")
    folder = TrialFolder(folder_of(Path(settings["out"]), t))
    # resume (a retry after a failure, or --resume after a kill) from the trial's own files only
    resumed = folder.resume(disc)
    curve = folder.curve(disc.step_count) if resumed else []
    t0 = time.time()
    node_id = ray.get_runtime_context().get_node_id()
    provenance = {**t.to_dict(), "generator_digest": settings["digests"][t.generator]}

    def finish(metrics: dict) -> dict:
        """Say what each direction does, then the record."""
        write_json(folder.path / LABELS, label_directions(G, directions_of(disc), zreg, truth_of(t.generator, G),
                                                          couplings=settings.get("couplings"), sweep=d.sweep()))
        metrics = {**metrics, "trial_wall_s": time.time() - t0, "node_id": node_id}
        folder.finish(metrics)
        return metrics

    board = _Board(settings.get("monitor"), settings.get("tensorboard"), t, G, d.shift_scale)

    def report(metrics: dict, _checkpointed: bool) -> None:
        curve.append({k: metrics[k] for k in CURVE_KEYS})
        now = folder.save(disc, provenance, curve=curve)
        board.log(metrics, now)
        final = metrics["step"] >= t.steps
        tune.report(finish(metrics) if final else {**metrics, "trial_wall_s": time.time() - t0, "node_id": node_id})
        if settings.get("after_report"):  # an injected observer (tests use it to fail a trial once)
            settings["after_report"](metrics, resumed)

    try:
        if disc.step_count >= t.steps:  # killed after its last checkpoint, before its record
            tune.report(finish(curve[-1] if curve else {"step": disc.step_count, **evaluate(disc, n=d.eval_n)}))
            return
        run(disc, t.steps, eval_every=min(d.eval_every, t.steps), eval_n=d.eval_n, on_report=report)
    finally:  # a trial's process may end right after: what was logged must be on disk first
        board.close()


class _Board:
    """A trial's own TensorBoard run (`<out>/tensorboard/<trial>/`): its curve as scalars and, at
    every evaluation, a sweep image per latent (the first few directions over -shift..+shift).
    Tune's tensorboardX logger has only the scalars, under `tune/`; this adds what the
    directions look like while they train. Off when `folder` is None (a caller without one)."""

    def __init__(self, monitor: MonitorConfig | None, folder: str | None, t: Trial, G, shift_scale: float):
        self.writer = None
        if folder is None:
            return
        from torch.utils.tensorboard import SummaryWriter  # flush() waits for queued events (tensorboardX did not)

        from raylatent.monitor import sweep_latents

        monitor = monitor or MonitorConfig()
        self.writer, self.G, self.shift_scale = SummaryWriter(str(Path(folder) / t.name)), G, shift_scale
        self.n_dirs = monitor.sweep_directions
        self.z = sweep_latents(G.latent_dim, monitor.sweep_latents, t.seed)

    def log(self, metrics: dict, arrays: dict) -> None:
        if self.writer is None:
            return
        from raylatent.monitor import sweep_images

        step = int(metrics["step"])
        for k in CURVE_KEYS[1:]:
            self.writer.add_scalar(f"directions/{k}", float(metrics[k]), step)
        if self.n_dirs:
            for i, img in enumerate(sweep_images(self.G, arrays, self.z, self.shift_scale, self.n_dirs)):
                self.writer.add_image(f"sweep/z{i}", img, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def z_regressor(shards: str | None):
    """The slice-position regressor, fitted once per experiment on the training shards (their
    slice_frac) and shipped to every trial; None without shards (z is then not measured)."""
    from raylatent.data.shards import load_split
    from raylatent.interpret.zposition import ZRegressor

    if not shards:
        return None
    tr = load_split(shards, "train", limit=3000)
    return ZRegressor.fit(tr.images[:, 0].numpy(), tr.columns["slice_frac"]) if len(tr) else None


def run_directions(generators_dir: str | os.PathLike, d: DirectionsConfig, out: str | os.PathLike,
                   resume: bool = True, after_report=None, shards: str | None = None,
                   log=print, digests: dict[str, str] | None = None, verbose: int = 0,
                   trial_lines: bool = True, monitor: MonitorConfig | None = None) -> list[dict]:
    """Run the trials under out/ (with `resume`, only those without a finished record, each from
    its own last checkpoint); write out/results.json. One console line per finished trial (with
    `verbose` >= 1 also Tune's own status table). `digests`: the generators' weight digests
    when the caller has them (ablate's Plan keys the stage folder by them), else they are hashed. `after_report(metrics, resumed)`, if given,
    runs in every trial after each report (it must be picklable). `monitor`: the sweeps' size and
    the opt-in MLflow / W&B trackers (defaults: sweeps, no trackers). What each generator needs once
    (the chance pool, the closed-form methods) runs as Ray tasks beside the trials.

    Resuming reads only what the trials wrote themselves (JSON, npz without pickles and
    weights-only checkpoints). Tune's experiment state (tuner.pkl, trial pickles) is never
    restored: a run directory received from someone else cannot run code through it."""
    import ray
    from ray import tune

    from raylatent.console import TrialLines, tune_output
    from raylatent.monitor import tune_callbacks

    out = Path(out).resolve()
    if (out / RESULTS).exists():
        log(f"directions: {out / RESULTS} exists; skipping")
        return json.loads((out / RESULTS).read_text())
    # longest first: Tune starts trials in grid order, so short ones fill the slots at the end
    trials = sorted(d.trials(), key=lambda t: -t.steps)
    if resume:
        done = [t for t in trials if finished(out, t)]
        if done or (out / "trials").exists():
            log(f"directions: restoring the interrupted experiment at {out}: {len(done)} of {len(trials)} trials "
                f"finished, the others continue from their last checkpoint")
    else:
        keep_earlier_trials(out / "trials", "directions")
        for stale in ("trials", CHANCE, TENSORBOARD, *(p.name for p in out.glob(f"{EXPERIMENT}*"))):
            if (out / stale).is_dir():
                shutil.rmtree(out / stale)
            elif (out / stale).exists():
                (out / stale).unlink()
        done = []
    todo = [t for t in trials if t not in done]
    weights, gcfg, digests = generator_weights(Path(generators_dir), d.generators, digests)
    zreg = z_regressor(shards)
    out.mkdir(parents=True, exist_ok=True)
    couplings = measured_couplings(out, int(gcfg["size"]), int(gcfg["latent_dim"]), zreg, log)
    saved = read_json(out / CHANCE, {})
    k_closed = max(x["K"] for x in d.deformators) if d.baselines else 0
    control_Ks = sorted({int(x["K"]) for x in d.deformators})
    per_generator = ray.remote(num_cpus=1)(generator_scores)
    data = ray.put(_coverage_data(shards))  # once into the object store for every generator's task
    jobs = {kind: per_generator.remote(kind, weights[kind], gcfg, digests[kind], zreg, d.chance_pool, k_closed,
                                       str(out), saved.get(kind, {}), couplings, control_Ks, data, d.sweep())
            for kind in sorted(weights)}
    log(f"directions: {len(todo)} trials, and for {len(jobs)} generators the chance pool "
        f"({d.chance_pool} random directions), the positive controls"
        f"{' and the closed-form methods' if d.baselines else ''} beside them")
    if todo:
        settings = {"directions": d, "generators": gcfg, "digests": digests, "after_report": after_report,
                    "out": str(out), "monitor": monitor, "tensorboard": str(out / TENSORBOARD), "couplings": couplings}
        trainable = tune.with_resources(tune.with_parameters(directions_trainable, weights=weights, zreg=zreg,
                                                             settings=settings),
                                        {"cpu": d.cpus_per_trial, "gpu": d.gpus_per_trial})
        name = EXPERIMENT if not (out / EXPERIMENT).exists() else f"{EXPERIMENT}-{time.strftime('%Y%m%d-%H%M%S')}"
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search([t.to_dict() for t in todo])},
            # reuse_actors: a trial in the actor of a finished one skips a process start (imports,
            # the generators from the object store): 8 short trials 54 s -> 34 s on 2 cores, with
            # identical RCA and Ls (every trial seeds its own generators)
            tune_config=tune.TuneConfig(metric="rca", mode="max", reuse_actors=True,
                                        trial_dirname_creator=_tune_name, trial_name_creator=_tune_name),
            run_config=tune.RunConfig(name=name, storage_path=str(out), verbose=verbose,
                                      callbacks=[TrialLines(len(todo), _tune_name, _tune_K, log if trial_lines else (lambda *_: None)),
                                                 *tune_callbacks(monitor, "directions")],
                                      failure_config=tune.FailureConfig(max_failures=d.max_failures)),
        )
        with tune_output(verbose):
            grid = tuner.fit()
        for res in grid:
            t = Trial.from_dict(res.config["trial"])
            if res.error and not finished(out, t):
                log(f"directions: trial {t.name} failed: {str(res.error).splitlines()[0]}")
    if not all(finished(out, t) for t in trials):
        for job in jobs.values():
            ray.cancel(job)
        records = [record_of(out, t, d.gamma) for t in trials if finished(out, t)]
        log(f"directions: {len(trials) - len(records)} of {len(trials)} trials did not finish; "
            f"rerun with --resume to retry them (finished ones are kept)")
        return [r.to_dict() for r in records]
    from raylatent.interpret.chance import ChanceLimits
    from raylatent.interpret.labels import FACTORS

    results = {kind: ray.get(job) for kind, job in jobs.items()}
    # the thresholds the once-per-generator records were judged by in their tasks, taken as they are:
    # each (generator, K) threshold is computed once, so the records and chance.json cannot disagree
    limits = ChanceLimits({k: np.asarray(entry["scores"]) for k, (entry, _, _) in results.items()}, FACTORS,
                          known={k: entry.get("judged", {}) for k, (entry, _, _) in results.items()})
    records: list[TrialRecord] = [record_of(out, t, d.gamma, limits(t.generator, t.K)) for t in trials]
    records += [r for _, closed, _ in results.values() for r in closed]
    coverage = {k: cov for k, (_, _, cov) in results.items() if cov is not None}
    if coverage:
        write_json(out / COVERAGE, coverage, indent=1)
        mark_generated(records, coverage)
    for r in records:
        for K in ([int(k) for k in r.found_by_K] if r.found_by_K is not None
                  else [r.K] if r.reconstructor == NO_RECONSTRUCTOR else []):
            limits(r.generator, K)  # so chance.json lists the thresholds the closed-form and control rows were held to
    write_json(out / CHANCE, {k: {**{f: v for f, v in entry.items() if f != "judged"}, "quantile": 0.95,
                                  "K": limits.table().get(k, {})}
                              for k, (entry, _, _) in results.items()}, indent=1)
    rows = [r.to_dict() for r in sorted(records, key=lambda r: r.trial)]
    write_json(out / RESULTS, rows, indent=1)
    return rows


def _coverage_data(shards: str | None) -> dict | None:
    """The splits the coverage check compares generated slices with (numpy, model scale)."""
    from raylatent.data.shards import load_split

    if not shards:
        return None
    train, test = (load_split(shards, split, limit=COVERAGE_SLICES).images for split in ("train", "test"))
    return {"train": train.numpy(), "test": test.numpy()} if len(train) and len(test) else None


def mark_generated(records: list[TrialRecord], coverage: dict) -> None:
    """Each record's factors say whether their generator varies them (`generated`), so a factor
    the generator does not vary reads "not generated", not "not found"."""
    for r in records:
        factors = (coverage.get(r.generator) or {}).get("factors", {})
        for name, f in (r.factors or {}).items():
            if name in factors and factors[name].get("generated") is not None:
                f["generated"] = bool(factors[name]["generated"])


def measured_couplings(out: Path, size: int, latent_dim: int, zreg, log=print) -> dict:
    """The labeller's couplings (interpret/couplings.py), measured once per experiment on the
    phantom generator at the run's image size with its z regressor, and kept in couplings.json
    (read back when it is the same image and latent size, labeller and calibration latents)."""
    from raylatent.interpret.couplings import LATENTS, as_couplings, measure_couplings
    from raylatent.interpret.labels import LABELLER_VERSION

    saved = read_json(out / COUPLINGS, {})
    if (saved.get("size"), saved.get("latent_dim"), saved.get("labeller"), saved.get("latents")) == (
            size, latent_dim, LABELLER_VERSION, LATENTS):
        try:
            return as_couplings(saved.get("couplings"))
        except ValueError:
            pass  # damaged: measured again below
    t0 = time.time()
    couplings = measure_couplings(size, zreg, latent_dim)
    write_json(out / COUPLINGS, {"size": size, "latent_dim": latent_dim, "labeller": LABELLER_VERSION, "latents": LATENTS,
                                 "couplings": couplings,
                                 "wall_s": round(time.time() - t0, 1)}, indent=1)
    log(f"directions: the attribute couplings of the eight factors measured on the phantom at {size}^2 "
        f"({time.time() - t0:.1f} s)")
    return couplings


def pool_matches(entry: dict, pool: int, sweep) -> bool:
    """Whether a saved chance pool (chance.json's entry) is the one this stage would score: its
    size, factors, labeller and sweep (labels.Sweep; an entry without one was swept by default,
    and the default sweep is not written, so pools saved before it was a setting still match)."""
    from raylatent.interpret.labels import FACTORS, LABELLER_VERSION, Sweep

    saved = entry.get("sweep")
    return (entry.get("pool") == pool and entry.get("factors") == list(FACTORS) and "scores" in entry
            and entry.get("labeller") == LABELLER_VERSION
            and (saved is None and sweep == Sweep() or saved == [sweep.latents, sweep.steps]))


def generator_scores(kind: str, state: dict, gcfg: dict, digest: str, zreg, pool: int, k_closed: int,
                     out: str, saved: dict, couplings: dict | None = None, control_Ks=(),
                     data: dict | None = None, sweep=None) -> tuple[dict, list[TrialRecord], dict | None]:
    """Once per generator: what chance reaches on it (a pool of random unit directions scored like
    a trial's, interpret/chance.py; reused from `saved` when it matches), the positive controls
    held to it at every grid K (`control_Ks`), with k_closed > 0 the closed-form methods' records,
    and, given the data's splits, whether it varies each factor and copies training slices
    (interpret/coverage.py). Every set is labelled with the trials' `sweep` (interpret/labels.Sweep; a
    pool saved with another sweep is scored again). Runs as a Ray task beside the trials."""
    from raylatent.discovery.closed_form import closed_form_records
    from raylatent.interpret.chance import ChanceLimits, pool_scores, score_matrix
    from raylatent.interpret.labels import FACTORS, LABELLER_VERSION, Sweep

    torch.set_num_threads(1)
    G = generator_from_store(kind, state, gcfg)
    sweep = sweep or Sweep()
    swept = {} if sweep == Sweep() else {"sweep": [sweep.latents, sweep.steps]}
    entry = saved
    if not pool_matches(entry, pool, sweep):
        t0 = time.time()
        S = score_matrix(pool_scores(G, G.latent_dim, pool, zreg=zreg, couplings=couplings, sweep=sweep), FACTORS)
        entry = {"pool": pool, "factors": list(FACTORS), "labeller": LABELLER_VERSION, **swept,
                 "scores": np.round(S, 4).tolist(), "wall_s": round(time.time() - t0, 1)}
    limits = ChanceLimits({kind: np.asarray(entry["scores"])}, FACTORS)
    once = closed_form_records({kind: G}, {kind: digest}, k_closed, zreg, Path(out), limits, couplings=couplings,
                               control_Ks=control_Ks, sweep=sweep)
    entry = {**entry, "judged": limits.table().get(kind, {})}  # what the records above were held to
    cov = None
    if data is not None:
        from raylatent.interpret.coverage import coverage

        cov = coverage(G, torch.tensor(data["train"]), torch.tensor(data["test"]), zreg)  # copies: the store's are read-only
    return entry, once, cov


def _tune_name(tr) -> str:
    return Trial.from_dict(tr.config["trial"]).name


def _tune_K(tr) -> int:
    return Trial.from_dict(tr.config["trial"]).K


def render_for_report(generators_dir: str | os.PathLike, directions_dir: str | os.PathLike,
                      shards: str | os.PathLike, shifts, z_direction: int = -1, log=print,
                      explorer_directions: int | None = None) -> Path:
    """The report's images, rendered once per report setting beside the directions they show
    (directions_dir/renders/<key>/); skipped when already there."""
    from raylatent.data.shards import load_split
    from raylatent.discovery.renders import EXPLORER_DIRECTIONS, MANIFEST, render_all, render_key
    from raylatent.models.export import load_exported

    explorer_directions = EXPLORER_DIRECTIONS if explorer_directions is None else explorer_directions
    ddir = Path(directions_dir)
    out = ddir / "renders" / render_key(shifts, z_direction, explorer_directions)
    if (out / MANIFEST).exists():
        return out
    records = json.loads((ddir / RESULTS).read_text())
    models = {k: load_exported(Path(generators_dir), k) for k in sorted({r["generator"] for r in records})}
    test = load_split(str(shards), "test")
    render_all(ddir, out, records, models, test.images, shifts, z_direction, log=log,
               explorer_directions=explorer_directions)
    return out
