"""`python -m raylatent.bench controls --json FILE`: the power of the verdict chain on the phantom
generator. Its eight true axes (and the supervised directions) are labelled and held to the chance
thresholds the engine computes from a pool of random directions, at each K; random sets of K drawn
from held-out random directions measure the false finds per set. With `--no-couplings` the
labeller runs without the measured couplings (what it did before they existed), for comparison.
"""
from __future__ import annotations

import time


def bench_controls(args) -> dict:
    import torch

    from raylatent.discovery.controls import supervised
    from raylatent.interpret.chance import chance_limits, factor_score, false_find_rates, score_matrix
    from raylatent.interpret.couplings import measure_couplings
    from raylatent.interpret.labels import FACTORS, LABELLER_VERSION, score_directions
    from raylatent.interpret.zposition import ZRegressor
    from raylatent.models.phantom_gen import PhantomGenerator

    torch.set_num_threads(args.threads)
    Ks = [int(k) for k in args.K.split(",")]
    out = {"what": "true axes and supervised directions of the phantom generator held to the engine's chance "
                   "thresholds (pool of random unit directions, tail model + bootstrap); false finds per random "
                   "set of K from held-out random directions (sum over the 8 factors; nominal 8 x 5% = 0.4)",
           "labeller": LABELLER_VERSION, "pool": args.pool, "held_out": args.held_out, "sizes": []}
    for size in (int(s) for s in args.sizes.split(",")):
        t0 = time.time()
        G = PhantomGenerator(32, size).eval()
        with torch.no_grad():  # the z regressor on the generator's own slices (a run fits it on the shards)
            z = torch.randn(512, 32, generator=torch.Generator().manual_seed(5))
            images, zf = G(z)[:, 0].numpy(), G.factors(z)["z"].numpy()
        zreg = ZRegressor.fit(images, zf)
        couplings = None if args.no_couplings else measure_couplings(size, zreg)
        axes = score_directions(G, G.true_directions(), zreg=zreg, couplings=couplings)
        A_sup, _ = supervised(G, zreg)
        sup = score_directions(G, A_sup, zreg=zreg, couplings=couplings)
        R = torch.randn(32, args.pool + args.held_out, generator=torch.Generator().manual_seed(10_007))
        S = score_matrix(score_directions(G, R / R.norm(dim=0), zreg=zreg, couplings=couplings), FACTORS)
        entry = {"size": size, "couplings": couplings, "axes": [{"factor": f, "label": r["label"],
                                                                  "rho": round(abs(r["rho"][f]), 3),
                                                                  "purity": round(r["purity"], 3)}
                                                                 for f, r in zip(FACTORS, axes)], "by_K": {}}
        for K in Ks:
            lim = chance_limits(S[:args.pool], FACTORS, K)
            found_axes = [f for f, r in zip(FACTORS, axes) if factor_score(r, f) > lim[f]]
            found_sup = [f for f in FACTORS if max(factor_score(r, f) for r in sup) > lim[f]]
            ff = false_find_rates(lim, S[args.pool:], FACTORS, K)
            entry["by_K"][str(K)] = {"thresholds": lim, "axes_scores": {f: round(factor_score(r, f), 3)
                                                                        for f, r in zip(FACTORS, axes)},
                                     "axes_found": found_axes, "supervised_found": found_sup,
                                     "false_finds_per_set": round(float(sum(ff.values())), 3), "false_find_rates": ff}
            print(f"{size}^2 K={K}: true axes {len(found_axes)}/8, supervised {len(found_sup)}/8, "
                  f"false finds per random set {sum(ff.values()):.2f}", flush=True)
        entry["wall_s"] = round(time.time() - t0, 1)
        out["sizes"].append(entry)
    return out


def add_parser(sub) -> None:
    p = sub.add_parser("controls", help="true axes and supervised directions vs the chance thresholds (phantom)")
    p.add_argument("--json", required=True)
    p.add_argument("--sizes", default="32", help="image sizes, comma-separated")
    p.add_argument("--K", default="32,100")
    p.add_argument("--pool", type=int, default=160, help="random directions the thresholds are fitted on (smoke: 160)")
    p.add_argument("--held-out", type=int, default=480, help="random directions the false finds are counted on")
    p.add_argument("--no-couplings", action="store_true", help="label without the measured couplings")
    p.add_argument("--threads", type=int, default=1)
