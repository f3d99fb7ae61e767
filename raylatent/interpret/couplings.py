"""How much each factor moves the other attributes by itself, measured on the phantom generator.

More fat or breast tissue moves the body outline, breast tissue moves the body's centre (y) and
the soft-tissue level, z-position changes the outline and the breast: a direction that moves one
factor moves these attributes too, and the labeller must not count that as entanglement
(labels.py). The couplings are measured, not assumed: each true axis of the phantom generator
(models/phantom_gen.py, which moves exactly one factor) is swept and labelled at the run's image
size and with the run's z regressor, on latents of a seed of their own (not the ones directions
are scored on), and for each other attribute group the ratio of its weight (effect x |rho|) to the
factor's own is kept, signed: + where the attribute moves with the factor's own attribute, -
where against it (the labeller credits only changes of the measured sign). Width, height and size
share the outline group: its ratios are the largest of the three axes'. Attributes that are not
factors (intensity) cause nothing: no row.
"""
from __future__ import annotations

from raylatent.interpret.labels import (FACTORS, GROUPS, Couplings, group_of, group_signs, group_weights,
                                       score_directions)

LATENTS = 32     # latents per true axis: each ratio is a mean over these
SEED = 1_000     # not the scoring latents' seed (0), so a true axis is not labelled on its own calibration


def measure_couplings(size: int, zreg=None, latent_dim: int = 32, n_latents: int = LATENTS,
                      seed: int = SEED) -> Couplings:
    """{factor group: {other group: signed weight ratio}} from the phantom generator at `size`^2."""
    from raylatent.models.phantom_gen import FACTORS as TRUE, PhantomGenerator

    assert tuple(TRUE) == tuple(FACTORS), "the phantom's axes are the labeller's factors, in order"
    G = PhantomGenerator(max(latent_dim, len(FACTORS)), size).eval()
    rows = score_directions(G, G.true_directions(), n_latents=n_latents, zreg=zreg, seed=seed)
    out: Couplings = {}
    for name, row in zip(FACTORS, rows):
        g, w, sign = group_of(name), group_weights(row), group_signs(row)
        mine = out.setdefault(g, {})
        for other in GROUPS:
            ratio = w[other] / max(w[g], 1e-9) * sign[other] * sign[g]
            if other != g and abs(ratio) > abs(mine.get(other, 0.0)):
                mine[other] = round(ratio, 4)
    return out


def as_couplings(obj) -> Couplings:
    """A couplings table read from JSON, checked: groups known, ratios finite (signed)."""
    import math

    if not isinstance(obj, dict):
        raise ValueError("couplings: not a mapping of factor group -> {group: ratio}")
    out: Couplings = {}
    for g, row in obj.items():
        if g not in GROUPS or not isinstance(row, dict):
            raise ValueError(f"couplings: unknown group {g!r}")
        for o, v in row.items():
            if o not in GROUPS or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"couplings: {g} -> {o}: {v!r} is not a known group with a finite ratio")
        out[g] = {o: float(v) for o, v in row.items()}
    return out
