"""Does a generator vary each factor, and does it copy its training slices?

A factor the generator does not vary cannot be found by any method, so before a verdict says "not
found" it must know whether the factor was generated. Per factor, its attribute is measured on
`SAMPLES` seeded generated slices and on the data's slices: the spread ratio (generated std over
the data's std; a factor counts as generated at >= SPREAD_MIN) and the distance between the two
distributions (1-Wasserstein over the data's std: 0 = the same spread and place).

The reference distribution is the data's, both splits together: a held-out split of a few patients
(smoke: 2-3) shows almost none of the per-patient factors' spread.

Memorisation (the paper's concern in Fig 11): each generated slice's distance to its nearest
training slice (pixel L2), against the same distance for held-out slices, which the generator has
never seen either: a generator that generalises lies about as near to the training set as unseen
data does (median ratio ~1); one that copies its training slices sits on them (ratio ~0). It is
flagged below MEMORISED.
"""
from __future__ import annotations

import numpy as np
import torch

from raylatent.interpret.labels import FACTORS, attributes_of

SAMPLES = 256
SEED = 30_011
SPREAD_MIN = 0.5   # generated std / the data's std at which a factor counts as generated
MEMORISED = 0.5    # samples' / held-out slices' median nearest-training distance below which samples copy


def _nearest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each row of a (N x P), the L2 distance to its nearest row of b (M x P)."""
    a2, b2 = (a * a).sum(1)[:, None], (b * b).sum(1)[None]
    return np.sqrt(np.maximum(a2 + b2 - 2 * a @ b.T, 0.0)).min(1)


def memorisation(samples: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict:
    """How near generated slices lie to the training set, against how near unseen (held-out)
    slices of the same data lie to it: the ratio of the medians of their nearest-training-slice
    distances, and the share of samples nearer than 95% of the held-out slices ever get."""
    flat = lambda x: np.asarray(x, dtype=np.float64).reshape(len(x), -1)  # noqa: E731
    tr = flat(train)
    d_gen, d_ref = _nearest(flat(samples), tr), _nearest(flat(test), tr)
    ratio = float(np.median(d_gen) / max(float(np.median(d_ref)), 1e-12))
    return {"median_ratio": round(ratio, 4), "median_sample_distance": round(float(np.median(d_gen)), 4),
            "median_held_out_distance": round(float(np.median(d_ref)), 4),
            "nearer_than_held_out": round(float((d_gen < np.quantile(d_ref, 0.05)).mean()), 4),
            "memorised": bool(ratio < MEMORISED)}


def factor_coverage(generated: dict, data: dict) -> dict:
    """Per factor: spread ratio, distance and whether the generator varies it (see the docstring)."""
    from scipy.stats import wasserstein_distance

    out = {}
    for name in FACTORS:
        g, h = np.asarray(generated[name], np.float64), np.asarray(data[name], np.float64)
        g, h = g[np.isfinite(g)], h[np.isfinite(h)]
        if len(g) < 2 or len(h) < 2:
            out[name] = {"spread_ratio": None, "distance": None, "generated": None}  # not measured (z without shards)
            continue
        sd = max(float(h.std()), 1e-9)
        ratio = float(g.std()) / sd
        out[name] = {"spread_ratio": round(ratio, 4), "distance": round(float(wasserstein_distance(g, h)) / sd, 4),
                     "generated": bool(ratio >= SPREAD_MIN)}
    return out


@torch.no_grad()
def coverage(G, train: torch.Tensor, test: torch.Tensor, zreg=None, n: int = SAMPLES, seed: int = SEED) -> dict:
    """A generator's factor coverage and memorisation check against the data's splits
    (train/test: N x 1 x S x S in the model's scale)."""
    from raylatent.models.sampling import sample

    samples = sample(G, n, G.latent_dim, seed)[1].float()
    data = torch.cat([train, test]).float()
    factors = factor_coverage(attributes_of(samples, zreg), attributes_of(data, zreg))
    return {"samples": n, "data_slices": int(len(data)), "factors": factors,
            "generated": sum(bool(f["generated"]) for f in factors.values()),
            "memorisation": memorisation(samples[:, 0].numpy(), train[:, 0].float().numpy(), test[:, 0].float().numpy())}
