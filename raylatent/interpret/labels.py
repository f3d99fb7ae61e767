"""Say what each direction does: sweep it, measure attributes, correlate, label.

For direction k: images G(z + eps a_k) for eps on a grid over [-s, s] and n latents; for each
attribute, Spearman rho between eps and the attribute's change from eps = 0 (pooled over latents),
the effect size (mean |change| at the sweep ends over the attribute's spread in the population),
and purity (the top attribute's share of all effect sizes). Label = the top attribute when
|rho| and purity pass their thresholds; `entangled` when some attribute tracks eps but none
dominates; `none` when nothing tracks it.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import spearmanr

from raylatent.data.dicom import model_to_hu
from raylatent.interpret.attributes import measure_batch

SEMANTIC = ("width", "height", "size", "rotation", "y", "thickness", "breast", "z")
MEASURED = {"width": "width", "height": "height", "size": "size", "rotation": "rotation", "y": "y",
            "thickness": "thickness", "breast": "breast"}
# The smallest spread an attribute is normalised by (its units): a change below this is noise,
# whatever the population spread (which can be ~0 for an attribute a generator never varies).
MIN_SPREAD = {"width": 5.0, "height": 5.0, "size": 5.0, "rotation": 1.0, "y": 0.01, "thickness": 1.5,
              "breast": 2.0, "z": 0.05}
RHO_MIN = 0.6
PURITY_MIN = 0.4


def attributes_of(images: torch.Tensor, zreg=None, fov_mm: float = 500.0) -> dict[str, np.ndarray]:
    """All eight attributes of [-1, 1] images (N x 1 x S x S)."""
    x = images[:, 0].detach().cpu().numpy() if images.ndim == 4 else np.asarray(images)
    m = measure_batch(model_to_hu(x), fov_mm)
    out = {k: m[v] for k, v in MEASURED.items()}
    out["z"] = zreg.predict(x) if zreg is not None else m["lung_area"] * np.nan
    return out


@torch.no_grad()
def score_directions(G, A, n_latents: int = 8, shift: float = 4.0, n_eps: int = 5, zreg=None,
                     seed: int = 0, directions=None) -> list[dict]:
    """Per direction: rho, effect and purity per attribute, and the label."""
    G.eval()
    A = torch.as_tensor(np.asarray(A), dtype=torch.float32)
    d, K = A.shape
    z = torch.randn(n_latents, d, generator=torch.Generator().manual_seed(seed))
    eps = torch.linspace(-shift, shift, n_eps)
    base = attributes_of(G(z), zreg)
    pop = attributes_of(G(torch.randn(64, d, generator=torch.Generator().manual_seed(seed + 1))), zreg)
    spread = {k: max(float(np.nan_to_num(np.nanstd(v))), MIN_SPREAD[k]) for k, v in pop.items()}
    results = []
    for k in (range(K) if directions is None else directions):
        zz = (z[None] + eps[:, None, None] * A[:, k][None, None]).reshape(-1, d)
        att = attributes_of(G(zz), zreg)
        row = {"direction": int(k), "rho": {}, "effect": {}}
        for name in SEMANTIC:
            v = att[name].reshape(n_eps, n_latents) - base[name][None]
            e = np.repeat(eps.numpy()[:, None], n_latents, 1)
            ok = np.isfinite(v)
            rho = spearmanr(e[ok], v[ok]).statistic if ok.sum() > 3 and np.nanstd(v[ok]) > 0 else 0.0
            row["rho"][name] = float(np.nan_to_num(rho))
            row["effect"][name] = float(np.nan_to_num(np.nanmean(np.abs(v[[0, -1]])) / spread[name]))
        tracked = {n: row["effect"][n] for n in SEMANTIC if abs(row["rho"][n]) >= RHO_MIN}
        total = sum(row["effect"].values()) + 1e-9
        top = max(SEMANTIC, key=lambda n: row["effect"][n] * (abs(row["rho"][n]) >= RHO_MIN))
        row["purity"] = row["effect"][top] / total
        row["top"] = top
        if not tracked:
            row["label"] = "none"
        elif row["purity"] >= PURITY_MIN:
            row["label"] = top
        else:
            row["label"] = "entangled"
        results.append(row)
    return results


def factor_recovery(scores: list[dict]) -> dict[str, dict]:
    """For each of the eight factors, the best-matching direction, its |rho| and purity."""
    out = {}
    for name in SEMANTIC:
        best = max(scores, key=lambda r: abs(r["rho"][name]) * (r["effect"][name] > 0))
        purity = best["effect"][name] / (sum(best["effect"].values()) + 1e-9)
        out[name] = {"direction": best["direction"], "rho": abs(best["rho"][name]), "purity": purity,
                     "found": abs(best["rho"][name]) >= RHO_MIN and purity >= PURITY_MIN}
    return out
