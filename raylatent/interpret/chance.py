"""What chance reaches: a factor counts as found only when the best direction for it beats the best
of K random unit directions on the same generator.

A direction's score for a factor is |rho| x purity when the labeller gives it that factor's label,
else 0 (labels.py: |rho| >= RHO_MIN and purity >= PURITY_MIN). The null is estimated once per
generator: a seeded pool of random unit directions is scored exactly like a trial's, and the
maximum over K of them is resampled (without replacement) `draws` times; the threshold is its
95th percentile: the score the best of K random directions beats 5% of the time. The estimate is
only as good as the pool (`directions.chance_pool`, 256 by default): it needs the single-direction
quantile 0.95^(1/K) (0.9995 for K = 100), far beyond what a few hundred directions resolve, so the
threshold comes out near the pool's own maximum and is too LOW, not conservative (smoke runs:
random rows still "found" 0-4 factors with a pool of 256, 2-4 with 128). A tail model per factor is
the planned fix; chance.json keeps the pool's raw scores so thresholds can be recomputed.
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


def score_matrix(rows: list[dict], factors) -> np.ndarray:
    """pool x F: every scored direction's evidence for every factor."""
    return np.array([[factor_score(r, f) for f in factors] for r in rows], dtype=np.float64).reshape(len(rows), -1)


def best_of_K(S: np.ndarray, factors, K: int, draws: int = DRAWS, q: float = QUANTILE,
              seed: int = 0) -> dict[str, float]:
    """Per factor, the q-quantile of the best score among K directions drawn from a scored pool."""
    S = np.asarray(S, dtype=np.float64)
    rng = np.random.default_rng(seed)
    k = min(K, len(S))
    best = np.stack([S[rng.choice(len(S), k, replace=False)].max(0) for _ in range(draws)])
    return {f: round(float(np.quantile(best[:, i], q)), 4) for i, f in enumerate(factors)}


def thresholds(rows: list[dict], factors, K: int, draws: int = DRAWS, q: float = QUANTILE,
               seed: int = 0) -> dict[str, float]:
    """Per factor, the q-quantile of the best score among K directions drawn from the scored pool."""
    return best_of_K(score_matrix(rows, factors), factors, K, draws, q, seed)


class ChanceLimits:
    """Thresholds per generator and K from each generator's scored pool, computed when first asked
    (a closed-form method's K is known only once it has run)."""

    def __init__(self, pools: dict[str, np.ndarray], factors):
        self.pools, self.factors, self._memo = pools, tuple(factors), {}

    def __call__(self, kind: str, K: int) -> dict[str, float] | None:
        if kind not in self.pools:
            return None
        if (kind, K) not in self._memo:
            self._memo[(kind, K)] = best_of_K(self.pools[kind], self.factors, K)
        return self._memo[(kind, K)]

    def table(self) -> dict:
        """What chance.json shows: every threshold asked for, per generator and K."""
        out: dict = {}
        for (kind, K), lim in sorted(self._memo.items()):
            out.setdefault(kind, {})[str(K)] = lim
        return out


def calibrate(factors_found: dict, scores: list[dict], limits: dict[str, float]) -> dict:
    """A factor-recovery table with `found` true only where the best labelled direction beats chance;
    each factor keeps its score and the threshold it was held to."""
    out = {}
    for name, f in factors_found.items():
        best = max((factor_score(r, name) for r in scores), default=0.0)
        out[name] = {**f, "score": round(best, 4), "chance": limits.get(name, 0.0),
                     "found": bool(f["found"] and best > limits.get(name, 0.0))}
    return out
