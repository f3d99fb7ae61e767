"""Discovered directions scored against the true ones, where a generator knows them (the phantom
generator: each column of its M moves one factor and nothing else; the curved phantom: each
factor moves along a curve whose tangent at z is known).

Per factor i: the best |cos| between the true axis m_i and any direction, and the one-to-one
matched |cos| (Hungarian matching of factors to directions, so one direction cannot count for two
factors); `axes_recovered` counts matched |cos| >= RECOVERED. Per direction: the share of its
squared length inside span(M) (`in_subspace`): a direction the generator ignores in part is
wasted in part, whatever the reconstructor makes of it. Where the true paths are curves, the
same scores compare each path's tangent with the true tangents at TRUTH_LATENTS fixed latents and
average over them (`path_truth_scores`), for linear and curved direction sets alike.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

RECOVERED = 0.9
TRUTH_LATENTS = 64   # latents a curved truth is compared at (N(0, I), seeded)
TRUTH_SEED = 31_337


def truth_scores(A, M, factors: tuple[str, ...]) -> dict:
    """A: d x K directions (any lengths), M: d x F orthonormal true axes, one per named factor."""
    A = np.asarray(A, dtype=np.float64)
    M = np.asarray(M, dtype=np.float64)
    A = A / np.maximum(np.linalg.norm(A, axis=0, keepdims=True), 1e-12)
    return _summary(np.abs(M.T @ A), ((M.T @ A) ** 2).sum(0), factors)


def path_truth_scores(tangents, true, factors: tuple[str, ...]) -> dict:
    """tangents: B x d x K unit directions of a set's paths at B latents; true: B x d x F unit
    tangents of the true factor paths there. |cos| and the share inside the true tangents' span
    are averaged over the latents, then scored as `truth_scores` does."""
    T = np.asarray(tangents, dtype=np.float64)
    Y = np.asarray(true, dtype=np.float64)
    C = np.abs(np.einsum("bdf,bdk->bfk", Y, T)).mean(0)
    Q = np.linalg.qr(Y)[0]  # B x d x F: an orthonormal basis of the true tangents at each latent
    inside = (np.einsum("bdf,bdk->bfk", Q, T) ** 2).sum(1).mean(0)
    return _summary(C, inside, factors)


def score_truth(directions, truth) -> dict:
    """A direction set (a set, its exported arrays or a d x K matrix) against a generator kind's
    truth: (d x F axes, names), or (tangents(z) -> B x d x F, names) where the factor paths curve."""
    import torch

    from raylatent.models.directions import as_arrays, rebuild

    M, names = truth
    if callable(M):
        D = rebuild(directions)
        z = torch.randn(TRUTH_LATENTS, D.latent_dim, generator=torch.Generator().manual_seed(TRUTH_SEED))
        with torch.no_grad():
            return path_truth_scores(D.tangent(z).cpu().numpy(), M(z).cpu().numpy(), tuple(names))
    A = as_arrays(directions)["A"]
    return truth_scores(torch.as_tensor(A).detach().cpu().numpy(), torch.as_tensor(M).detach().cpu().numpy(),
                        tuple(names))


def _summary(C: np.ndarray, in_sub: np.ndarray, factors: tuple[str, ...]) -> dict:
    """The scores from |cos| (F x K) and each direction's share inside the truth's span (K)."""
    rows, cols = linear_sum_assignment(-C)
    matched = {factors[i]: (float(C[i, k]), int(k)) for i, k in zip(rows, cols)}
    out = {"factors": list(factors),
           "best_cos": {f: round(float(C[i].max()), 4) for i, f in enumerate(factors)},
           "best_direction": {f: int(C[i].argmax()) for i, f in enumerate(factors)},
           "matched_cos": {f: round(matched[f][0], 4) if f in matched else 0.0 for f in factors},
           "matched_direction": {f: matched[f][1] if f in matched else None for f in factors},
           "in_subspace_mean": round(float(in_sub.mean()), 4),
           "in_subspace_matched": round(float(np.mean([in_sub[k] for _, k in matched.values()])), 4)
           if matched else 0.0}
    out["axes_recovered"] = sum(v >= RECOVERED for v in out["matched_cos"].values())
    return out
