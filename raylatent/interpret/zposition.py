"""A small z-position regressor: slice image -> position in its series (slice_frac, 0 = superior).

Trained on the training shards' `slice_frac` (which LIDC has as well as the phantom), so a z
attribute exists for any data. Where a slice lies is told by its anatomy, not by where the patient
lies in the field of view, so each slice is first warped into its own body frame (centroid at the
centre, width axis horizontal, body scaled to fill the frame) and described by that small image
plus the share of the body in each HU band (lung, fat, soft tissue, bone); a one-hidden-layer MLP
maps these to z. The input's brightness is undone first (`_normalised_hu`: background air to
-1000 HU, the body's soft tissue to SOFT_LEVEL_HU), so a brightness direction does not read as z.
How these choices were measured (ranking, leakage of the other factors, what was not kept):
docs/interpretation.md, "How the z regressor was chosen".
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional as F

from raylatent.data.dicom import HU_MAX, HU_MIN, model_to_hu
from raylatent.interpret.attributes import SOFT_LEVEL_HU, _principal_axes, air_calibrated, body_mask, soft_level

FRAME = 16                # body-frame image side
MARGIN = 1.15             # frame half-width in units of the body's equivalent-ellipse half axes
HU_BANDS = (-1001.0, -700.0, -400.0, -150.0, -30.0, 100.0, 250.0, 4000.0)


def _body_frame(body: np.ndarray) -> np.ndarray:
    """2 x 3 affine (torch affine_grid convention) from the body frame to the image."""
    n = body.shape[-1]
    var_w, var_h, angle, rc = _principal_axes(body)
    if body.sum() < 10 or not np.isfinite(rc).all():
        var_w = var_h = (n / 4) ** 2
        angle, rc = 0.0, np.array([n / 2 - 0.5, n / 2 - 0.5])
    hw, hh = 2 * math.sqrt(max(var_w, 1e-3)), 2 * math.sqrt(max(var_h, 1e-3))  # half axes, px
    th = math.radians(angle)
    # u (width axis, x right / y up) and v (height axis, down) -> image pixels (x right, rows down)
    M = MARGIN * np.array([[hw * math.cos(th), hh * math.sin(th)], [-hw * math.sin(th), hh * math.cos(th)]])
    out = np.zeros((2, 3))
    out[:, :2] = M * 2.0 / n
    out[0, 2], out[1, 2] = (2 * rc[1] + 1) / n - 1, (2 * rc[0] + 1) / n - 1
    return out


def _normalised_hu(img: np.ndarray, prepared: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(HU of a model-space slice with its brightness undone, its body mask): background air back
    at -1000 HU, and the body's soft tissue back at SOFT_LEVEL_HU. z is anatomy; without this a
    +75 HU brightening moved the predicted z by 0.2-0.26 (whole image) or 0.04-0.13 (body only).
    `prepared`: (air-calibrated HU, body, soft level) as attributes.measure_batch keeps them."""
    if prepared is not None:
        hu, body, level = prepared
    else:
        hu = model_to_hu(img)
        hu, body, _ = air_calibrated(hu, body_mask(hu))
        level = soft_level(hu, body)
    dev = level - SOFT_LEVEL_HU
    if np.isfinite(dev):
        hu = np.where(ndimage.binary_dilation(body, iterations=1), hu - dev, hu)
    return hu, body


def features(images, normalise: bool = True, prepared: list | None = None) -> np.ndarray:
    """N x (FRAME^2 + bands) features of model-space slices (N x S x S or N x 1 x S x S);
    normalise=False: the raw HU (the regressor before its brightness was undone, for comparison).
    `prepared`: per image what attributes.measure_batch(keep_prepared=True) kept (or None)."""
    x = np.asarray(images, dtype=np.float32)
    x = x[:, 0] if x.ndim == 4 else x
    thetas, bands, norm = [], [], []
    for i, img in enumerate(x):
        if normalise:
            hu, body = _normalised_hu(img, prepared[i] if prepared is not None else None)
        else:
            hu = model_to_hu(img)
            body = body_mask(hu)
        norm.append((hu - HU_MIN) / (HU_MAX - HU_MIN) * 2.0 - 1.0)
        thetas.append(_body_frame(body))
        bands.append(np.histogram(hu[body], bins=HU_BANDS)[0] / max(1, int(body.sum())))
    t = torch.as_tensor(np.stack(norm).astype(np.float32))[:, None]
    grid = F.affine_grid(torch.tensor(np.stack(thetas), dtype=torch.float32), [len(x), 1, FRAME, FRAME],
                         align_corners=False)
    frame = F.grid_sample(t, grid, padding_mode="border", align_corners=False).flatten(1).numpy()
    return np.hstack([frame, np.stack(bands)]).astype(np.float32)


@dataclass
class ZRegressor:
    """Plain arrays (no torch module), so Ray can ship one fitted regressor to every trial."""
    mean: np.ndarray
    std: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    normalise: bool = True

    @classmethod
    def fit(cls, images, slice_frac, steps: int = 1500, hidden: int = 64, max_train: int = 5000,
            seed: int = 0, normalise: bool = True) -> "ZRegressor":
        y = np.asarray(slice_frac, dtype=np.float32)
        images = np.asarray(images)
        if len(y) > max_train:
            keep = np.random.default_rng(seed).choice(len(y), max_train, replace=False)
            images, y = images[keep], y[keep]
        X = features(images, normalise)
        mean, std = X.mean(0), X.std(0) + 1e-6
        A, t = torch.tensor((X - mean) / std), torch.tensor(y)
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            net = torch.nn.Sequential(torch.nn.Linear(A.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-2)
        for _ in range(steps):
            i = torch.randint(0, len(A), (min(64, len(A)),), generator=gen)
            loss = ((net(A[i])[:, 0] - t[i]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        p = [q.detach().numpy().copy() for q in net.parameters()]
        return cls(mean, std, p[0], p[1], p[2], p[3], normalise)

    def predict(self, images, prepared: list | None = None) -> np.ndarray:
        X = (features(images, self.normalise, prepared if self.normalise else None) - self.mean) / self.std
        h = np.maximum(X @ self.w1.T + self.b1, 0.0)
        return (h @ self.w2.T + self.b2)[:, 0].astype(np.float64)
