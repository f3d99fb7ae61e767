"""`python -m raylatent.bench chance`: do the chance thresholds hold their false-find rate?

A large pool of random unit directions is scored on each generator of a finished run (exactly as
the directions stage scores its pool). Then, many times over: thresholds are estimated from
`fit` directions drawn from it (the run's `chance_pool`), and the best of K of the *other*
directions is held to them: the share that beats a threshold is the false-find rate, which should
be ~5% per factor (QUANTILE 0.95). Both estimators are measured: the bootstrapped tail model the
engine uses (`chance_limits`) and the pool's own resampled best of K (`best_of_K`, the first one).
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


def _score(job: tuple) -> np.ndarray:
    """One block of the pool on one generator (a process of its own: one thread each)."""
    import torch

    from raylatent.interpret.chance import pool_scores, score_matrix
    from raylatent.interpret.labels import FACTORS
    from raylatent.models.export import load_generator

    generators, zreg, kind, n, seed, couplings = job
    torch.set_num_threads(1)
    G = load_generator(Path(generators), kind)
    return score_matrix(pool_scores(G, G.latent_dim, n, zreg=zreg, seed=seed, couplings=couplings), FACTORS)


def scored_pools(run: Path, pool: int, block: int, cache: Path, workers: int) -> dict[str, np.ndarray]:
    """kind -> pool x F scores; blocks of `block` directions cached as .npy (a rerun rescoring
    nothing; named by the labeller's version), seeds 1, 2, ... so no block repeats the run's own
    pool (seed 0). Scored with the run's couplings (couplings.json), as its trials were."""
    from raylatent.interpret.couplings import as_couplings
    from raylatent.interpret.labels import LABELLER_VERSION
    from raylatent.models.export import WEIGHTS

    latest = json.loads((run / "latest.json").read_text())
    generators, shards = run / latest["stages"]["generators"], run / latest["stages"]["data"]
    saved = run / latest["stages"]["directions"] / "couplings.json"
    couplings = as_couplings(json.loads(saved.read_text())["couplings"]) if saved.exists() else None
    kinds = sorted(p.parent.name for p in generators.glob(f"*/{WEIGHTS}"))
    cache.mkdir(parents=True, exist_ok=True)
    name = lambda kind, seed: cache / f"{kind}-{seed}-{LABELLER_VERSION}.npy"  # noqa: E731
    jobs = [(str(generators), None, k, block, 1 + b, couplings) for k in kinds for b in range(-(-pool // block))]
    todo = [j for j in jobs if not name(j[2], j[4]).exists()]
    if todo:  # the z regressor is fitted once, as a run fits it once per experiment, and shipped to every block
        from raylatent.tune.stage import z_regressor

        zreg = z_regressor(str(shards))
        todo = [(g, zreg, k, n, seed, c) for g, _, k, n, seed, c in todo]
    with ProcessPoolExecutor(max_workers=workers) as ex:
        for j, S in zip(todo, ex.map(_score, todo)):
            np.save(name(j[2], j[4]), S)
            print(f"chance bench: scored {j[3]} directions on {j[2]} (block {j[4]})", flush=True)
    return {k: np.concatenate([np.load(name(k, j[4])) for j in jobs if j[2] == k]) for k in kinds}


def false_find_study(S: np.ndarray, factors, K: int, fit: int, reps: int, seed: int = 0) -> dict:
    """Per estimator: the mean (over reps) false-find rate per factor, and the expected number of
    factors a random set of K directions 'finds' (the sum over factors)."""
    from raylatent.interpret.chance import best_of_K, chance_limits, false_find_rates

    rng = np.random.default_rng(seed)
    rates: dict[str, list] = {"tail_bootstrap": [], "pool_best_of_K": []}
    for r in range(reps):
        idx = rng.permutation(len(S))
        S_fit, S_held = S[idx[:fit]], S[idx[fit:]]
        for name, lim in (("tail_bootstrap", chance_limits(S_fit, factors, K, seed=r)),
                          ("pool_best_of_K", best_of_K(S_fit, factors, K, draws=500, seed=r))):
            rates[name].append(false_find_rates(lim, S_held, factors, K, draws=500, seed=r))
    out = {}
    for name, rs in rates.items():
        per = {f: round(float(np.mean([x[f] for x in rs])), 4) for f in factors}
        out[name] = {"rate_per_factor": per, "expected_false_finds": round(sum(per.values()), 3)}
    return out


def bench_chance(args) -> dict:
    from raylatent.interpret.labels import FACTORS

    run = Path(args.run)
    cache = Path(args.cache or run / "bench-chance")
    pools = scored_pools(run, args.pool, args.block, cache, args.workers or os.cpu_count() or 1)
    result = {"run": str(run), "pool": args.pool, "fit": args.fit, "reps": args.reps, "quantile": 0.95,
              "generators": {}}
    for kind, S in pools.items():
        result["generators"][kind] = {
            "labelled_share": {f: round(float((S[:, i] > 0).mean()), 4) for i, f in enumerate(FACTORS)},
            "K": {str(K): false_find_study(S, FACTORS, K, args.fit, args.reps) for K in args.K}}
        for K in args.K:
            r = result["generators"][kind]["K"][str(K)]
            print(f"{kind} K={K}: expected false finds per random set: tail model "
                  f"{r['tail_bootstrap']['expected_false_finds']}, pool best-of-K "
                  f"{r['pool_best_of_K']['expected_false_finds']} (8 factors at 5% would be 0.4)", flush=True)
    return result


def add_parser(sub) -> None:
    p = sub.add_parser("chance", help="false-find rate of the chance thresholds on a run's generators")
    p.add_argument("--json", required=True)
    p.add_argument("--run", required=True, help="a finished run directory (RUN_DIR with latest.json)")
    p.add_argument("--pool", type=int, default=2048, help="random directions scored per generator")
    p.add_argument("--block", type=int, default=512, help="directions per scoring job (and cache file)")
    p.add_argument("--fit", type=int, default=256, help="directions the thresholds are estimated from")
    p.add_argument("--reps", type=int, default=40)
    p.add_argument("--K", type=int, nargs="+", default=[32, 100])
    p.add_argument("--cache", default=None, help="score cache folder (default RUN_DIR/bench-chance)")
    p.add_argument("--workers", type=int, default=0, help="scoring processes (default: every CPU)")
