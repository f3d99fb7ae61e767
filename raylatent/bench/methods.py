"""`python -m raylatent.bench methods --json FILE`: every registered discovery method on both
ground-truth generators (the linear phantom, the curved phantom) at equal steps and seeds.

Per (generator, method, criterion, seed): the share of the directions inside the factors' span,
the matched |cos| with the true axes (the curved phantom: with the true tangents, averaged over
latents), the axes recovered (matched |cos| >= 0.9), the factors the labeller finds against the
chance thresholds of a random pool on the same generator, held-out RCA (trained methods) and the
wall time per step. Trained methods run with and without the Hessian penalty (`--hessian`: its
weight); closed-form methods (SeFa, GANSpace, the Hessian joint diagonalisation) once per seed (the
seed picks the latents they sample). Beside them, per generator, what the images can tell apart at
all (interpret/identifiability.py): a factor combination that moves no pixel caps every method.
One process per run, `--workers` at a time; `--methods` / `--kinds` run a subset.
"""
from __future__ import annotations

import functools
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

TRUTH_KINDS = ("phantom", "curved")


@functools.lru_cache(maxsize=None)
def _setup(kind: str, size: int, latent_dim: int, pool: int):
    """The generator, its z regressor (fitted on its own slices and true positions), the labeller's
    couplings and the scored pool of `pool` random directions the chance thresholds come from (once
    per worker process and generator)."""
    import torch

    from raylatent.interpret.chance import pool_scores, score_matrix
    from raylatent.interpret.couplings import measure_couplings
    from raylatent.interpret.labels import FACTORS
    from raylatent.interpret.zposition import ZRegressor
    from raylatent.models import make_generator

    G = make_generator(kind, size, 0, latent_dim).eval()
    with torch.no_grad():
        z = torch.randn(512, latent_dim, generator=torch.Generator().manual_seed(5))
        images, zf = G(z)[:, 0].numpy(), G.factors(z)["z"].numpy()
    zreg = ZRegressor.fit(images, zf)
    couplings = measure_couplings(size, zreg, latent_dim)
    S = score_matrix(pool_scores(G, latent_dim, pool, zreg=zreg, couplings=couplings), FACTORS)
    return G, zreg, couplings, S


def _run(job: dict) -> dict:
    """One method on one generator for one seed (a process of its own, one thread)."""
    import torch

    from raylatent.discovery.evaluate import evaluate
    from raylatent.discovery.methods import method_of
    from raylatent.discovery.step import Discovery, DiscoveryConfig
    from raylatent.interpret.chance import chance_limits, factor_score
    from raylatent.interpret.labels import FACTORS, score_directions
    from raylatent.interpret.reading import truth_of
    from raylatent.interpret.truth import score_truth

    torch.set_num_threads(1)
    G, zreg, couplings, S = _setup(job["kind"], job["size"], job["latent_dim"], job["pool"])
    m = method_of(job["method"])
    t0, rca, per_step = time.perf_counter(), None, None
    if m.trained:
        cfg = DiscoveryConfig(K=job["K"], deformator=job["method"], reconstructor="lenet", batch=job["batch"],
                              lr=1e-3, lr_directions=0.02, seed=job["seed"],
                              settings=m.check_settings({"hessian": job["hessian"]} if job["hessian"] else {}))
        disc = Discovery(G, cfg)
        for _ in range(job["steps"]):
            disc.step()
        per_step = (time.perf_counter() - t0) / job["steps"]
        rca = evaluate(disc, n=512)["rca"]
        A = disc.A
    else:
        A = m.fit(G, job["K"], job["kind"], zreg, seed=job["seed"])
    truth = score_truth(A, truth_of(job["kind"], G))
    with torch.no_grad():
        rows = score_directions(G, A, zreg=zreg, couplings=couplings)
    K = len(rows)
    lim = chance_limits(S, FACTORS, K)
    found = [f for f in FACTORS if max(factor_score(r, f) for r in rows) > lim[f]]
    return {**{k: job[k] for k in ("kind", "method", "hessian", "seed")}, "K": K, "rca": rca,
            "s_per_step": None if per_step is None else round(per_step, 4),
            "in_subspace": truth["in_subspace_mean"], "matched_cos_mean": round(statistics.fmean(truth["matched_cos"].values()), 4),
            "matched_cos": truth["matched_cos"], "axes_recovered": truth["axes_recovered"],
            "found": found, "wall_s": round(time.perf_counter() - t0, 1)}


def criterion_probe(kind: str, size: int, latent_dim: int, rotations: int = 8) -> dict:
    """The Hessian penalty along the generator's true directions (the phantom: its axes; the curved
    phantom: their directions at the origin), along random rotations of them inside the factors'
    span, and along the axes tilted half out of the span (where the image moves less): the
    property a criterion needs to align directions with the factors, and whether leaving the span
    lowers it (a degenerate optimum)."""
    import torch

    from raylatent.discovery.criteria import hessian_penalty
    from raylatent.models import make_generator
    from raylatent.models.directions import FixedDirections

    G = make_generator(kind, size, 0, latent_dim).eval()
    M = G.true_paths().matrix() if hasattr(G, "true_paths") else G.M
    F = M.shape[1]
    z = torch.randn(64, latent_dim, generator=torch.Generator().manual_seed(0))

    def penalty(A) -> float:
        with torch.no_grad():
            return round(float(hessian_penalty(G, FixedDirections(A), z, torch.Generator().manual_seed(1), samples=8)), 3)

    rot = [penalty(M @ torch.linalg.qr(torch.randn(F, F, generator=torch.Generator().manual_seed(100 + s)))[0])
           for s in range(rotations)]
    Q = torch.linalg.qr(torch.randn(latent_dim, latent_dim, generator=torch.Generator().manual_seed(3)))[0][:, :F]
    out = Q - M @ torch.linalg.lstsq(M, Q).solution
    out = out / out.norm(dim=0)
    return {"true": penalty(M), "rotated": rot, "half_out_of_span": penalty((M + out) / 2 ** 0.5)}


def summarise(runs: list[dict]) -> list[dict]:
    """Per (generator, method, criterion): the median and range over seeds of each score."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["kind"], r["method"], r["hessian"]), []).append(r)
    out = []
    for (kind, method, hessian), rs in groups.items():
        row = {"kind": kind, "method": method, "hessian": hessian, "seeds": len(rs)}
        for key in ("in_subspace", "matched_cos_mean", "axes_recovered", "rca", "s_per_step"):
            vals = [r[key] for r in rs if r[key] is not None]
            if vals:
                row[key] = {"median": round(statistics.median(vals), 4), "min": min(vals), "max": max(vals)}
        row["found"] = {"median": statistics.median(len(r["found"]) for r in rs),
                        "min": min(len(r["found"]) for r in rs), "max": max(len(r["found"]) for r in rs)}
        out.append(row)
    return out


def bench_methods(args) -> dict:
    from raylatent.discovery.methods import METHODS

    from raylatent.interpret.identifiability import identifiability
    from raylatent.interpret.reading import truth_of
    from raylatent.models import make_generator

    wanted = args.methods.split(",") if args.methods else list(METHODS)
    unknown = sorted(set(wanted) - set(METHODS))
    if unknown:
        raise SystemExit(f"bench methods: --methods {','.join(unknown)}: not a method (one of {', '.join(METHODS)})")
    kinds = args.kinds.split(",") if args.kinds else list(TRUTH_KINDS)
    if set(kinds) - set(TRUTH_KINDS):
        raise SystemExit(f"bench methods: --kinds {args.kinds}: the truth generators are {', '.join(TRUTH_KINDS)}")
    trained = [n for n, m in METHODS.items() if m.role in ("learned", "reference") and n in wanted]
    closed = [n for n, m in METHODS.items() if m.role == "closed-form" and n in wanted]
    jobs = []
    base = {"size": args.size, "latent_dim": args.latent_dim, "K": args.K, "steps": args.steps, "batch": args.batch,
            "pool": args.pool}
    for kind in kinds:
        for name in trained:
            if METHODS[name].needs_K_equal_d and args.K != args.latent_dim:
                continue
            weights = (0.0, args.hessian) if METHODS[name].role == "learned" and args.hessian else (0.0,)
            jobs += [{**base, "kind": kind, "method": name, "hessian": h, "seed": s}
                     for h in weights for s in range(args.seeds)]
        jobs += [{**base, "kind": kind, "method": name, "hessian": 0.0, "seed": s}
                 for name in closed for s in range(args.seeds)]
    t0 = time.time()
    seen = {}
    for kind in kinds:
        G = make_generator(kind, args.size, 0, args.latent_dim).eval()
        seen[kind] = identifiability(G, truth_of(kind, G))
    print(f"what the images can tell apart (Jacobian rank along the true directions, of 8): {seen}", flush=True)
    probe = {kind: criterion_probe(kind, args.size, args.latent_dim) for kind in kinds}
    print(f"Hessian penalty along the true directions vs rotations of them vs half out of the span: {probe}", flush=True)
    runs = []
    with ProcessPoolExecutor(args.workers) as pool:
        for r in pool.map(_run, jobs):
            runs.append(r)
            print(f"{r['kind']} {r['method']} hessian={r['hessian']} seed={r['seed']}: axes {r['axes_recovered']}, "
                  f"matched |cos| {r['matched_cos_mean']:.3f}, in span {r['in_subspace']:.2f}, found {len(r['found'])}",
                  flush=True)
    return {"what": __doc__.split("\n\n")[0], "settings": {**base, "seeds": args.seeds, "hessian": args.hessian},
            "wall_s": round(time.time() - t0, 1), "identifiability": seen, "criterion_probe": probe,
            "summary": summarise(runs), "runs": runs}


def add_parser(sub) -> None:
    p = sub.add_parser("methods", help="every discovery method on the linear and the curved phantom")
    p.add_argument("--json", required=True)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--K", type=int, default=32)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--hessian", type=float, default=0.00005, help="the penalty's weight (docs/methods.md: larger ones empty the span)")
    p.add_argument("--pool", type=int, default=160, help="random directions the chance thresholds come from")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--methods", default="", help="comma-separated method names (default: every registered one)")
    p.add_argument("--kinds", default="", help="comma-separated truth generators (default: phantom,curved)")
