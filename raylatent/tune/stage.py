"""The `directions` stage: every direction-discovery configuration as a Ray Tune trial.

Generator weights go once into the object store (`tune.with_parameters`, numpy arrays), never
into `param_space`. Each trial reports held-out RCA and Ls to Tune every `eval_every` steps
(TensorBoard event files come from Tune's tensorboardX logger) and keeps its own state in
`trials/<name>/`: a weights-only checkpoint, its directions, its curve and, when done, its labels
and record. A failed trial is retried from that checkpoint, and `--resume` reruns only the trials
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

from raylatent.config import DirectionsConfig, trial_name
from raylatent.discovery.export import save_directions
from raylatent.discovery.evaluate import evaluate
from raylatent.discovery.runner import load_checkpoint, run, save_checkpoint
from raylatent.discovery.step import Discovery, DiscoveryConfig

EXPERIMENT = "tune"
LABELS = "labels.json"
RESULTS = "results.json"
DIRECTIONS = "directions.npz"
CURVE = "curve.json"
RECORD = "record.json"  # written last by a trial: its presence means the trial finished
CURVE_KEYS = ("step", "rca", "ls", "shift_mae", "train_rca", "loss")


def _generator_from_state(kind: str, state: dict, gcfg: dict) -> torch.nn.Module:
    from raylatent.models import as_generator
    from raylatent.models.export import build_generator

    return as_generator(build_generator(kind, gcfg, {k: torch.from_numpy(np.array(v)) for k, v in state.items()}))


def directions_trainable(config: dict, weights: dict | None = None, zreg=None, settings: dict | None = None) -> None:
    """One trial: discovery for config['trial']['steps'] steps, reporting to Tune. The shared
    settings (directions and generators configuration) come through `with_parameters`, so Tune's
    console shows each trial's own configuration only."""
    from ray import tune

    t = config["trial"]
    d: DirectionsConfig = settings["directions"]
    G = _generator_from_state(t["generator"], weights[t["generator"]], settings["generators"])
    cuda = torch.cuda.is_available() and d.gpus_per_trial > 0
    device = "cuda" if cuda else "cpu"
    if not cuda:
        torch.set_num_threads(max(1, int(d.cpus_per_trial)))
    cfg = DiscoveryConfig(K=t["K"], deformator=t["deformator"], reconstructor=t["reconstructor"],
                          recon_width=d.width_for(t["reconstructor"]), batch=d.batch, gamma=d.gamma, lr=d.lr_for(t["reconstructor"]),
                          lr_directions=d.lr_directions or None, shift_scale=d.shift_scale,
                          min_shift=d.min_shift, seed=t["seed"])
    disc = Discovery(G, cfg, device=device, amp=cuda)
    folder = Path(settings["out"]) / "trials" / trial_name(t)
    folder.mkdir(parents=True, exist_ok=True)
    # resume (a retry after a failure, or --resume after a kill) from our own files only: a
    # weights-only checkpoint and JSON, never Tune's pickles
    resumed = load_checkpoint(disc, folder)
    curve = [c for c in _read_json(folder / CURVE, []) if c["step"] <= disc.step_count] if resumed else []
    t0 = time.time()
    import ray

    node_id = ray.get_runtime_context().get_node_id()

    def arrays() -> dict:
        return {k: v.detach().cpu() for k, v in disc.A.arrays().items()}

    def finish(metrics: dict) -> dict:
        """Say what each direction does, then write the record (last: it marks the trial done)."""
        _write_json(folder / LABELS, label_directions(G, arrays(), zreg))
        metrics = {**metrics, "trial_wall_s": time.time() - t0, "node_id": node_id}
        _write_json(folder / RECORD, metrics)
        return metrics

    def report(metrics: dict, _checkpointed: bool) -> None:
        save_directions(folder / DIRECTIONS, arrays(), {**cfg.to_dict(), **t})
        curve.append({k: metrics[k] for k in CURVE_KEYS})
        _write_json(folder / CURVE, curve)  # before the checkpoint: a kill in between re-evaluates, never skips
        save_checkpoint(disc, folder)
        final = metrics["step"] >= t["steps"]
        tune.report(finish(metrics) if final else {**metrics, "trial_wall_s": time.time() - t0, "node_id": node_id})
        if settings.get("after_report"):  # an injected observer (tests use it to fail a trial once)
            settings["after_report"](metrics, resumed)

    if disc.step_count >= t["steps"]:  # killed after its last checkpoint, before its record
        tune.report(finish(curve[-1] if curve else {"step": disc.step_count, **evaluate(disc, n=d.eval_n)}))
        return
    run(disc, t["steps"], eval_every=min(d.eval_every, t["steps"]), eval_n=d.eval_n, on_report=report)


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def z_regressor(shards: str | None):
    """Fitted once per experiment on the training shards and shipped to every trial."""
    from raylatent.data.shards import load_split
    from raylatent.interpret.zposition import ZRegressor

    if not shards:
        return None
    tr = load_split(shards, "train", limit=3000)
    return ZRegressor.fit(tr.images[:, 0].numpy(), tr.columns["slice_frac"]) if len(tr) else None


def label_directions(G, A: torch.Tensor | dict, zreg=None) -> dict:
    """Scores, labels and factor recovery for every direction of A (a matrix, or an export's
    arrays so the authors' proj directions are swept along their real path; see interpret.labels)."""
    from raylatent.interpret.labels import factor_recovery, score_directions

    G = G.cpu().float()
    scores = score_directions(G, A, zreg=zreg)
    return {"directions": scores, "factors": factor_recovery(scores)}


def baseline_records(weights: dict, gcfg: dict, K: int, zreg, out: Path) -> list[dict]:
    """SeFa and GANSpace directions of each generator, scored like the learned ones."""
    from raylatent.discovery.baselines import first_layer_of, ganspace, sefa

    records = []
    for kind, state in weights.items():
        G = _generator_from_state(kind, state, gcfg).eval()
        d = G.latent_dim
        for name, A in (("sefa", sefa(G.first_linear.detach(), min(K, d))),
                        ("ganspace", ganspace(first_layer_of(G), d, min(K, d)))):
            trial = f"{kind}-none-{name}-K{A.shape[1]}-s0"
            dest = out / "trials" / trial
            dest.mkdir(parents=True, exist_ok=True)
            save_directions(dest / DIRECTIONS, A, {"baseline": name, "generator": kind})
            labels = label_directions(G, A, zreg)
            (dest / LABELS).write_text(json.dumps(labels))
            records.append({"trial": trial, "generator": kind, "reconstructor": "none", "deformator": name,
                            "K": A.shape[1], "seed": 0, "iterations": 0, "rca": None, "ls": None, "shift_mae": None,
                            "wall_s": 0.0,
                            "directions": str(Path("trials") / trial / DIRECTIONS),
                            **_label_summary(labels)})
    return records


def _label_summary(labels: dict) -> dict:
    return {"labels": [r["label"] for r in labels["directions"]],
            "factors": {k: {"direction": v["direction"], "rho": round(v["rho"], 3), "purity": round(v["purity"], 3),
                            "found": v["found"]} for k, v in labels["factors"].items()},
            "factors_found": sum(v["found"] for v in labels["factors"].values())}


def _weights(generators_dir: Path, kinds) -> tuple[dict, dict]:
    from raylatent.models.export import read_generator

    weights, gcfg = {}, None
    for kind in kinds:
        state = read_generator(generators_dir, kind)
        weights[kind] = {k: v.numpy() for k, v in state["model"].items()}
        gcfg = json.loads(state["config"])
    return weights, gcfg


def run_directions(generators_dir: str | os.PathLike, d: DirectionsConfig, out: str | os.PathLike,
                   resume: bool = True, after_report=None, shards: str | None = None,
                   log=print) -> list[dict]:
    """Run the trials under out/ (with `resume`, only those without a finished record, each from
    its own last checkpoint); write out/results.json. `after_report(metrics, resumed)`, if given,
    runs in every trial after each report (it must be picklable).

    Resuming reads only what the trials wrote themselves (JSON, npz without pickles and
    weights-only checkpoints). Tune's experiment state (tuner.pkl, trial pickles) is never
    restored: a run directory received from someone else cannot run code through it."""
    from ray import tune

    out = Path(out).resolve()
    if (out / RESULTS).exists():
        log(f"directions: {out / RESULTS} exists; skipping")
        return json.loads((out / RESULTS).read_text())
    # longest first: Tune starts trials in grid order, so short ones fill the slots at the end
    trials = sorted(d.trials(), key=lambda t: -t["steps"])
    if resume:
        done = [t for t in trials if _finished(out, t)]
        if done or (out / "trials").exists():
            log(f"directions: restoring the interrupted experiment at {out}: {len(done)} of {len(trials)} trials "
                f"finished, the others continue from their last checkpoint")
    else:
        for stale in ("trials", *(p.name for p in out.glob(f"{EXPERIMENT}*"))):
            shutil.rmtree(out / stale, ignore_errors=True)
        done = []
    todo = [t for t in trials if t not in done]
    weights, gcfg = _weights(Path(generators_dir), d.generators)
    zreg = z_regressor(shards) if todo or d.baselines else None
    if todo:
        settings = {"directions": d, "generators": gcfg, "after_report": after_report, "out": str(out)}
        trainable = tune.with_resources(tune.with_parameters(directions_trainable, weights=weights, zreg=zreg,
                                                             settings=settings),
                                        {"cpu": d.cpus_per_trial, "gpu": d.gpus_per_trial})
        name = EXPERIMENT if not (out / EXPERIMENT).exists() else f"{EXPERIMENT}-{time.strftime('%Y%m%d-%H%M%S')}"
        grid = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search(todo)},
            tune_config=tune.TuneConfig(metric="rca", mode="max", reuse_actors=False,
                                        trial_dirname_creator=lambda tr: trial_name(tr.config["trial"]),
                                        trial_name_creator=lambda tr: trial_name(tr.config["trial"])),
            run_config=tune.RunConfig(name=name, storage_path=str(out),
                                      failure_config=tune.FailureConfig(max_failures=d.max_failures)),
        ).fit()
        for res in grid:
            if res.error and not _finished(out, res.config["trial"]):
                log(f"directions: trial {trial_name(res.config['trial'])} failed: {str(res.error).splitlines()[0]}")
    records = [_record(out, t, d.gamma) for t in trials if _finished(out, t)]
    if d.baselines and len(records) == len(trials):
        log("directions: scoring the closed-form baselines (SeFa, GANSpace)")
        records += baseline_records(weights, gcfg, max(x["K"] for x in d.deformators), zreg, out)
    records.sort(key=lambda r: r["trial"])
    if len([r for r in records if r["reconstructor"] != "none"]) == len(trials):
        tmp = out / f".{RESULTS}.tmp"
        tmp.write_text(json.dumps(records, indent=1))
        os.replace(tmp, out / RESULTS)
    else:
        log(f"directions: {len(trials) - len(records)} of {len(trials)} trials did not finish; "
            f"rerun with --resume to retry them (finished ones are kept)")
    return records


def _finished(out: Path, t: dict) -> bool:
    return _read_json(out / "trials" / trial_name(t) / RECORD, None) is not None


def _record(out: Path, t: dict, gamma: float) -> dict:
    """One results.json record from the trial's own files."""
    folder = out / "trials" / trial_name(t)
    m = _read_json(folder / RECORD, {})
    labels = _read_json(folder / LABELS, None)
    return {"trial": trial_name(t), "generator": t["generator"], "reconstructor": t["reconstructor"],
            "deformator": t["deformator"], "K": t["K"], "seed": t["seed"], "iterations": m.get("step"),
            "rca": m.get("rca"), "ls": m.get("ls"), "shift_mae": m.get("shift_mae"), "gamma": gamma,
            "wall_s": m.get("trial_wall_s"), "node_id": m.get("node_id"),
            "directions": str(Path("trials") / trial_name(t) / DIRECTIONS),
            **(_label_summary(labels) if labels else {})}
