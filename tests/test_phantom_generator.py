"""The phantom generator (models/phantom_gen.py): differentiable in z, its true directions are the
columns of M and move their own factor's image attribute, its images are the DICOM phantom's, and
it is registered as the untrained kind `phantom`. CPU only, no Ray."""
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from raylatent.data.dicom import hu_to_model, model_to_hu
from raylatent.data.phantom import PatientFactors, render_slice, sample_factors
from raylatent.discovery.baselines import first_layer_of, ganspace, sefa
from raylatent.interpret.attributes import body_mask
from raylatent.interpret.labels import MIN_SPREAD, SEMANTIC, attributes_of
from raylatent.interpret.zposition import ZRegressor
from raylatent.models import as_generator, kind_of, make_generator
from raylatent.models.phantom_gen import FACTORS, RANGES, PhantomGenerator

K = len(FACTORS)
ATTRIBUTE = {k: k for k in FACTORS}  # each factor's image attribute (labels.SEMANTIC names)


def _in_span(V: torch.Tensor, M: torch.Tensor) -> float:
    """Largest norm of a column of V (unit columns) outside span(M)."""
    V, M = V.double(), M.double()
    return float((V - M @ (M.T @ V)).norm(dim=0).max())


# -- construction, seeds, checkpoints, registration ---------------------------------------------

def test_M_is_orthonormal_seeded_and_restored_from_a_state_dict():
    d, S = 12, 32
    G = PhantomGenerator(d, S, seed=3)
    M = G.true_directions()
    assert M.shape == (d, K) and set(RANGES) == set(FACTORS)
    torch.testing.assert_close(M.T @ M, torch.eye(K), atol=1e-5, rtol=0)
    z = torch.randn(4, d, generator=torch.Generator().manual_seed(0))
    same = PhantomGenerator(d, S, seed=3)
    assert torch.equal(same.M, M) and torch.equal(same(z), G(z))
    other = PhantomGenerator(d, S, seed=4)
    assert (other.M - M).abs().max() > 0.1
    assert list(G.state_dict()) == ["M"]           # a checkpoint holds M, nothing derived from S
    other.load_state_dict(G.state_dict())
    assert torch.equal(other.M, M) and torch.equal(other(z), G(z))
    with pytest.raises(ValueError, match="latent_dim"):
        PhantomGenerator(K - 1, S)


def test_registered_as_an_untrained_kind_with_sefa_and_ganspace_finding_span_M():
    k = kind_of("phantom")
    assert (k.title, k.trainable, k.training, k.has_encoder, k.loss_keys) == \
        ("Phantom (ground truth)", False, None, False, ())
    assert (k.inversion, k.width_field, k.settings) == ("reverse latent search", None, None)  # no width, no settings
    assert kind_of("gan").trainable and kind_of("vae").trainable
    d, S = 16, 32
    G = make_generator("phantom", S, width=7, latent_dim=d)
    assert isinstance(G, k.model_class) and as_generator(G) is G and k.generator_of(G) is G
    assert G(torch.randn(3, d)).shape == (3, 1, S, S) and G.latent_dim == d and G.size == S
    assert torch.equal(G.M, PhantomGenerator(d, S).M)   # the registry builds the default seed
    z = torch.randn(5, d)
    torch.testing.assert_close(G.first_layer(z), (G.first_linear @ z.T).T)
    assert _in_span(sefa(G.first_linear, K), G.M) < 1e-4
    # GANSpace regresses z on the principal coordinates: exact up to its sampling error ~ sqrt(d / n)
    n = 4096
    assert _in_span(ganspace(first_layer_of(G), d, K, n=n), G.M) < 3 * (d / n) ** 0.5


def test_factors_cover_their_ranges_through_the_normal_cdf():
    G = PhantomGenerator(10, 16)
    z = torch.randn(2000, 10, generator=torch.Generator().manual_seed(0))
    f = G.factors(z)
    for name, (lo, hi) in RANGES.items():
        v = f[name]
        assert v.shape == (2000,) and lo <= float(v.min()) and float(v.max()) <= hi
        # Phi(N(0, 1)) is uniform: the factor fills its range evenly
        assert abs(float(v.mean()) - (lo + hi) / 2) < 0.03 * (hi - lo)
        assert abs(float(v.std()) - (hi - lo) / 12 ** 0.5) < 0.03 * (hi - lo)


# -- differentiability and the directions ----------------------------------------------------------

def test_G_is_differentiable_in_z_and_every_column_of_M_moves_the_image():
    d, S, N = 10, 16, 2
    G = PhantomGenerator(d, S).double()
    # near the middle of every factor's range: z-position ~ 0.5 (breasts exist above z = 0.7)
    z = (0.3 * torch.randn(N, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(G, (z,), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)
    for i, name in enumerate(FACTORS):
        _, dimg = torch.autograd.functional.jvp(G, z.detach(), G.M[:, i].expand(N, d).contiguous())
        assert torch.isfinite(dimg).all(), name
        assert (dimg.flatten(1).abs().sum(1) > 1e-3).all(), f"moving along column {i} ({name}) changes nothing"


def test_directions_outside_span_M_change_nothing():
    d, S = 24, 32
    G = PhantomGenerator(d, S)
    gen = torch.Generator().manual_seed(2)
    q = torch.randn(d, 3, generator=gen, dtype=torch.float64)
    M = G.M.double()
    q = torch.linalg.qr(q - M @ (M.T @ q))[0].float()   # three unit directions orthogonal to span(M)
    z = torch.randn(6, d, generator=gen)
    with torch.no_grad():
        base = G(z)
        for j in range(q.shape[1]):
            assert (G(z + 3.0 * q[:, j]) - base).abs().max() < 1e-5
        assert (G(z + 0.5 * G.M[:, 0]) - base).abs().max() > 1e-2   # while a true direction does


# -- attributes along the true directions -------------------------------------------------------------

SWEEP_SIZE, SWEEP_LATENTS, SWEEP_EPS = 64, 8, torch.linspace(-2.0, 2.0, 7)
RHO_TARGET = 0.9     # a factor's own attribute tracks the shift
OFF_RHO, OFF_EFFECT = 0.5, 0.1   # another attribute: |rho| below OFF_RHO, or a change below a tenth of its spread
# Attributes that necessarily move together, with their sign: width, height and size (area) are one
# outline (a wider body has more area; size scales both axes), and breasts are anterior tissue of
# the outline (taller, larger, its centroid higher up = smaller row). Measured rho at 64^2: width->
# size 0.97, height->size 0.97, size->width/height 0.98/0.99, breast->height/size 0.98, breast->y -0.98.
COUPLED = {"width": {"size": 1}, "height": {"size": 1}, "size": {"width": 1, "height": 1},
           "breast": {"height": 1, "size": 1, "y": -1}}


@pytest.fixture(scope="module")
def sweep_setup():
    """G at 64^2, the z regressor fitted on DICOM-phantom slices with their slice_frac (as
    interpret/validate.py does, fewer patients), and each attribute's population spread."""
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the regressor's small MLP: threads only contend
    try:
        rng = np.random.default_rng(1)
        images, frac = [], []
        for p in range(16):
            f = sample_factors(rng)
            for i in range(16):
                images.append(hu_to_model(render_slice(f, i / 15, 256, seed=p * 101 + i), SWEEP_SIZE))
                frac.append(i / 15)
        zreg = ZRegressor.fit(np.stack(images), frac)
    finally:
        torch.set_num_threads(torch_threads)
    G = PhantomGenerator(32, SWEEP_SIZE)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", RuntimeWarning)
        pop = attributes_of(G(torch.randn(64, 32, generator=torch.Generator().manual_seed(5))), zreg)
    spread = {k: max(float(np.nanstd(v)), MIN_SPREAD[k]) for k, v in pop.items()}
    return G, zreg, spread


def _sweep(G, zreg, spread, factor: str, pin: dict[str, float] | None = None) -> tuple[dict, dict]:
    """Shift SWEEP_LATENTS base latents along M[:, factor] by SWEEP_EPS; per attribute, Spearman rho
    between the shift and the attribute's change (pooled over latents, as labels.score_directions)
    and the effect (mean |change| end to end over the population spread). Each base has the swept
    factor at mid-range (so the sweep spans its range) and the `pin`ned factors' u set."""
    M, i = G.M, FACTORS.index(factor)
    z0 = torch.randn(SWEEP_LATENTS, G.latent_dim, generator=torch.Generator().manual_seed(0))
    for name, u in {factor: 0.0, **(pin or {})}.items():
        j = FACTORS.index(name)
        z0 = z0 + (u - z0 @ M[:, j])[:, None] * M[:, j][None]
    zz = (z0[None] + SWEEP_EPS[:, None, None] * M[:, i]).reshape(-1, G.latent_dim)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", RuntimeWarning)
        att = attributes_of(G(zz), zreg)
    n_eps = len(SWEEP_EPS)
    e = np.repeat(SWEEP_EPS.numpy()[:, None], SWEEP_LATENTS, 1)
    rho, effect = {}, {}
    for a in SEMANTIC:
        v = att[a].reshape(n_eps, SWEEP_LATENTS)
        change = v - v[n_eps // 2]
        ok = np.isfinite(change)
        rho[a] = float(spearmanr(e[ok], change[ok]).statistic) if np.nanstd(change[ok]) > 0 else 0.0
        effect[a] = float(np.nanmean(np.abs(v[-1] - v[0]))) / spread[a]
    return rho, effect


# Per factor, the bases' pinned u: breasts are drawn only above z = 0.7 (render_slice's anatomy),
# so the breast sweep runs on upper-thorax slices (u_z = -0.6: z ~ 0.27); z moves the outline only
# through the breasts' taper with z (checked below), so the z sweep runs on breastless bases.
PIN = {"breast": {"z": -0.6}, "z": {"breast": -5.0}}


@pytest.mark.parametrize("factor", FACTORS)
def test_moving_along_a_column_of_M_changes_its_attribute(sweep_setup, factor):
    """Column i of M moves attribute i (|rho| >= RHO_TARGET) and, apart from the outline couplings
    in COUPLED, no other attribute (|rho| < OFF_RHO or an effect below OFF_EFFECT spreads).

    The z attribute is the learned regressor; it is checked only for the z factor's own sweep. It
    is not an off-target check: it is not invariant to the other factors on the DICOM phantom's
    own slices either (measured at 64^2, as rho/effect: rotation 0.62/3.7 (predictions of z = 2-4
    at rotation +11.5 deg, on render_slice slices alike), thickness 0.47/0.15 through its fat band
    share, width 0.39/0.11, height 0.45/0.07, size 0.54/0.15)."""
    G, zreg, spread = sweep_setup
    rho, effect = _sweep(G, zreg, spread, factor, PIN.get(factor))
    table = ", ".join(f"{a} {rho[a]:+.2f}/{effect[a]:.2f}" for a in SEMANTIC)
    own = ATTRIBUTE[factor]
    assert rho[own] >= RHO_TARGET, f"{factor}: {table}"
    for a, sign in COUPLED.get(factor, {}).items():
        assert sign * rho[a] >= RHO_TARGET, f"{factor} -> {a}: {table}"
    for a in SEMANTIC:
        if a == own or a in COUPLED.get(factor, {}) or (a == "z" and factor != "z"):
            continue
        assert abs(rho[a]) < OFF_RHO or effect[a] < OFF_EFFECT, f"{factor} -> {a}: {table}"


def test_z_moves_the_outline_only_through_the_breasts(sweep_setup):
    """render_slice tapers breasts off from z = 0.45 to 0.7: with breasts, the z direction shrinks
    their area (and so the outline's height); without (the test above), it leaves the outline alone.
    Measured at 64^2 with breast ~ 0.8: z -> breast rho -0.85, height -0.85, z 0.96."""
    G, zreg, spread = sweep_setup
    rho, _ = _sweep(G, zreg, spread, "z", {"breast": 0.85})
    assert rho["z"] >= RHO_TARGET and rho["breast"] <= -0.8 and rho["height"] <= -0.8, rho


# -- the DICOM phantom's images -----------------------------------------------------------------------

CASES = [(PatientFactors(), 0.5),
         (PatientFactors(breast=0.8, rotation=10, y=20), 0.2),
         (PatientFactors(width=1.1, height=0.9, size=0.95, thickness=28), 0.85),
         (PatientFactors(breast=1.0, width=0.88, rotation=-11, y=-25, thickness=8), 0.6),
         (PatientFactors(width=0.9, height=1.12, size=1.1), 0.1),
         (PatientFactors(breast=0.5), 0.35)]
MAD_HU = {64: 18.0, 128: 14.0}
IOU_MIN = 0.95


@pytest.mark.parametrize("size", sorted(MAD_HU))
def test_images_match_the_dicom_phantom(size):
    """G's image for given factors vs render_slice's at 256^2 (noise_hu=0) resized as the data are
    (hu_to_model). They cannot be equal: render_slice keeps its random lung vessels (~2-3 HU mean
    absolute difference between two of its own seeds), and G's sigmoid edges are not Lanczos'
    (ringing, overshoot). Measured mean |difference| over the image: 6-14 HU at 64^2, 5-11 HU at
    128^2, so MAD_HU bounds it with a margin; a wrong factor (rotation negated, z + 0.1, width
    x 1.05, thickness + 5 mm, y + 5 mm) costs 21-90 HU at 64^2. The patient (attributes.body_mask)
    must agree to IoU >= 0.95 (measured 0.97-1.0: rotated bodies rest closer to the table)."""
    G = PhantomGenerator(K, size)
    for f, z in CASES:
        ref = model_to_hu(hu_to_model(render_slice(f, z, 256, noise_hu=0.0), size))
        values = {k: (z if k == "z" else getattr(f, k)) for k in FACTORS}
        with torch.no_grad():
            img = model_to_hu(G.render_factors(values)[0, 0].numpy())
        mad = float(np.abs(img - ref).mean())
        b_ref, b_img = body_mask(ref), body_mask(img)
        iou = (b_ref & b_img).sum() / (b_ref | b_img).sum()
        assert mad < MAD_HU[size] and iou >= IOU_MIN, f"{f}, z={z}: {mad:.1f} HU, IoU {iou:.3f}"
    # render_factors takes an N x 8 tensor in FACTORS order as well as a dict
    rows = torch.tensor([[(z if k == "z" else getattr(f, k)) for k in FACTORS] for f, z in CASES[:2]])
    with torch.no_grad():
        both = G.render_factors(rows)
        one = G.render_factors({k: rows[1, i] for i, k in enumerate(FACTORS)})
    assert both.shape == (2, 1, size, size) and (both[1] - one[0]).abs().max() < 1e-5
