"""Image attributes measured on CT slices in HU: the eight things the paper's directions change.

Independent of how an image was made (phantom, LIDC slice, generator output), so they validate
the phantom's factors and later score discovered directions. Lengths are in mm for a given field
of view (the phantom's 500 mm by default); only their ranking matters for scoring.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

BODY_HU = -400.0       # above: body (soft tissue, fat at -100, bone)
SOFT_HU = -30.0        # above: muscle, organs, bone (fat lies below)
AIR_IN_BODY_HU = -400.0

ATTRIBUTES = ("width", "height", "size", "rotation", "y", "thickness", "breast", "lung_area")


TABLE_MM = 7.0          # opening radius: cuts off the table (a slab ~12 mm thick) wherever it touches


def body_mask(hu: np.ndarray, fov_mm: float = 500.0) -> np.ndarray:
    """The patient: the largest connected component above BODY_HU, holes (lungs) filled.

    Holes are filled first, so a thin body outline at coarse pixels stays closed; an opening with
    a disk of TABLE_MM radius then removes the table, also where a rotated body rests on it."""
    n = hu.shape[0]
    r = max(1, round(TABLE_MM / (fov_mm / n)))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = xx * xx + yy * yy <= r * r
    m = ndimage.binary_opening(ndimage.binary_fill_holes(hu > BODY_HU), structure=disk)
    lab, k = ndimage.label(m)
    if k == 0:
        return np.zeros_like(m)
    sizes = ndimage.sum(m, lab, index=np.arange(1, k + 1))
    return ndimage.binary_fill_holes(lab == (1 + int(np.argmax(sizes))))


def _principal_axes(mask: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """(var along the near-horizontal axis, var along the other, angle deg, centroid rc)."""
    r, c = np.nonzero(mask)
    if r.size < 3:
        return 0.0, 0.0, 0.0, np.array([np.nan, np.nan])
    rc = np.array([r.mean(), c.mean()])
    cov = np.cov(np.stack([c - rc[1], -(r - rc[0])]))  # x right, y up
    vals, vecs = np.linalg.eigh(cov)
    # the axis closer to horizontal is "width", whatever the eigenvalue order
    i = int(np.argmax(np.abs(vecs[0])))
    vx, vy = vecs[:, i]
    if vx < 0:
        vx, vy = -vx, -vy
    angle = math.degrees(math.atan2(vy, vx))
    return float(vals[i]), float(vals[1 - i]), angle, rc


def _breast(body: np.ndarray, angle: float) -> float:
    """Anterior bulk beyond a front-back symmetric torso, in pixels: the body's first moment about
    its lateral axis (the line through its left- and right-most points, which breasts do not
    reach), over the half-height. Zero for a symmetric outline; about the breasts' area otherwise."""
    r, c = np.nonzero(body)
    x, y = c - c.mean(), r.mean() - r  # x right, y up = anterior
    th = math.radians(angle)
    u, v = math.cos(th) * x + math.sin(th) * y, -math.sin(th) * x + math.cos(th) * y
    band = max(1.0, 0.03 * float(u.max() - u.min()))
    lateral = (u >= u.max() - band) | (u <= u.min() + band)
    v = v - v[lateral].mean()
    half_height = max(1.0, float(-v.min()))  # posterior half: unaffected by breasts
    return float(v.sum()) / half_height


def measure(hu: np.ndarray, fov_mm: float = 500.0) -> dict[str, float]:
    """All attributes of one slice (HU, square)."""
    n = hu.shape[0]
    sp = fov_mm / n
    body = body_mask(hu, fov_mm)
    out = {k: float("nan") for k in ATTRIBUTES}
    if body.sum() < 10:
        return out
    var_w, var_h, angle, rc = _principal_axes(body)
    out["width"] = 4.0 * math.sqrt(var_w) * sp  # full axis of the equivalent ellipse
    out["height"] = 4.0 * math.sqrt(var_h) * sp
    out["size"] = float(body.sum()) * sp * sp / 100.0  # cm^2
    out["rotation"] = angle  # counter-clockwise on screen is positive
    out["y"] = float(rc[0]) / n  # centroid row, 0 = top
    # subcutaneous fat: the muscle wall encloses everything denser than fat inside the body
    dense = ndimage.binary_fill_holes(ndimage.binary_opening((hu > SOFT_HU) & body, iterations=1))
    lab, k = ndimage.label(dense)
    if k:
        sizes = ndimage.sum(dense, lab, index=np.arange(1, k + 1))
        inner = lab == (1 + int(np.argmax(sizes)))
        edge = inner & ~ndimage.binary_erosion(inner)
        depth = ndimage.distance_transform_edt(body)  # distance to outside the body
        t_px = float(np.median(depth[edge])) if edge.any() else 0.0
        out["thickness"] = t_px * sp
    out["breast"] = _breast(body, angle) * sp * sp / 100.0
    out["lung_area"] = float(((hu < AIR_IN_BODY_HU) & body).sum()) * sp * sp / 100.0
    return out


def measure_batch(hu: np.ndarray, fov_mm: float = 500.0) -> dict[str, np.ndarray]:
    """measure() over N x S x S images -> attribute -> (N,) array."""
    rows = [measure(h, fov_mm) for h in np.asarray(hu)]
    return {k: np.array([r[k] for r in rows]) for k in ATTRIBUTES}
