"""Image attributes measured on CT slices in HU: the things the paper's directions change.

Independent of how an image was made (phantom, LIDC slice, generator output), so they validate
the phantom's factors and later score discovered directions. Lengths are in mm for a given field
of view (the phantom's 500 mm by default); only their ranking matters for scoring.

A brightness change must not read as anatomy (with fixed HU thresholds a brighter image has a
bigger outline and no fat: +150 HU made the default phantom's fat 15 -> 5 mm at 128^2 and its area
+8% at 32^2). So the geometry is measured after a global offset that puts the background air back
at -1000 HU: a whole-image shift then changes no outline, breast or fat measure at all. A shift of
the body alone (background untouched) still moves the thresholds' partial-volume crossings (the
fat split stays fixed; docs/interpretation.md says why).
`intensity` is the body's soft-tissue level in the raw HU (muscle and organs sit near 47 HU in
every patient), so it moves one to one with a brightness shift and little with the anatomy at
128^2 (std 2 HU over the validation cohort); under 64^2 the tissue classes mix in a pixel and it
drifts with fat and lung by tens of HU. It is not one of the paper's factors; the labeller counts
it so that a brightness direction is not mistaken for one.

`breast` is the tissue anterior to a torso outline fitted to the body (see `_torso`), as the
phantom defines it (tissue beyond the body super-ellipse), not a moment of the whole outline:
a moment read any front-back asymmetry, or a noisy lateral reference, as breast.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.optimize import least_squares

AIR_HU = -1000.0
FAT_HU = -100.0
BODY_HU = -400.0        # above: body (soft tissue, fat at -100, bone)
SOFT_HU = -30.0         # above: muscle, organs, bone (fat lies below)
SOFT_LEVEL_HU = 47.0    # soft_level() of phantom slices at 128^2 (46.4 +- 2.0 HU; muscle 45, liver 60)
AIR_IN_BODY_HU = -400.0
SOFT_HALF_RANGE = 200.0  # fat and soft tissue lie within this of the median of the body's non-lung
# pixels (which is between fat and muscle); bone (cancellous 300, cortical 1100) lies beyond it.
# Over the validation cohort the level's std is 36 / 15 / 2.1 HU at 32 / 64 / 128^2 (250: 50 / 18 /
# 2.0; 150: 31 / 12 / 2.9 but then fat drops out of the range when the median sits at muscle)
TORSO_P = 2.3           # torso super-ellipse exponent (the phantom's body outline)
TORSO_TRIM_PX = 0.5     # anterior outline points further than this outside the torso fit: breast

MEASURES = ("width", "height", "size", "rotation", "y", "thickness", "breast", "intensity", "lung_area")


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


def air_offset(hu: np.ndarray, body: np.ndarray) -> float:
    """How far the background air lies from -1000 HU (median outside the dilated body), 0 if
    there is too little background to tell."""
    out = ~ndimage.binary_dilation(body, iterations=2)
    return float(np.median(hu[out]) - AIR_HU) if out.sum() >= 0.1 * hu.size else 0.0


def air_calibrated(hu: np.ndarray, body: np.ndarray, fov_mm: float = 500.0) -> tuple[np.ndarray, np.ndarray, float]:
    """(hu shifted so that its background air is at -1000 HU, the body mask of that, the shift):
    a global brightness shift undone before anything is thresholded."""
    off = air_offset(hu, body)
    if abs(off) <= 1.0:
        return hu, body, 0.0
    hu = hu - off
    return hu, body_mask(hu, fov_mm), off


def _otsu(v: np.ndarray, bins: int = 64) -> float:
    """Otsu's threshold of a 1-d sample (the split maximising the between-class variance)."""
    h, e = np.histogram(v, bins=bins)
    c = 0.5 * (e[:-1] + e[1:])
    w0 = np.cumsum(h)
    w1 = w0[-1] - w0
    s0 = np.cumsum(h * c)
    m0, m1 = s0 / np.maximum(w0, 1), (s0[-1] - s0) / np.maximum(w1, 1)
    return float(e[1 + int(np.argmax(w0 * w1 * (m0 - m1) ** 2))])


def soft_level(hu: np.ndarray, body: np.ndarray) -> float:
    """The body's soft-tissue level: median of the brighter Otsu class of its fat-or-soft pixels.

    Which pixels are fat or soft tissue is decided relative to their own median, not by fixed HU,
    so the level follows a brightness shift one to one instead of letting bone into the range."""
    v = hu[body]
    v = v[v > BODY_HU]
    if v.size < 5:
        return float("nan")
    med = float(np.median(v))
    v = v[np.abs(v - med) < SOFT_HALF_RANGE]
    if v.size < 5:
        return float("nan")
    upper = v[v > _otsu(v)]
    return float(np.median(upper if upper.size else v))


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


def _edge_points(F: np.ndarray, level: float) -> np.ndarray:
    """Sub-pixel (col, row) points where each row and column of F first crosses `level` from
    either end: the outline, with partial volume, at any pixel size."""
    pts = []
    for axis in (0, 1):
        G = F if axis == 0 else F.T
        j = np.nonzero((G > level).any(0))[0]
        for H in (G, G[::-1]):
            k = np.argmax(H[:, j] > level, 0)
            ok = k > 0
            jj, kk = j[ok], k[ok]
            p0, p1 = H[kk - 1, jj], H[kk, jj]
            pos = kk - 1 + (level - p0) / (p1 - p0)
            pos = pos if H is G else G.shape[0] - 1 - pos
            pts.append(np.stack([jj, pos], 1) if axis == 0 else np.stack([pos, jj], 1))
    return np.concatenate(pts).astype(float)


def _torso(hu: np.ndarray, body: np.ndarray, angle: float, rc: np.ndarray, sp: float) -> float:
    """Breast: tissue anterior to the torso, cm^2.

    The slice is resampled into the body's frame (centroid, width axis horizontal) and a super-
    ellipse (exponent TORSO_P, free centre and half axes) is fitted to its sub-pixel outline.
    Breasts only add tissue in front, so anterior outline points beyond the fit are dropped and it
    is refitted (a few rounds): the torso follows the flanks, the back and whatever front is not
    breast, and the breasts are what lies beyond it. Tissue is counted with partial volume (air 0
    .. fat 1) minus the fitted outline's own partial volume, so a body without breasts reads ~0:
    0.3 / 2.4 / 5.7 cm^2 at 128 / 64 / 32^2 (a skin pixel that is part air, part muscle counts as
    more tissue than it holds), against 20-80 cm^2 of breast. The torso's front under the breasts
    is inferred from the shape (a front-back symmetric super-ellipse, as in the phantom): a real
    anterior bulge that is not breast (an abdomen) would read as breast too."""
    n = hu.shape[0]
    h = np.where(ndimage.binary_dilation(body, iterations=2), hu, AIR_HU)
    g = np.arange(-(n // 2) - 2, n // 2 + 3, dtype=float)
    uu, vv = np.meshgrid(g, g)  # u: width axis, v: towards the back (rows down)
    th = math.radians(angle)
    x, y = math.cos(th) * uu + math.sin(th) * vv, math.sin(th) * uu - math.cos(th) * vv
    F = ndimage.map_coordinates(h, [rc[0] - y, rc[1] + x], order=1, cval=AIR_HU)
    pts = _edge_points(F, 0.5 * (AIR_HU + FAT_HU)) + g[0]
    if len(pts) < 12:
        return float("nan")
    pu, pv = pts[:, 0], pts[:, 1]
    r0 = math.sqrt(body.sum() / math.pi)
    q = np.array([0.0, 0.0, math.log(1.2 * r0), math.log(0.8 * r0)])
    w = np.ones(len(pu))

    def dist(q, u, v):  # ~ signed distance outside the super-ellipse, px
        a, b = math.exp(q[2]), math.exp(q[3])
        r = (np.abs((u - q[0]) / a) ** TORSO_P + np.abs((v - q[1]) / b) ** TORSO_P) ** (1 / TORSO_P)
        return (r - 1.0) * math.sqrt(a * b)

    def jac(q, u, v):  # d dist / d (cu, cv, log a, log b), analytic: 3x fewer function calls than numeric
        a, b = math.exp(q[2]), math.exp(q[3])
        du, dv = (u - q[0]) / a, (v - q[1]) / b
        A, B = np.abs(du) ** TORSO_P, np.abs(dv) ** TORSO_P
        S = np.maximum(A + B, 1e-12)
        r, c = S ** (1 / TORSO_P), S ** (1 / TORSO_P - 1)
        s = math.sqrt(a * b)
        dr = np.stack([-c * np.abs(du) ** (TORSO_P - 1) * np.sign(du) / a,
                       -c * np.abs(dv) ** (TORSO_P - 1) * np.sign(dv) / b, -c * A, -c * B], 1)
        J = dr * s
        J[:, 2:] += ((r - 1.0) * s / 2)[:, None]
        return J

    for _ in range(5):
        try:
            q = least_squares(lambda q: dist(q, pu, pv) * w, q, method="lm",
                              jac=lambda q: jac(q, pu, pv) * w[:, None]).x
        except (ValueError, OverflowError, np.linalg.LinAlgError):
            return float("nan")
        if not (np.isfinite(q).all() and np.abs(q[:2]).max() < n and max(q[2], q[3]) < math.log(n)):
            return float("nan")  # no torso-like outline (a blob, noise): nothing to measure against
        w_next = np.where((pv - q[1] < -0.2 * math.exp(q[3])) & (dist(q, pu, pv) > TORSO_TRIM_PX), 0.0, 1.0)
        if np.array_equal(w_next, w):
            break  # the same points again: a further round would refit to the same outline
        w = w_next
    d = dist(q, uu, vv)
    tissue = np.clip((F - AIR_HU) / (FAT_HU - AIR_HU), 0.0, 1.0)
    model = np.clip(0.5 - d, 0.0, 1.0)
    front = (vv < q[1]) & (d > -1.5)
    return float(((tissue - model) * front).sum()) * sp * sp / 100.0


def _thickness(hu: np.ndarray, body: np.ndarray, split: float, sp: float) -> float:
    """Subcutaneous fat, mm: the median depth, from the skin, of the muscle wall (the outline of
    everything denser than fat inside the body)."""
    dense = ndimage.binary_fill_holes(ndimage.binary_opening((hu > split) & body, iterations=1))
    lab, k = ndimage.label(dense)
    if not k:
        return float("nan")
    sizes = ndimage.sum(dense, lab, index=np.arange(1, k + 1))
    inner = lab == (1 + int(np.argmax(sizes)))
    edge = inner & ~ndimage.binary_erosion(inner)
    depth = ndimage.distance_transform_edt(body)  # distance to outside the body
    return (float(np.median(depth[edge])) if edge.any() else 0.0) * sp


def measure(hu: np.ndarray, fov_mm: float = 500.0) -> dict[str, float]:
    """All attributes of one slice (HU, square)."""
    return _measure(hu, fov_mm)[0]


def _measure(hu: np.ndarray, fov_mm: float = 500.0) -> tuple[dict[str, float], tuple | None]:
    """(attributes, (air-calibrated HU, body mask, soft-tissue level) or None without a body): the
    second is what the z regressor's features start from, so they are not computed twice."""
    n = hu.shape[0]
    sp = fov_mm / n
    body = body_mask(hu, fov_mm)
    out = {k: float("nan") for k in MEASURES}
    if body.sum() < 10:
        return out, None
    hu, body, off = air_calibrated(hu, body, fov_mm)  # the geometry as if there were no global shift
    if body.sum() < 10:
        return out, None
    level = soft_level(hu, body)
    out["intensity"] = level + off  # the raw level: a global shift adds exactly itself
    var_w, var_h, angle, rc = _principal_axes(body)
    out["width"] = 4.0 * math.sqrt(var_w) * sp  # full axis of the equivalent ellipse
    out["height"] = 4.0 * math.sqrt(var_h) * sp
    out["size"] = float(body.sum()) * sp * sp / 100.0  # cm^2
    out["rotation"] = angle  # counter-clockwise on screen is positive
    out["y"] = float(rc[0]) / n  # centroid row, 0 = top
    out["thickness"] = _thickness(hu, body, SOFT_HU, sp)
    out["breast"] = _torso(hu, body, angle, rc, sp)
    out["lung_area"] = float(((hu < AIR_IN_BODY_HU) & body).sum()) * sp * sp / 100.0
    return out, (hu, body, level)


def measure_batch(hu: np.ndarray, fov_mm: float = 500.0, keep_prepared: bool = False):
    """measure() over N x S x S images -> attribute -> (N,) array; with keep_prepared, also each
    image's (calibrated HU, body, level) for `zposition.features(..., prepared=)`."""
    res = [_measure(h, fov_mm) for h in np.asarray(hu)]
    table = {k: np.array([r[0][k] for r in res]) for k in MEASURES}
    return (table, [r[1] for r in res]) if keep_prepared else table
