"""Discovered directions scored against the true ones, where a generator knows them (the phantom
generator: each column of its M moves one factor and nothing else).

Per factor i: the best |cos| between the true axis m_i and any direction, and the one-to-one
matched |cos| (Hungarian matching of factors to directions, so one direction cannot count for two
factors); `axes_recovered` counts matched |cos| >= RECOVERED. Per direction: the share of its
squared length inside span(M) (`in_subspace`): a direction the generator ignores in part is
wasted in part, whatever the reconstructor makes of it.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

RECOVERED = 0.9


def truth_scores(A, M, factors: tuple[str, ...]) -> dict:
    """A: d x K directions (any lengths), M: d x F orthonormal true axes, one per named factor."""
    A = np.asarray(A, dtype=np.float64)
    M = np.asarray(M, dtype=np.float64)
    A = A / np.maximum(np.linalg.norm(A, axis=0, keepdims=True), 1e-12)
    C = np.abs(M.T @ A)  # F x K |cos|
    rows, cols = linear_sum_assignment(-C)
    matched = {factors[i]: (float(C[i, k]), int(k)) for i, k in zip(rows, cols)}
    inside = (M.T @ A) ** 2  # F x K: squared projections
    in_sub = inside.sum(0)
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
