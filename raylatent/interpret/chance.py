"""What chance reaches: a factor counts as found only when the best direction for it beats the best
of K random unit directions on the same generator.

A direction's score for a factor is |rho| x purity when the labeller gives it that factor's label,
else 0 (labels.py: |rho| >= RHO_MIN and purity >= PURITY_MIN). The null is estimated once per
generator: a seeded pool of random unit directions is scored exactly like a trial's, and the
maximum over K of them is resampled (without replacement) `draws` times; the threshold is its
95th percentile: the score the best of K random directions beats 5% of the time. The pool
(`directions.chance_pool`, 256 by default) should be well above the largest K (100 in the paper's
grids), or every resample contains the pool's own best and the threshold is simply that maximum
(conservative); with K >= pool it is exactly that.
"""
from __future__ import annotations

import numpy as np
import torch

QUANTILE = 0.95
DRAWS = 2000


def factor_score(row: dict, factor: str) -> float:
    """One scored direction's evidence for `factor` (0 unless labelled with it)."""
    return abs(row["rho"][factor]) * row["purity"] if row["label"] == factor else 0.0


def pool_scores(G, latent_dim: int, pool: int, zreg=None, seed: int = 0) -> list[dict]:
    """`pool` random unit directions of R^latent_dim, scored as a trial's directions are."""
    from raylatent.interpret.labels import score_directions

    A = torch.randn(latent_dim, pool, generator=torch.Generator().manual_seed(10_007 + seed))
    return score_directions(G.cpu().float().eval(), A / A.norm(dim=0, keepdim=True), zreg=zreg)


def thresholds(rows: list[dict], factors, K: int, draws: int = DRAWS, q: float = QUANTILE,
               seed: int = 0) -> dict[str, float]:
    """Per factor, the q-quantile of the best score among K directions drawn from the scored pool."""
    rng = np.random.default_rng(seed)
    S = np.array([[factor_score(r, f) for f in factors] for r in rows])  # pool x F
    k = min(K, len(rows))
    best = np.stack([S[rng.choice(len(rows), k, replace=False)].max(0) for _ in range(draws)])
    return {f: round(float(np.quantile(best[:, i], q)), 4) for i, f in enumerate(factors)}


def calibrate(factors_found: dict, scores: list[dict], limits: dict[str, float]) -> dict:
    """A factor-recovery table with `found` true only where the best labelled direction beats chance;
    each factor keeps its score and the threshold it was held to."""
    out = {}
    for name, f in factors_found.items():
        best = max((factor_score(r, name) for r in scores), default=0.0)
        out[name] = {**f, "score": round(best, 4), "chance": limits.get(name, 0.0),
                     "found": bool(f["found"] and best > limits.get(name, 0.0))}
    return out
