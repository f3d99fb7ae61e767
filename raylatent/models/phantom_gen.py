"""The synthetic thorax phantom as a differentiable generator whose true latent directions are known.

Why: a trained GAN or VAE has no ground truth, so discovered directions can only be judged by eye
(as the paper does). This generator draws the DICOM phantom's anatomy (`data/phantom.py`) from a
latent z, so direction discovery can be scored against the eight directions that really move it.

Latent -> factors: u = M^T z with M a fixed d x 8 orthonormal matrix (QR of a Gaussian drawn from
`seed`, a buffer, so a checkpoint's state_dict restores it). z ~ N(0, I) gives u ~ N(0, I), and
each u_i goes through the normal CDF onto its factor's range (`RANGES`: `sample_factors`' ranges,
breast continuous on [0, 1] and z-position on [0, 1]). The columns of M are therefore exactly the
true directions, in the order of `FACTORS`.

The other d - 8 latent dimensions do nothing: the image is invariant to z's component outside
span(M). A named nuisance there would be a ninth factor that the scoring would have to treat; with
none, any part of a learned direction outside span(M) is measurably wasted.

Rendering: the anatomy, HU values, geometry conventions and paint order of `render_slice`, with
soft edges (each region's weight is a sigmoid of an approximate signed distance to its outline,
scale TAU_PX: about one pixel from 10 % to 90 %, as a resampled edge, so G is differentiable in z),
composited img = img (1 - m) + HU m.
Where `render_slice` switches anatomy on or off with z (trachea, heart, liver, ...), the switch is a
C1 smoothstep over Z_SOFT, and its piecewise z profiles (lung scale, breast taper) use C1 soft
clamps. Structures smaller than a pixel are weighted by a smooth `presence` (their diameter over
the pixel side), so vanishing organs fade rather than leave a half-grey pixel. There is no noise
and there are no random lung vessels: G must be deterministic so that a latent shift is the only
source of change in an image. Everything is vectorised over the batch (factors are N x 1 x 1)
and drawn only in a window around the batch's bodies (most of a slice is air): a sample's image
depends on its batch mates by less than 1e-5. One CPU thread, a batch of 128 (a shared, loaded
machine): ~25 ms at 32^2 and ~85 ms at 64^2 forward, about twice that with the backward pass.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from raylatent.data.dicom import HU_MAX, HU_MIN
from raylatent.data.factors import FACTORS
from raylatent.data.phantom import FOV_MM, HU, SCAN_RADIUS_MM

RANGES = {"width": (0.85, 1.15), "height": (0.85, 1.15), "size": (0.88, 1.12), "rotation": (-12.0, 12.0),
          "y": (-30.0, 30.0), "thickness": (6.0, 32.0), "breast": (0.0, 1.0), "z": (0.0, 1.0)}
TAU_PX = 0.2      # edge softness (sigmoid scale) in pixels: ~1 px from 10 % to 90 %, like a resampled edge
Z_SOFT = 0.03     # width in z of the smoothsteps replacing render_slice's hard z switches
RIB_GATE = 0.04   # width in sin^2 of the gate replacing render_slice's `|sin(angle)| > 0.95: no rib`
N_RIBS = 14
WINDOW_SOFT = 24  # anatomy is drawn within this many edge softnesses of its outline (weight < 1e-6 beyond)


def _smoothstep(t: torch.Tensor) -> torch.Tensor:
    """C1 step: 0 for t <= 0, 1 for t >= 1."""
    t = t.clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _below(z: torch.Tensor, t: float) -> torch.Tensor:
    """~ (z < t), switched over Z_SOFT."""
    return _smoothstep((t - z) / Z_SOFT + 0.5)


def _above(z: torch.Tensor, t: float) -> torch.Tensor:
    return _smoothstep((z - t) / Z_SOFT + 0.5)


def _softrelu(x: torch.Tensor, delta: float) -> torch.Tensor:
    """C1 max(0, x): exactly 0 below -delta (so absent anatomy has zero gradient), x above delta."""
    return torch.where(x >= delta, x, (x + delta).clamp_min(0.0) ** 2 / (4 * delta))


def _softclamp01(x: torch.Tensor, delta: float = 0.05) -> torch.Tensor:
    return _softrelu(x, delta) - _softrelu(x - 1.0, delta)


def _smax(a: torch.Tensor, b: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    return b + _softrelu(a - b, delta)


def _within(i0: int, i1: int, base0: int, base1: int) -> tuple[int, int]:
    """The index range [i0, i1) clipped to [base0, base1), relative to base0 (never empty)."""
    j0 = min(max(i0, base0), base1 - 1) - base0
    return j0, max(min(i1, base1) - base0, j0 + 1)


def _lung_scale(z: torch.Tensor) -> torch.Tensor:
    """render_slice's `_lung_scale` (already C1 at z = 0.5), its final max(0, .) a C1 soft clamp."""
    upper = 0.35 + 0.65 * torch.sin(math.pi * z.clamp(max=0.5))
    lower = 1.0 - (((z - 0.5).clamp(min=0.0)) / 0.38) ** 1.6
    return _softrelu(torch.where(z < 0.5, upper, lower), 0.03)


def factor_axes(latent_dim: int, seed: int = 0) -> torch.Tensor:
    """M (latent_dim x 8, orthonormal, seeded): column i is the latent direction of factor i."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(latent_dim, len(FACTORS), generator=g, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()  # the unique QR (positive diagonal of R)


class PhantomGenerator(nn.Module):
    """z (N x d) -> thorax slices (N x 1 x S x S) in the model's [-1, 1] scale; see the module doc."""

    def __init__(self, latent_dim: int = 32, size: int = 64, width: int = 0, seed: int = 0):
        super().__init__()  # width: the registry's build signature; a phantom has none
        if latent_dim < len(FACTORS):
            raise ValueError(f"phantom generator: latent_dim {latent_dim} < {len(FACTORS)} factors")
        self.latent_dim, self.size, self.seed = latent_dim, size, seed
        self.register_buffer("M", factor_axes(latent_dim, seed))
        self.px = FOV_MM / size
        self.soft = TAU_PX * self.px  # edge softness, mm
        c = (torch.arange(size, dtype=torch.float64) + 0.5) * self.px - FOV_MM / 2
        x, y = c.view(1, 1, size), c.view(1, size, 1)
        static_table = torch.sigmoid((220.0 - x.abs()) / self.soft) * torch.sigmoid(
            (SCAN_RADIUS_MM - (x * x + y * y).sqrt()) / self.soft)
        for name, t in (("_x", x), ("_y", y), ("_table", static_table)):
            self.register_buffer(name, t.float(), persistent=False)  # derived from size: not saved

    # -- the latent <-> factor map -------------------------------------------------------------
    def first_layer(self, z: torch.Tensor) -> torch.Tensor:
        """u = M^T z per sample (N x 8): the generator's only linear layer (GANSpace)."""
        return z.reshape(z.shape[0], self.latent_dim) @ self.M

    @property
    def first_linear(self) -> torch.Tensor:
        """The map z -> u as an (8 x d) matrix, M^T (SeFa: its top right singular space is span(M)).
        A tensor like the other kinds' `first_linear`, not a module: it is a frozen buffer."""
        return self.M.T

    def true_directions(self) -> torch.Tensor:
        """d x 8: column i moves factor FACTORS[i] and nothing else."""
        return self.M

    def factors(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The physical factor values (each N) of latents z: range low + width x Phi(u_i)."""
        p = 0.5 * (1.0 + torch.erf(self.first_layer(z) / math.sqrt(2.0)))
        return {k: RANGES[k][0] + (RANGES[k][1] - RANGES[k][0]) * p[:, i] for i, k in enumerate(FACTORS)}

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.render_factors(self.factors(z))

    # -- rendering -----------------------------------------------------------------------------
    def _ellipse(self, u, v, cu, cv, a, b, p: float = 2.0, weight=1.0, local: bool = False) -> torch.Tensor:
        """Soft indicator of render_slice's `_superellipse`: sigmoid(signed distance / softness)
        times `weight` and the structure's presence (its diameter over the pixel side, at most 1).

        With L = |X|^p + |Y|^p the distance is (1 - r) R, r = L^(1/p) the normalised radius, replaced
        by a C1 rational stand-in without roots (exact slope at the outline, 1 at the centre), and R
        the outline's local scale: sqrt(ab), or for `local` (large, elongated outlines) a blend of
        a and b by direction, so the edge is about equally soft all round."""
        X, Y = (u - cu) / a, (v - cv) / b
        X2, Y2 = X * X, Y * Y
        L = X2 + Y2 if p == 2.0 else X2.pow(p / 2) + Y2.pow(p / 2)
        R = (a * b) ** 0.5
        one_minus_r = (1.0 - L) / (L.clamp(max=1.0) * (p - 1.0) + 1.0)
        scale = (X2 * a + Y2 * b + 1e-6 * R) / ((X2 + Y2 + 1e-6) * self.soft) if local else R / self.soft
        return torch.sigmoid(one_minus_r * scale) * (self._presence(R) * weight)

    def _presence(self, radius) -> torch.Tensor | float:
        """~ how much of a pixel a structure of this radius fills (1 from a pixel's diameter)."""
        if isinstance(radius, torch.Tensor):
            return _smoothstep(2.0 * radius / self.px)
        return float(_smoothstep(torch.tensor(2.0 * radius / self.px)))

    def render_factors(self, factors: Mapping[str, torch.Tensor | float] | torch.Tensor) -> torch.Tensor:
        """Images (N x 1 x S x S, [-1, 1]) for given factor values: a dict FACTORS name -> N tensor
        or float, or an N x 8 tensor in FACTORS order."""
        if isinstance(factors, torch.Tensor):
            factors = {k: factors[:, i] for i, k in enumerate(FACTORS)}
        vals = [torch.as_tensor(factors[k], device=self._x.device).to(self._x.dtype) for k in FACTORS]
        n = max(t.numel() for t in vals)
        w, h, s, rot, y0, t, br0, z = (v.reshape(-1, 1, 1).expand(n, 1, 1) for v in vals)
        return self._render(w, h, s, rot, y0, t, br0, z)[:, None]

    @torch.no_grad()
    def _window(self, u0, u1, v0, v1, cs, sn, y0) -> tuple[int, int, int, int]:
        """Pixel rows r0:r1 and columns c0:c1 holding the body-frame box [u0, u1] x [v0, v1] of every
        sample, widened by WINDOW_SOFT edge softnesses (beyond which a structure's weight is
        below 1e-6). Anatomy is drawn only there: most of a slice is air."""
        uc, vc, hu, hv = (u0 + u1) / 2, (v0 + v1) / 2, (u1 - u0) / 2, (v1 - v0) / 2
        xc, yc = cs * uc + sn * vc, -sn * uc + cs * vc + y0
        m = WINDOW_SOFT * self.soft
        hx, hy = cs.abs() * hu + sn.abs() * hv + m, sn.abs() * hu + cs.abs() * hv + m

        def index(lo: torch.Tensor, hi: torch.Tensor) -> tuple[int, int]:
            i0 = max(0, math.floor((lo.min().item() + FOV_MM / 2) / self.px - 0.5))
            i1 = min(self.size, math.ceil((hi.max().item() + FOV_MM / 2) / self.px - 0.5) + 1)
            return min(i0, self.size - 1), max(i1, min(i0, self.size - 1) + 1)

        return (*index(yc - hy, yc + hy), *index(xc - hx, xc + hx))

    def _render(self, w, h, s, rot, y0, t, br0, z) -> torch.Tensor:
        """render_slice's anatomy and paint order (see there for the anatomy's reasons), drawn in
        the window around the body (air elsewhere), the mediastinum and spine in a window of theirs."""
        E = self._ellipse
        a, b = 150.0 * w * s, 100.0 * h * s
        ai, bi = a - t, b - t
        th = torch.deg2rad(rot)
        cs, sn = torch.cos(th), torch.sin(th)
        br = br0 * _softclamp01((0.7 - z) / 0.25, 0.1)   # breasts taper off below z = 0.45
        ub = torch.maximum(a, 0.42 * a + 55 * br) + 2
        r0, r1, c0, c1 = self._window(-ub, ub, -b - 42 * br - 2, torch.maximum(b, 0.55 * bi + 40), cs, sn, y0)
        x, dy = self._x[:, :, c0:c1], self._y[:, r0:r1] - y0
        u, v = cs * x - sn * dy, sn * x + cs * dy    # body frame, as render_slice
        ua = (u * u + 1.0).sqrt()                    # |u| (smooth within 1 mm): paired organs at once
        one = torch.ones_like(z)

        def paint(img, hu: float, m):
            return torch.lerp(img, img.new_tensor(hu), m)

        img = HU["air"] + (HU["fat"] - HU["air"]) * E(u, v, 0.0, 0.0, a, b, 2.3, local=True)
        inner = E(u, v, 0.0, 0.06 * t, ai, bi, 2.3, local=True)
        img = paint(img, HU["muscle"], inner)
        # breasts: fat beyond the chest wall (not over muscle), a gland in front
        img = paint(img, HU["fat"], E(ua, v, 0.42 * a, 5.0 - b, 55 * br + 1e-3, 42 * br + 1e-3) * (1 - inner))
        img = paint(img, HU["gland"], E(ua, v, 0.42 * a, -b - 14 * br, 28 * br + 1e-3, 16 * br + 1e-3))
        img = paint(img, HU["rib"], self._ribs(u, v, ai, bi, z))
        ls = _lung_scale(z)
        img = paint(img, HU["lung"], E(ua, v, 0.43 * ai, -0.02 * bi, 0.4 * ai * ls + 1e-3, 0.78 * bi * ls + 1e-3, 2.2,
                                       local=True))
        lv = _softclamp01((z - 0.55) / 0.3)
        img = paint(img, HU["liver"], E(u, v, -0.3 * ai, 0.05 * bi, 0.55 * ai * lv + 1, 0.7 * bi * lv + 1, 2.2,
                                        _above(z, 0.55)))
        ab, gate = _softclamp01((z - 0.75) / 0.2), _above(z, 0.75)
        img = paint(img, HU["bowel"], E(u, v, 0.35 * ai, 0.0, 0.45 * ai * ab + 1, 0.6 * bi * ab + 1, weight=gate))
        img = paint(img, HU["air"] + 100, E(u, v, 0.35 * ai, -0.25 * bi, 0.2 * ai * ab + 1, 0.15 * bi * ab + 1,
                                            weight=gate))
        # the mediastinum and spine, in their own window
        hs = _softrelu(torch.sin(math.pi * (z - 0.3) / 0.5), 0.02)
        hu_, hv_ = 0.35 * ai * hs + 1, 0.45 * bi * hs + 1   # heart's half axes
        vb = 0.55 * bi
        spv = _smax(vb + 24, bi - 10)                       # spinous process inside the muscle wall
        q0, q1, p0, p1 = self._window(torch.minimum(0.15 * ai - hu_, -one * 46),
                                      torch.maximum(0.15 * ai + hu_, one * 46),
                                      -0.93 * bi - 8, torch.maximum(spv + 10, 0.45 * bi + 14), cs, sn, y0)
        (q0, q1), (p0, p1) = _within(q0, q1, r0, r1), _within(p0, p1, c0, c1)
        sub, u, v, ua = (q[:, q0:q1, p0:p1] for q in (img, u, v, ua))
        # trachea, then the main bronchi
        sub = paint(sub, HU["air"], E(u, v, 0.0, -0.35 * bi, 9 * one, 8 * one, weight=_below(z, 0.3)))
        sb = (z - 0.3) / 0.12
        sub = paint(sub, HU["air"], E(ua, v, 6 + 30 * sb, -0.3 * bi + 10 * sb, 6 * one, 6 * one,
                                      weight=_above(z, 0.3) * _below(z, 0.42)))
        # heart, the arch's great vessels or the ascending aorta, the descending aorta
        sub = paint(sub, HU["blood"], E(u, v, 0.15 * ai, -0.2 * bi, hu_, hv_, weight=_above(z, 0.3) * _below(z, 0.8)))
        sub = paint(sub, HU["blood"], E(u, v, -12.0, -0.15 * bi, 9 * one, 9 * one, weight=_below(z, 0.3)))
        sub = paint(sub, HU["blood"], E(u, v, 0.05 * ai, -0.25 * bi, 15 * one, 15 * one,
                                        weight=_above(z, 0.3) * _below(z, 0.45)))
        sub = paint(sub, HU["blood"], E(u, v, 22.0, 0.45 * bi, 12 * one, 12 * one))
        # spine: vertebral body (cortical rim, cancellous core), canal, spinous process; sternum
        sub = paint(sub, HU["cortical"], E(u, v, 0.0, vb, 22 * one, 19 * one))
        sub = paint(sub, HU["cancellous"], E(u, v, 0.0, vb, 18 * one, 15 * one))
        sub = paint(sub, HU["muscle"] - 20, E(u, v, 0.0, (vb + spv) / 2 + 4, 7 * one, 7 * one))
        sub = paint(sub, HU["cortical"], E(u, v, 0.0, spv, 5 * one, 8 * one))
        sub = paint(sub, HU["cortical"] - 300, E(u, v, 0.0, -0.93 * bi, 14 * one, 6 * one, weight=_below(z, 0.7)))
        img = img.clone()
        img[:, q0:q1, p0:p1] = sub
        img = F.pad(img, (c0, self.size - c1, r0, self.size - r1), value=HU["air"])
        # the table: follows y and b, does not rotate
        top, y = y0 + b + 8.0, self._y
        img = paint(img, HU["table"], self._table * (torch.sigmoid((y - top) / self.soft)
                                                     * torch.sigmoid((top + 12 - y) / self.soft)))
        return (img.clamp(HU_MIN, HU_MAX) - HU_MIN) / (HU_MAX - HU_MIN) * 2.0 - 1.0

    def _ribs(self, u, v, ai, bi, z) -> torch.Tensor:
        """render_slice's 14 ribs (6 mm disks on a ring at 0.9 of the muscle wall, phase 0.5 sin 7z,
        none where |sin(angle)| > 0.95, none from z = 0.9), each pixel testing only the three ribs
        nearest its angle on the ring (the others lie over a rib spacing away, their weight there
        negligible), joined as a union. Rib centres and gates are per-sample tables indexed by rib."""
        n = u.shape[0]
        phase = 0.5 * torch.sin(7.0 * z).view(n, 1)
        with torch.no_grad():  # which ribs a pixel tests: a choice, not a function of z to differentiate
            alpha = torch.atan2(v / (0.9 * bi), u / (0.9 * ai))
            k0 = torch.round(alpha * (N_RIBS / (2 * math.pi)) - phase.view(n, 1, 1))
            idx0 = (k0 + N_RIBS // 2 + 2).long().view(n, -1)   # rib k -> column k + 9, k in -9..9
        ks = torch.arange(-N_RIBS // 2 - 2, N_RIBS // 2 + 3, dtype=u.dtype, device=u.device)
        ang = (ks + phase) * (2 * math.pi / N_RIBS)
        sa = torch.sin(ang)
        cu_t, cv_t = 0.9 * ai.view(n, 1) * torch.cos(ang), 0.9 * bi.view(n, 1) * sa
        gate_t = _smoothstep((0.9025 - sa * sa) / RIB_GATE + 0.5) * _below(z, 0.9).view(n, 1)
        keep = None
        for j in (-1, 0, 1):
            idx = idx0 + j
            du = u - torch.gather(cu_t, 1, idx).view_as(u)
            dv = v - torch.gather(cv_t, 1, idx).view_as(u)
            L = (du * du + dv * dv) * (1 / 36.0)
            m = torch.sigmoid((1.0 - L) / (1.0 + L.clamp(max=1.0)) * (6.0 / self.soft))
            m = 1 - m * torch.gather(gate_t, 1, idx).view_as(u)
            keep = m if keep is None else keep * m
        return (1 - keep) * self._presence(6.0)


def ground_truth_kind(name: str, title: str, model_class: type, truth, paths=None):
    """A generator kind fixed by construction (never trained) that knows its true factor
    directions: built from (latent_dim, size), inverted by reverse latent search."""
    from raylatent.models.inversion import reverse_search
    from raylatent.models.registry import GeneratorKind

    return GeneratorKind(
        name=name, title=title, model_class=model_class,
        build=lambda latent_dim, size, width: model_class(latent_dim, size, width),
        generator_of=lambda model: model, training=None,
        invert=lambda model, images: reverse_search(model, images, steps=200, restarts=2),
        inversion="reverse latent search", loss_keys=(), trainable=False, truth=truth, paths=paths)


def _register() -> None:
    from raylatent.models.registry import register

    register(ground_truth_kind("phantom", "Phantom (ground truth)", PhantomGenerator,
                               truth=lambda G: (G.true_directions(), FACTORS)))


_register()
