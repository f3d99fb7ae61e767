"""Positive controls: direction sets that should be found, scored exactly as a trial's, so a
verdict of "not found" can be read against what "found" takes on the same generator.

- `axes` (truth-declaring generators only, e.g. the phantom): the generator's true axes, one per
  factor (the curved phantom: its true paths, a z-aware set). If these are not found, the labeller or the thresholds are at fault, not the method.
- `supervised` (every generator): per factor, a linear model of the measured attribute on z over
  `SAMPLES` seeded generated samples (least squares, as InterFaceGAN fits a linear boundary for
  face attributes); its normalised weight vector is that factor's direction. The best a single
  linear direction can do for a factor on a trained generator, found with labels the
  unsupervised methods never see. A factor whose attribute is never measured (z without a z
  regressor) or never varies gets no direction.

A control set has one direction per factor, far fewer than a trial's K; each is held to the chance
threshold of every K the grid runs (`found_by_K`): the same bar a K-direction trial's verdict
meets, since a set of K that contained the control's direction for a factor would be judged by it.
"""
from __future__ import annotations

import numpy as np
import torch

from raylatent.interpret.labels import FACTORS, attributes_of

SAMPLES = 512    # generated samples the supervised directions are fitted on
SEED = 20_011    # their latents' seed (not the labeller's, not the chance pool's)
# what both controls cost a generator, in labelled directions (a direction: 8 latents x 5 shifts + 8
# images): two sets of one per factor, and the supervised fit's samples measured once
CONTROL_LABEL_UNITS = 2 * len(FACTORS) + SAMPLES // 48


def true_axes(G, kind: str):
    """The generator's true directions (d x F) and their factor names, where its kind knows them;
    where its factor paths are curves, the direction set that follows them (a `Directions`)."""
    from raylatent.interpret.reading import truth_of
    from raylatent.models.registry import kind_of

    truth = truth_of(kind, G)
    if truth is None:
        return None
    M, names = truth
    paths = kind_of(kind).paths
    if paths is not None:
        return paths(G), list(names)
    return torch.as_tensor(M, dtype=torch.float32).detach().cpu(), list(names)


@torch.no_grad()
def supervised(G, zreg=None, n: int = SAMPLES, seed: int = SEED) -> tuple[torch.Tensor, list[str]]:
    """Per factor the unit weight vector of a least-squares fit of its attribute on z (d x F'),
    over `n` samples; factors that cannot be fitted (never measured or constant) are left out."""
    from raylatent.models.sampling import sample

    d = G.latent_dim
    z, images = sample(G, n, d, seed)
    att = attributes_of(images, zreg)
    cols, names = [], []
    Z = z.double().numpy()
    for name in FACTORS:
        y = np.asarray(att[name], dtype=np.float64)
        ok = np.isfinite(y)
        if ok.sum() < d + 2 or np.std(y[ok]) <= 0:
            continue
        X = np.hstack([Z[ok], np.ones((ok.sum(), 1))])
        w = np.linalg.lstsq(X, y[ok], rcond=None)[0][:d]
        if np.linalg.norm(w) > 0:
            cols.append(w / np.linalg.norm(w))
            names.append(name)
    A = torch.as_tensor(np.stack(cols, 1) if cols else np.zeros((d, 0)), dtype=torch.float32)
    return A, names
