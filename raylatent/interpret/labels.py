"""Say what each direction does: sweep it, measure attributes, correlate, label.

For direction k: images G(z + eps a_k) for eps on a grid over [-SHIFT, SHIFT] and n latents; for each
attribute, rho: Spearman's rho between eps and the attribute's change from eps = 0 within each
latent, averaged over the latents weighted by how much the attribute changes in each (`tracking`).
Per latent, because a factor's effect differs in size from latent to latent (a saturating factor,
breast tissue only at some z): pooled over latents, a perfectly monotone true axis read |rho| 0.46
(breast) to 0.90. Then the effect size (mean |change| at the sweep ends over the attribute's spread
in the population), and purity: the top attribute's share of all effects, each weighted by its
|rho| (an attribute that only jitters with eps is noise, not entanglement). Label = the top
attribute when |rho| and purity pass their thresholds; `entangled` when some attribute tracks eps
but none dominates; `none` when nothing tracks it.

Coupled attributes: a factor moves other attributes physically (more fat or breast tissue moves
the outline, breast tissue the body's centre), so those changes are not entanglement. With
`couplings` (interpret/couplings.py: measured on the phantom generator's true axes), a candidate
label's purity counts, for every other attribute that changes the way the factor moves it (the
measured sign), up to the weight the factor itself causes there (coupling ratio x the candidate's
own weight) as its own; the top attribute is the tracking one of highest purity.

Width, height and size (area) are one outline: any change of width changes the area too, so they
count once in purity (as their largest effect). Which of the three an outline direction is, is
decided only among the ones that track the shift (|rho| >= RHO_MIN; an attribute that jitters
without tracking may still have the largest mean change, and labelled directions `width` at
rho_width -0.01, rho_height 0.94): width and height both tracking with the same sign and similar
relative changes (the smaller >= SIZE_BALANCE x the larger) = size; both tracking otherwise = the
one that changes more; only one of them tracking = that one; neither, but the area = size.

Scored attributes (ATTRIBUTES) are the paper's eight factors (FACTORS) plus `intensity` (the
soft-tissue level): not a factor, so factor_recovery does not look for it, but it counts in purity
and can be a label, so that a brightness change is not taken for size or fat thickness.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import rankdata

from raylatent.data.dicom import model_to_hu
from raylatent.data.factors import FACTORS
from raylatent.interpret.attributes import measure_batch

SEMANTIC = FACTORS  # the name the report and older code import
ATTRIBUTES = (*FACTORS, "intensity")  # what is scored, counts in purity and can be a label
MEASURED = {"width": "width", "height": "height", "size": "size", "rotation": "rotation", "y": "y",
            "thickness": "thickness", "breast": "breast", "intensity": "intensity"}
# The smallest spread an attribute is normalised by (its units): a change below this is noise,
# whatever the population spread (which can be ~0 for an attribute a generator never varies).
# Intensity (HU): a phantom population varies by ~2 HU at 128^2, so geometry's partial-volume
# drift of a few HU would otherwise count as a brightness change.
MIN_SPREAD = {"width": 5.0, "height": 5.0, "size": 5.0, "rotation": 1.0, "y": 0.01, "thickness": 1.5,
              "breast": 2.0, "z": 0.05, "intensity": 20.0}
LABELLER_VERSION = "labels-v3"  # v3: sweeps to +-2; v2: rho within latents, antithetic latents, couplings (pools redone)
# How far a direction is swept (unit directions, latents ~ N(0, I)): +-2 stays where the prior puts
# 95% of its mass along any direction. At +-4 a trained generator extrapolates and its changes
# entangle: on the 32^2 probe generators (160 patients x 12 slices, 30 epochs) supervised directions
# beat chance at K = 32 for 0 / 0 factors (GAN / VAE) at +-4, 1 / 3 at +-2, 1 / 3 at +-1.5.
SHIFT = 2.0
RHO_MIN = 0.6
PURITY_MIN = 0.4
OUTLINE = ("width", "height", "size")
SIZE_BALANCE = 0.5    # size: the smaller relative change of width and height is >= this x the larger
OUTLINE_GROUP = "outline"
GROUPS = (OUTLINE_GROUP, *[a for a in ATTRIBUTES if a not in OUTLINE])  # what purity counts once each
LABEL_NAMES = frozenset({*ATTRIBUTES, *GROUPS, "none", "entangled"})  # every label a direction can get
Couplings = dict[str, dict[str, float]]  # factor group -> other group -> signed weight ratio it causes


@dataclass(frozen=True)
class Sweep:
    """How each direction is swept to label it: from `latents` starting points (antithetic pairs),
    at `steps` shifts over [-SHIFT, SHIFT]; latents x steps images per direction. The defaults are
    the labeller's; fewer is cheaper and noisier (a dev run's sweep at 128^2 on a CPU)."""

    latents: int = 8
    steps: int = 5

    def __post_init__(self) -> None:
        if not (isinstance(self.latents, int) and 2 <= self.latents <= 1024 and self.latents % 2 == 0):
            raise ValueError(f"label latents {self.latents!r}: an even whole number in [2, 1024] (antithetic pairs)")
        if not (isinstance(self.steps, int) and 3 <= self.steps <= 101):
            raise ValueError(f"label steps {self.steps!r}: a whole number in [3, 101] (rho needs three shifts)")


def group_of(name: str) -> str:
    """The purity group of an attribute: the outline for width, height and size, else itself."""
    return OUTLINE_GROUP if name in OUTLINE else name


def tracking(eps: np.ndarray, v: np.ndarray) -> float:
    """Spearman's rho between the shift and an attribute's change within each latent (v: n_eps x
    n_latents; NaN = not measured), averaged over latents weighted by the change's range in each:
    a latent where the attribute does not move has no say. 0 when nothing changes."""
    rhos, weights = [], []
    for j in range(v.shape[1]):
        ok = np.isfinite(v[:, j])
        c = v[ok, j]
        if ok.sum() < 3 or np.ptp(c) <= 0:
            continue
        re, rc = rankdata(eps[ok]), rankdata(c)
        re, rc = re - re.mean(), rc - rc.mean()
        rhos.append(float((re * rc).sum() / np.sqrt((re * re).sum() * (rc * rc).sum())))
        weights.append(float(np.ptp(c)))
    return float(np.average(rhos, weights=weights)) if weights else 0.0


def sweep_latents(n: int, d: int, seed: int) -> torch.Tensor:
    """The n latents a direction is swept from: antithetic pairs (z, -z), so every direction's
    sweeps start on both sides of the origin as often (8 independent draws could all sit where a
    factor barely shows: the phantom's breast axis read |rho| 0.78 from seed 0, 0.95 from seed 1)."""
    half = torch.randn((n + 1) // 2, d, generator=torch.Generator().manual_seed(seed))
    return torch.cat([half, -half])[:n]


def attributes_of(images: torch.Tensor, zreg=None, fov_mm: float = 500.0) -> dict[str, np.ndarray]:
    """All scored attributes (ATTRIBUTES) of [-1, 1] images (N x 1 x S x S)."""
    x = images[:, 0].detach().cpu().numpy() if images.ndim == 4 else np.asarray(images)
    m, prepared = measure_batch(model_to_hu(x), fov_mm, keep_prepared=True)
    out = {k: m[v] for k, v in MEASURED.items()}
    out["z"] = zreg.predict(x, prepared if fov_mm == 500.0 else None) if zreg is not None else m["lung_area"] * np.nan
    return out


@torch.no_grad()
def score_directions(G, A, n_latents: int = Sweep.latents, shift: float = SHIFT, n_eps: int = Sweep.steps, zreg=None,
                     seed: int = 0, directions=None, couplings: Couplings | None = None) -> list[dict]:
    """Per direction: rho, effect and purity per attribute, and the label (purity net of the
    `couplings`, when given)."""
    with warnings.catch_warnings():  # NaN attributes (no body found in an image) are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        return _score(G, A, n_latents, shift, n_eps, zreg, seed, directions, couplings)


def _score(G, A, n_latents, shift, n_eps, zreg, seed, directions, couplings) -> list[dict]:
    from raylatent.models.directions import rebuild

    G.eval()
    fn = rebuild(A)  # a matrix, or an export's arrays: the model's exact shift
    d, K = fn.latent_dim, fn.K
    z = sweep_latents(n_latents, d, seed)
    eps = torch.linspace(-shift, shift, n_eps)
    base = attributes_of(G(z), zreg)
    pop = attributes_of(G(torch.randn(64, d, generator=torch.Generator().manual_seed(seed + 1))), zreg)
    spread = {k: max(float(np.nan_to_num(np.nanstd(v))), MIN_SPREAD[k]) for k, v in pop.items()}
    results = []
    for k in (range(K) if directions is None else directions):
        at = z[None].expand(n_eps, n_latents, d).reshape(-1, d)  # eps-major, as the attributes are read
        zz = at + fn(at, torch.full((at.shape[0],), int(k)), eps.repeat_interleave(n_latents))
        att = attributes_of(G(zz), zreg)
        row = {"direction": int(k), "rho": {}, "effect": {}}
        rel = {}  # relative change of width and height from one sweep end to the other
        for name in ATTRIBUTES:
            v = att[name].reshape(n_eps, n_latents) - base[name][None]
            row["rho"][name] = float(np.nan_to_num(tracking(eps.numpy(), v)))
            ends = np.abs(v[[0, -1]])
            ends = ends[np.isfinite(ends)]  # no body found at a sweep end (NaN): no measurable effect
            row["effect"][name] = float(ends.mean() / spread[name]) if ends.size else 0.0
            if name in ("width", "height"):
                rel[name] = float(np.nanmean(v[-1] - v[0]) / (2 * np.nanmean(np.abs(base[name])) + 1e-9))
        _label(row, rel, couplings)
        results.append(row)
    return results


def _outline_label(rho: dict[str, float], rel: dict[str, float]) -> str:
    """width, height or size for an outline direction, from the attributes that track the shift
    (see the module docstring)."""
    w_tr, h_tr = abs(rho["width"]) >= RHO_MIN, abs(rho["height"]) >= RHO_MIN
    w, h = np.nan_to_num(rel["width"]), np.nan_to_num(rel["height"])
    if w_tr and h_tr:
        same = rho["width"] * rho["height"] > 0 and w * h > 0
        if same and min(abs(w), abs(h)) >= SIZE_BALANCE * max(abs(w), abs(h)):
            return "size"
        return "width" if abs(w) >= abs(h) else "height"
    if w_tr or h_tr:
        return "width" if w_tr else "height"
    return "size"


def group_weights(row: dict) -> dict[str, float]:
    """Each purity group's weight in a scored direction: effect x |rho| (the outline: its largest)."""
    weight = {n: row["effect"][n] * abs(row["rho"][n]) for n in ATTRIBUTES}
    return {g: max(weight[n] for n in ATTRIBUTES if group_of(n) == g) for g in GROUPS}


def group_signs(row: dict) -> dict[str, float]:
    """Each purity group's direction of change: the sign of rho of its heaviest attribute."""
    out = {}
    for g in GROUPS:
        n = max((a for a in ATTRIBUTES if group_of(a) == g), key=lambda a: row["effect"][a] * abs(row["rho"][a]))
        out[g] = 1.0 if row["rho"][n] >= 0 else -1.0
    return out


def _label(row: dict, rel: dict[str, float], couplings: Couplings | None = None) -> None:
    """Fill purity, top and label of a scored direction (see the module docstring)."""
    groups, signs = group_weights(row), group_signs(row)
    tracks = {g: max(abs(row["rho"][n]) for n in ATTRIBUTES if group_of(n) == g) >= RHO_MIN for g in groups}
    total = sum(groups.values()) + 1e-9

    def purity(g: str) -> float:
        """g's share of all effects, with what g causes in the others (same signs as measured) as g's."""
        ratio = (couplings or {}).get(g, {})
        caused = sum(min(groups[o], abs(ratio.get(o, 0.0)) * groups[g]) for o in groups
                     if o != g and ratio.get(o, 0.0) * signs[o] * signs[g] > 0)
        return (groups[g] + caused) / total

    candidates = [g for g in groups if tracks[g]] or list(groups)
    top_group = max(candidates, key=lambda g: (purity(g), groups[g]))
    row["purity"] = purity(top_group)
    row["top"] = _outline_label(row["rho"], rel) if top_group == OUTLINE_GROUP else top_group
    row["relative_change"] = rel
    if not any(tracks.values()):
        row["label"] = "none"
    elif row["purity"] >= PURITY_MIN:
        row["label"] = row["top"]
    else:
        row["label"] = "entangled"


def factor_recovery(scores: list[dict]) -> dict[str, dict]:
    """For each of the paper's eight factors (FACTORS; not intensity), the best-matching direction,
    its |rho| and purity: a direction labelled with the factor if there is one (found), else the one
    whose change tracks it best."""
    out = {}
    for name in FACTORS:
        labelled = [r for r in scores if r["label"] == name]
        pool = labelled or [r for r in scores if r["top"] == name] or scores
        best = max(pool, key=lambda r: abs(r["rho"][name]) * (r["effect"][name] > 0))
        out[name] = {"direction": best["direction"], "rho": abs(best["rho"][name]), "purity": best["purity"],
                     "found": bool(labelled)}
    return out
