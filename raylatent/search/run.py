"""The search stage: Ray Tune samples discovery settings, runs each sample on the grid's cells,
and (with ASHA) stops the clearly worse ones at the evaluations every trial reports.

One Tune trial = one sample of the searched `directions` fields, applied to every learned cell x
seed of the grid (its replicates, stepped in lockstep); every `eval_every` steps it reports the
replicates' mean held-out `rca`, `ls`, `shift_mae` and, where every generator knows its true
directions, the ground-truth `matched_cos` (mean Hungarian-matched |cos|) and `axes_recovered`
(milliseconds: they need only the direction matrix and the true axes), so ASHA can act on any of
them. A trial keeps its state in `trials/<name>/` (params.json, curve.json, per replicate a
weights-only checkpoint and its directions) and writes `record.json` last; a trial ASHA stopped
gets its record (marked `stopped_early`) from a driver callback the moment it stops.

Resume never restores Tune's pickles: random search regenerates its seeded samples and runs the
ones without a record (each from its own checkpoints); TPE is rebuilt and told every finished
trial's values and metric (`OptunaSearch.add_evaluated_point`), then samples the rest.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from raylatent.config import ConfigError
from raylatent.discovery.config import DirectionsConfig
from raylatent.discovery.records import CURVE, RECORD, RESULTS, Trial, read_json, write_json
from raylatent.search.space import (DEFAULT_NAME, REPORTED, TRUTH_METRICS, cells, criteria_of, max_evaluations,
                                    trial_name)

SEARCH_VERSION = 1
EXPERIMENT = "tune"
PARAMS = "params.json"
BEST = "best.json"


# --------------------------------------------------------------------------- the trainable
def search_trainable(config: dict, weights: dict | None = None, settings: dict | None = None,
                     data: dict | None = None) -> None:
    """One sample on every replicate, reporting the replicates' means to Tune at each evaluation."""
    from ray import tune

    from raylatent.discovery.evaluate import evaluate
    from raylatent.discovery.methods import method_of
    from raylatent.discovery.step import Discovery, DiscoveryConfig
    from raylatent.interpret.reading import truth_of
    from raylatent.interpret.truth import score_truth
    from raylatent.tune.trials import TrialFolder, generator_from_store, trial_device

    params = dict(config["trial"]["params"]) if "trial" in config else dict(config)
    name = tune.get_context().get_trial_name()
    dir_params, gen_params = settings["search"].split(params)
    dir_params, criteria = criteria_of(dir_params)
    d = dataclasses.replace(settings["directions"], **dir_params)  # validates the sample like a grid value
    device = trial_device(d)
    folder = TrialFolder(Path(settings["out"]) / "trials" / name)
    write_json(folder.path / PARAMS, {"trial": name, "params": params})
    own = own_generators(settings, gen_params, folder.path, device, data) if settings["search"].trains_generators else {}
    reps = []
    for td in settings["cells"]:
        t = Trial.from_dict(td)
        G = own[t.generator][0] if t.generator in own else \
            generator_from_store(t.generator, weights[t.generator], settings["generators"])
        cfg = DiscoveryConfig.for_trial(d, t)
        cfg.settings = {**cfg.settings, **(criteria if method_of(t.deformator).role == "learned" else {})}
        disc = Discovery(G, cfg, device=device, amp=device == "cuda")
        folder.resume(disc, t.name)
        reps.append((t, disc, truth_of(t.generator, G)))
    truth = all(r[2] is not None for r in reps)
    last = max(t.steps for t, *_ in reps)
    every = min(d.eval_every, last)
    targets = sorted({*range(every, last + 1, every), last})
    curve = folder.curve(min(disc.step_count for _, disc, _ in reps))
    t0 = time.time() - (curve[-1]["wall_s"] if curve else 0.0)

    def finish(metrics: dict) -> None:
        folder.finish({"trial": name, "params": params, **metrics, "steps": last, "evaluations": len(curve),
                       "stopped_early": False, "replicates": [t.name for t, *_ in reps],
                       **({"generators": {k: v[1] for k, v in own.items()}} if own else {})},
                      subs=[t.name for t, *_ in reps])

    remaining = [s for s in targets if s > (curve[-1]["step"] if curve else 0)]
    if not remaining and curve:  # killed after its last evaluation, before its record
        metrics = {k: v for k, v in curve[-1].items() if k != "replicates"}
        finish(metrics)
        tune.report(metrics)
        return
    for target in remaining:
        per = []
        for t, disc, tr in reps:
            while disc.step_count < min(target, t.steps):
                disc.step()
            m = evaluate(disc, n=d.eval_n)
            arrays = folder.save(disc, t.to_dict(), sub=t.name)
            if tr is not None:
                ts = score_truth(arrays, tr)
                m["matched_cos"] = float(np.mean(list(ts["matched_cos"].values())))
                m["axes_recovered"] = float(ts["axes_recovered"])
            per.append(m)
        keys = REPORTED + (TRUTH_METRICS if truth else ())
        metrics = {"step": target, **{k: float(np.mean([m[k] for m in per])) for k in keys},
                   "wall_s": round(time.time() - t0, 2)}
        curve.append({**metrics, "replicates": {t.name: {k: m[k] for k in keys} for (t, *_), m in zip(reps, per)}})
        folder.write_curve(curve)  # after the checkpoints: a kill in between evaluates this target again
        if target == last:
            finish(metrics)
        tune.report(metrics)


GENERATORS = "generators"


def own_generators(settings: dict, gen_params: dict, folder: Path, device: str, data: dict) -> dict[str, tuple]:
    """A sample's own generators, trained in this process (train/local.py) with the grid's
    `generators` settings and the sample's values, one per trainable kind the cells use; a
    resumed trial reuses the export or continues from its last epoch. `data`: the train and
    test images, read once by the driver and shared through the object store (zero-copy, read
    only: not a copy of the split per concurrent trial). kind -> (z -> image module,
    {chosen_epoch, fid})."""
    import warnings

    from raylatent.models.config import config_class
    from raylatent.models import kind_of
    from raylatent.models.export import load_generator
    from raylatent.train.local import train_in_process

    cfg = dataclasses.replace(config_class()(**settings["generators_base"]), **gen_params)  # validated as at load
    kinds = sorted({Trial.from_dict(td).generator for td in settings["cells"]})
    kinds = [k for k in kinds if kind_of(k).trainable]
    with warnings.catch_warnings():  # the object store's array is read-only; training only indexes it (copies)
        warnings.simplefilter("ignore", UserWarning)
        train = torch.from_numpy(data["train"])
    test = torch.from_numpy(data["test"][: cfg.fid_samples].copy())  # what HeldOut keeps, writable
    out = {}
    for kind in kinds:
        summary = train_in_process(kind, cfg, train, test, folder / GENERATORS, device=device)
        G = load_generator(folder / GENERATORS, kind).to(device)
        out[kind] = (G, {"chosen_epoch": summary["chosen_epoch"], "fid": summary["fid"]})
    return out


# --------------------------------------------------------------------------- driver pieces
_ISSUED: dict[tuple[str, str], str] = {}   # (experiment, trial id) -> name, in the driver process
_NEXT: dict[str, int] = {}


class _Names:
    """Tune trial names (and folder names): from the config where the driver chose it (random
    search), `search-default` for the grid's default, else the next number and the values' hash.
    Tune copies this object into every trial's spec, so the counter and the memo (Tune asks twice
    per trial: its name and its folder) live in this module, keyed by the experiment's folder."""

    def __init__(self, key: str, start: int, default: dict | None):
        self.key, self.default = key, default
        _NEXT[key] = start

    def __call__(self, trial) -> str:
        memo = (self.key, trial.trial_id)
        if memo not in _ISSUED:
            cfg = trial.config
            if "trial" in cfg:
                name = cfg["trial"]["name"]
            elif self.default is not None and cfg == self.default:
                name = DEFAULT_NAME
            else:
                name = trial_name(_NEXT[self.key], cfg)
                _NEXT[self.key] += 1
            _ISSUED[memo] = name
        return _ISSUED[memo]


def _stopped_record(folder: Path) -> dict | None:
    """A trial the scheduler stopped: its record from its own last evaluation."""
    curve, p = read_json(folder / CURVE, []), read_json(folder / PARAMS)
    if not curve or p is None:
        return None
    last = {k: v for k, v in curve[-1].items() if k != "replicates"}
    rec = {"trial": p["trial"], "params": p["params"], **last, "evaluations": len(curve), "stopped_early": True}
    # a trial reports only once its own generators are trained, so a stopped one has them too
    trained = {m.parent.name: read_json(m) for m in sorted((folder / GENERATORS).glob("*/metrics.json"))}
    if trained:
        rec["generators"] = {k: {"chosen_epoch": v["chosen_epoch"], "fid": v["fid"]} for k, v in trained.items() if v}
    return rec


def _write_stopped(folder: Path, rec: dict) -> None:
    """A stopped trial's record, then its replicates' checkpoints without optimiser states."""
    from raylatent.tune.trials import TrialFolder

    TrialFolder(folder).finish(rec, subs=[sub.name for sub in folder.iterdir() if sub.is_dir()])


def _callback(out: Path):
    from ray.tune import Callback

    class StoppedEarly(Callback):
        """Writes the record of a trial the scheduler stopped as soon as it stops (a trial that
        ran to the end wrote its own), so a driver killed later does not run it again."""

        def on_trial_complete(self, iteration, trials, trial, **info):
            folder = out / "trials" / str(trial)
            if not (folder / RECORD).exists():
                rec = _stopped_record(folder)
                if rec is not None:
                    _write_stopped(folder, rec)

    return StoppedEarly()


def _default_first(searcher, default: dict | None):
    """The grid's default configuration as the first trial, outside the searcher's history (it
    may lie outside the searched ranges, which Optuna would reject)."""
    from ray.tune.search import Searcher

    class DefaultFirst(Searcher):
        def __init__(self):
            super().__init__(metric=searcher.metric, mode=searcher.mode)
            self.default_id = None

        def set_search_properties(self, metric, mode, config, **spec):
            return searcher.set_search_properties(metric, mode, config, **spec)

        def suggest(self, trial_id):
            if default is not None and self.default_id is None:
                self.default_id = trial_id
                return dict(default)
            return searcher.suggest(trial_id)

        def on_trial_result(self, trial_id, result):
            if trial_id != self.default_id:
                searcher.on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id, result=None, error=False):
            if trial_id != self.default_id:
                searcher.on_trial_complete(trial_id, result=result, error=error)

        def save(self, checkpoint_path: str) -> None:
            """Nothing: a resumed search rebuilds its searcher from the finished records (never
            from Tune's pickles), so Tune's periodic searcher checkpoint has nothing to hold."""

        def restore(self, checkpoint_path: str) -> None:
            """Nothing to restore (see save)."""

    return DefaultFirst()


def finished_records(out: Path) -> dict[str, dict]:
    return {p.parent.name: r for p in sorted((out / "trials").glob(f"*/{RECORD}"))
            if (r := read_json(p)) is not None}


def run_search(generators_dir: str | os.PathLike, grid, out: str | os.PathLike, resume: bool = True,
               log=print, digests: dict[str, str] | None = None, verbose: int = 0,
               shards: str | os.PathLike | None = None) -> list[dict]:
    """Run the search under out/ and write out/results.json (every trial, best first) and
    out/best.json (the best configuration beside the grid's default). With `resume`, finished
    trials are kept and the searcher is told about them; without it, a stale partial run is
    cleared first."""
    from ray import tune

    from raylatent.tune.trials import generator_weights, keep_earlier_trials

    s, d = grid.search, grid.directions
    out = Path(out).resolve()
    if s.trains_generators and not shards:
        raise ConfigError("search.generators: each sample trains its own generators and needs the data "
                          "(run it through python -m raylatent.ablate, or pass shards=)")
    if (out / RESULTS).exists():
        log(f"search: {out / RESULTS} exists; skipping")
        return json.loads((out / RESULTS).read_text())
    if not resume:
        keep_earlier_trials(out / "trials", "search")
        for stale in ("trials", *(p.name for p in out.glob(f"{EXPERIMENT}*"))):
            if (out / stale).exists():
                shutil.rmtree(out / stale)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "search.json", s.to_dict(), indent=1)
    default = s.default_params(grid)
    done = finished_records(out)
    total = s.n_trials() + 1
    if done:
        log(f"search: resuming at {out}: {len(done)} of {total} trials finished (kept, not rerun)")
    weights, gcfg, digests = generator_weights(Path(generators_dir), fixed_kinds(grid), digests)
    reps = cells(grid)
    settings = {"directions": d, "generators": gcfg, "out": str(out), "cells": [t.to_dict() for t in reps],
                "search": s, "generators_base": dataclasses.asdict(grid.generators)}
    trainable = tune.with_resources(tune.with_parameters(search_trainable, weights=weights, settings=settings,
                                                         data=_training_data(grid, shards)),
                                    {"cpu": d.cpus_per_trial, "gpu": d.gpus_per_trial})
    tc = {"metric": s.metric, "mode": s.mode, "reuse_actors": True,  # a process start saved per trial (tune/stage.py)
          "max_concurrent_trials": s.max_concurrent or None}
    param_space = None
    if s.algorithm == "random":
        plan = [(DEFAULT_NAME, default)] + [(trial_name(i, p), p) for i, p in enumerate(s.random_samples())]
        todo = [{"name": n, "params": p} for n, p in plan if n not in done]
        param_space = {"trial": tune.grid_search(todo)}
        names = _Names(str(out), 0, None)
        tc.update(num_samples=1)
        log(f"search: random, {len(todo)} of {total} trials to run")
    else:
        from ray.tune.search.optuna import OptunaSearch

        # Optuna's own distributions (converted here: given Tune domains, OptunaSearch converts them
        # itself but warns on the console that it did)
        base = OptunaSearch(space=OptunaSearch.convert_search_space({x.key: x.to_tune() for x in s.specs}), metric=s.metric,
                            mode=s.mode, seed=s.seed)
        told = 0
        for name, r in done.items():
            if name == DEFAULT_NAME:
                continue
            base.add_evaluated_point(r["params"], r[s.metric])
            told += 1
        stale = [p for p in (out / "trials").glob("*") if p.is_dir() and p.name not in done and p.name != DEFAULT_NAME]
        for p in stale:  # an unfinished TPE sample: the rebuilt searcher will not suggest it again
            shutil.rmtree(p)
        todo_n = s.n_trials() - told + (DEFAULT_NAME not in done)
        names = _Names(str(out), max([int(n.split("-")[1]) + 1 for n in done if n != DEFAULT_NAME], default=0),
                       default if DEFAULT_NAME not in done else None)
        tc.update(num_samples=todo_n, search_alg=_default_first(base, default if DEFAULT_NAME not in done else None))
        log(f"search: TPE (Optuna), told {told} finished trials, {todo_n} of {total} to run"
            + (f", {len(stale)} unfinished samples dropped" if stale else ""))
        todo = list(range(todo_n))
    if s.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        tc["scheduler"] = ASHAScheduler(time_attr="training_iteration", max_t=max_evaluations(grid),
                                        grace_period=s.grace_period, reduction_factor=s.reduction_factor)
    if todo:
        from raylatent.console import TrialLines, tune_output
        from raylatent.monitor import tune_callbacks

        name = EXPERIMENT if not (out / EXPERIMENT).exists() else f"{EXPERIMENT}-{time.strftime('%Y%m%d-%H%M%S')}"
        tuner = tune.Tuner(trainable, param_space=param_space,
                           tune_config=tune.TuneConfig(trial_name_creator=names, trial_dirname_creator=names, **tc),
                           run_config=tune.RunConfig(name=name, storage_path=str(out), verbose=verbose,
                                                     callbacks=[_callback(out), TrialLines(len(todo), str, None, log),
                                                                *tune_callbacks(getattr(grid, "monitor", None), "search")],
                                                     failure_config=tune.FailureConfig(max_failures=d.max_failures)))
        with tune_output(verbose):
            results = tuner.fit()
        for res in results:
            folder = out / "trials" / Path(res.path).name
            if res.error:
                log(f"search: trial {folder.name} failed: {str(res.error).splitlines()[0]}")
            elif not (folder / RECORD).exists() and (rec := _stopped_record(folder)) is not None:
                _write_stopped(folder, rec)
    done = finished_records(out)
    if len(done) < total:
        log(f"search: {total - len(done)} of {total} trials did not finish; rerun with --resume (finished ones are kept)")
        return list(done.values())
    return write_results(out, grid, done, log)


def write_results(out: Path, grid, done: dict, log=print) -> list[dict]:
    """results.json: every trial with its sampled values, best first; best.json: the best beside
    the default."""
    s = grid.search
    sign = -1 if s.mode == "max" else 1
    rows = sorted(done.values(), key=lambda r: (sign * r[s.metric], r["trial"]))
    for r in rows:
        r["default"] = r["trial"] == DEFAULT_NAME
    write_json(out / RESULTS, rows, indent=1)
    best = rows[0]
    dflt = done.get(DEFAULT_NAME)
    write_json(out / BEST, {"metric": s.metric, "mode": s.mode, "best": best, "default": dflt,
                            "searched": [x.key for x in s.specs],
                            "best_directions": best_directions(grid, s.split(best["params"])[0]),
                            **({"best_generators": {**grid.to_dict()["generators"], **s.split(best["params"])[1]}}
                               if s.trains_generators else {})}, indent=1)
    log(f"search: best {best['trial']} {s.metric}={best[s.metric]:.4f} {best['params']}"
        + (f"; the grid's default {s.metric}={dflt[s.metric]:.4f}" if dflt else ""))
    return rows


def best_directions(grid, dir_params: dict) -> dict:
    """The grid's directions section with the best sample's values, criteria in every learned
    deformator entry (where a grid sets them), ready to paste."""
    fields, criteria = criteria_of(dir_params)
    out = {**grid.to_dict()["directions"], **fields}
    if criteria:
        out["deformators"] = [{**e, **criteria} for e in out["deformators"]]
    return out


def _training_data(grid, shards) -> dict | None:
    """For a search of generator fields: the train and test images (numpy), once, for every
    trial through the object store; a searched batch_size the split cannot fill is refused here,
    in one line, before any trial starts (a trial would fail on it at every retry)."""
    if not grid.search.trains_generators:
        return None
    from raylatent.data.shards import load_split

    train = load_split(str(shards), "train").images.numpy()
    test = load_split(str(shards), "test").images.numpy()
    g = grid.generators
    sizes = [g.batch_size] + [v for x in grid.search.specs_of("generators") if x.name == "batch_size" for v in x.endpoints()]
    if max(sizes) > len(train):
        raise ConfigError(f"search.generators.batch_size: up to {max(sizes)} slices a batch, and the train split has "
                          f"{len(train)}; lower the range (a trial trains on one process: batch_size slices a step)")
    return {"train": train, "test": test if len(test) else train[: g.fid_samples]}


def fixed_kinds(grid) -> list[str]:
    """The generators a search reads from the generators stage: all of the cells' generators,
    or, when it searches generator fields, only those fixed by construction (the others each
    trial trains)."""
    from raylatent.models import kind_of

    return [k for k in sorted(grid.directions.generators)
            if not (grid.search.trains_generators and kind_of(k).trainable)]


def search_key_inputs(grid, digests: dict, data: str | None = None) -> dict:
    """What the search folder is keyed by (scheduling settings left out): the generators it
    reads (their digests), the data it reads (z regressor, held-out slices; a seeded generator's
    weights do not change with it) and, when trials train their own, the generator settings."""
    from raylatent.discovery import DISCOVERY_VERSION
    from raylatent.stages import science
    from raylatent.train import GENERATORS_VERSION

    sd = {k: v for k, v in grid.search.to_dict().items() if k != "max_concurrent"}
    key = {"data": data, "generators": digests,
           "settings": science("directions", DirectionsConfig.key_settings(grid.to_dict()["directions"])),
           "search": sd, "code": [DISCOVERY_VERSION, SEARCH_VERSION]}
    if grid.search.trains_generators:
        key.update(trained=science("generators", grid.to_dict()["generators"]),
                   code=key["code"] + [GENERATORS_VERSION])
    return key


__all__ = ["run_search", "search_trainable", "write_results"]
