"""What chance reaches: a factor counts as found only when the best direction for it beats the best
of K random unit directions on the same generator, at the 95th percentile.

A direction's score for a factor is |rho| x purity when the labeller gives it that factor's label,
else 0 (labels.py: |rho| >= RHO_MIN and purity >= PURITY_MIN). Once per generator a seeded pool of
random unit directions (`directions.chance_pool`) is scored exactly like a trial's. The threshold
for K needs the pool's single-direction quantile 0.95^(1/K) (0.9995 for K = 100), far beyond what a
few hundred directions resolve: resampling the best of K from the pool itself (`best_of_K`, the
first estimator) gave the pool's own maximum, too LOW (random rows "found" 0-4 factors in smoke
runs). So the tail is modelled (`tail_limits`: how often a random direction is labelled with the
factor, times a Beta fit of its labelled scores) and the model's own noise covered by a bootstrap
(`chance_limits`). chance.json keeps the pool's raw scores, so thresholds can be recomputed;
`false_find_rates` checks them against held-out random directions (benchmarks/chance-smoke.json).
"""
from __future__ import annotations

import numpy as np
import torch

from raylatent.interpret.labels import PURITY_MIN, RHO_MIN

QUANTILE = 0.95
DRAWS = 2000
P_LEVEL = 0.5    # the labelled rate p: this Clopper-Pearson bound (0.5: ~ the median; never 0)
BOOT = 200       # bootstrap resamples of the pool ...
BOOT_Q = 0.9     # ... and the quantile of their thresholds that is used (the fit's own noise covered)
LOW = RHO_MIN * PURITY_MIN  # the least score a labelled direction can have


def factor_score(row: dict, factor: str) -> float:
    """One scored direction's evidence for `factor` (0 unless labelled with it)."""
    return abs(row["rho"][factor]) * row["purity"] if row["label"] == factor else 0.0


def pool_scores(G, latent_dim: int, pool: int, zreg=None, seed: int = 0, couplings=None, sweep=None) -> list[dict]:
    """`pool` random unit directions of R^latent_dim, scored as a trial's directions are (with its
    `sweep`, labels.Sweep; None: the default)."""
    from raylatent.interpret.labels import Sweep, score_directions

    sweep = sweep or Sweep()
    A = torch.randn(latent_dim, pool, generator=torch.Generator().manual_seed(10_007 + seed))
    return score_directions(G.cpu().float().eval(), A / A.norm(dim=0, keepdim=True), n_latents=sweep.latents,
                            n_eps=sweep.steps, zreg=zreg, couplings=couplings)


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


def exceed_target(K: int, q: float = QUANTILE) -> float:
    """The per-direction exceedance probability at which the best of K independent directions
    exceeds a threshold with probability 1 - q: 1 - q^(1/K) (5.1e-4 for K = 100)."""
    return 1.0 - q ** (1.0 / K)


def labelled_rate(n_labelled: int, n: int, level: float = P_LEVEL) -> float:
    """How often a random direction is labelled with a factor: the one-sided `level` upper
    confidence bound (Clopper-Pearson) of n_labelled / n, never 0 from a finite pool."""
    from scipy.stats import beta

    return 1.0 if n_labelled >= n else float(beta.ppf(level, n_labelled + 1, n - n_labelled))


def _beta_fit(x: np.ndarray) -> tuple[float, float]:
    """Beta(a, b) by the method of moments on values in (0, 1); uniform with too few values."""
    if len(x) < 2 or x.var() <= 0:
        return 1.0, 1.0
    m, v = float(x.mean()), float(x.var(ddof=1))
    c = max(m * (1 - m) / max(v, 1e-9) - 1.0, 1e-3)
    return max(m * c, 1e-3), max((1 - m) * c, 1e-3)


def tail_limits(S: np.ndarray, factors, K: int, q: float = QUANTILE, level: float = P_LEVEL) -> dict[str, float]:
    """Per factor, the score t the best of K random directions exceeds with probability 1 - q,
    from a model of one random direction's score rather than the pool's own extremes.

    A random direction is labelled with the factor at rate p (the pool's count, as a `level`
    upper bound); labelled, its score s = |rho| x purity lies in [LOW, 1] and (s - LOW) / (1 - LOW)
    is modelled as Beta, fitted to every factor's labelled pool scores together: the shape is
    shared, the rate is not. A factor's own fit rests on the ~10 directions a pool of 160 labels
    with it, and over pools of 160 drawn from 1,184 scored random directions per smoke generator
    its thresholds were no safer (false finds per random set of 100: GAN 0.11 vs 0.14, VAE 0.31 vs
    0.17, phantom 0.65 vs 0.53) and the phantom's true axes were found less often (6.3 vs 6.7 of 8).
    Then
    P(best of K > t) = 1 - (1 - p (1 - F(t)))^K, and t solves it for 1 - q. When p is below the
    per-direction target itself, the best of K is labelled less often than 1 - q: any labelled
    direction beats chance (t = 0)."""
    from scipy.stats import beta

    S = np.asarray(S, dtype=np.float64).reshape(-1, len(factors))
    scale = lambda v: np.clip((v - LOW) / (1.0 - LOW), 1e-3, 1 - 1e-3)  # noqa: E731
    shared = _beta_fit(scale(S[S > 0]))
    target, out = exceed_target(K, q), {}
    for i, f in enumerate(factors):
        pos = S[S[:, i] > 0, i]
        p = labelled_rate(len(pos), len(S), level)
        if p <= target:
            out[f] = 0.0
            continue
        out[f] = round(LOW + (1.0 - LOW) * float(beta.ppf(1.0 - target / p, *shared)), 4)
    return out


def chance_limits(S: np.ndarray, factors, K: int, q: float = QUANTILE, boot: int = BOOT, boot_q: float = BOOT_Q,
                  seed: int = 0) -> dict[str, float]:
    """The thresholds a verdict is held to: `tail_limits` over `boot` bootstrap resamples of the
    pool, taking their `boot_q` quantile. One fit from a few hundred directions is noisy exactly
    where it matters (the quantile 1 - 5e-4/p for K = 100): simulated pools of 256 (tests, and
    benchmarks/chance-smoke.json on the smoke generators) gave mean false-find rates of 6-12% per
    factor from one fit and 1-7% with the bootstrap's 90th percentile."""
    S = np.asarray(S, dtype=np.float64).reshape(-1, len(factors))
    rng = np.random.default_rng(seed)
    fits = [tail_limits(S[rng.integers(0, len(S), len(S))], factors, K, q) for _ in range(boot)]
    return {f: round(float(np.quantile([t[f] for t in fits], boot_q)), 4) for f in factors}


def false_find_rates(limits: dict[str, float], S_held: np.ndarray, factors, K: int, draws: int = DRAWS,
                     seed: int = 1) -> dict[str, float]:
    """How often the best of K directions drawn from a held-out scored pool beats each threshold:
    the false-find rate the thresholds were meant to hold at 1 - q (benchmarks check it)."""
    S = np.asarray(S_held, dtype=np.float64)
    rng = np.random.default_rng(seed)
    best = np.stack([S[rng.choice(len(S), min(K, len(S)), replace=False)].max(0) for _ in range(draws)])
    return {f: round(float((best[:, i] > limits[f]).mean()), 4) for i, f in enumerate(factors)}


class ChanceLimits:
    """Thresholds per generator and K from each generator's scored pool, computed when first asked
    (a closed-form method's K is known only once it has run)."""

    def __init__(self, pools: dict[str, np.ndarray], factors, known: dict | None = None):
        """`known`: thresholds already computed elsewhere ({kind: {K: limits}}, as `table()` gives
        them), taken as they are, so every record and chance.json carry one value per (kind, K)."""
        self.pools, self.factors = pools, tuple(factors)
        self._memo = {(kind, int(K)): dict(lim) for kind, byK in (known or {}).items() for K, lim in byK.items()}

    def __call__(self, kind: str, K: int) -> dict[str, float] | None:
        if kind not in self.pools:
            return None
        if (kind, K) not in self._memo:
            self._memo[(kind, K)] = chance_limits(self.pools[kind], self.factors, K)
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
        best = round(max((factor_score(r, name) for r in scores), default=0.0), 4)  # the score the record shows
        out[name] = {**f, "score": best, "chance": limits.get(name, 0.0),
                     "found": bool(f["found"] and best > limits.get(name, 0.0))}
    return out
