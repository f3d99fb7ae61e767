"""Positive controls, the labeller's couplings and generator coverage: the verdict chain can say yes,
and says "not generated" where no method could find a factor."""
import json

import numpy as np
import pytest
import torch

from raylatent.discovery.closed_form import closed_form_records
from raylatent.discovery.controls import supervised, true_axes
from raylatent.discovery.records import TrialRecord
from raylatent.interpret.chance import chance_limits, factor_score, pool_scores, score_matrix
from raylatent.interpret.couplings import as_couplings, measure_couplings
from raylatent.interpret.coverage import MEMORISED, SPREAD_MIN, coverage, memorisation
from raylatent.interpret.labels import FACTORS, RHO_MIN, _label, score_directions, tracking
from raylatent.interpret.zposition import ZRegressor
from raylatent.models.phantom_gen import PhantomGenerator

POOL = 96  # random directions the thresholds are fitted on here (smoke: 160; fewer = noisier = higher thresholds)


@pytest.fixture(scope="module")
def phantom():
    """The phantom generator at the smoke grid's 32^2, its z regressor fitted on its own slices,
    the couplings measured on it and a chance pool scored with them (as a run does)."""
    torch.set_num_threads(1)
    G = PhantomGenerator(32, 32).eval()
    with torch.no_grad():
        z = torch.randn(384, 32, generator=torch.Generator().manual_seed(5))
        images, zf = G(z)[:, 0].numpy(), G.factors(z)["z"].numpy()
    zreg = ZRegressor.fit(images, zf)
    couplings = measure_couplings(32, zreg)
    S = score_matrix(pool_scores(G, 32, POOL, zreg=zreg, couplings=couplings), FACTORS)
    return G, zreg, couplings, S


@pytest.mark.slow
@pytest.mark.parametrize("K", [32, 100])
def test_the_true_axes_of_the_phantom_count_as_found_at_the_shipped_thresholds(phantom, K):
    G, zreg, couplings, S = phantom
    limits = chance_limits(S, FACTORS, K)
    rows = score_directions(G, G.true_directions(), zreg=zreg, couplings=couplings)
    found = [f for f, r in zip(FACTORS, rows) if factor_score(r, f) > limits[f]]
    assert len(found) >= 7, (found, {f: (round(factor_score(r, f), 3), limits[f]) for f, r in zip(FACTORS, rows)})


@pytest.mark.slow
def test_a_random_set_of_K_finds_at_most_one_factor(phantom):
    G, zreg, couplings, S = phantom
    K = 32
    limits = chance_limits(S, FACTORS, K)
    A = torch.randn(32, K, generator=torch.Generator().manual_seed(424_242))
    rows = score_directions(G, A / A.norm(dim=0), zreg=zreg, couplings=couplings)
    found = [f for f in FACTORS if max(factor_score(r, f) for r in rows) > limits[f]]
    assert len(found) <= 1, found


@pytest.mark.slow
def test_without_couplings_breast_tissue_reads_as_entangled(phantom):
    """The defect the couplings mend: the breast axis moves height, size and y physically."""
    G, zreg, couplings, _ = phantom
    M = G.true_directions()[:, [FACTORS.index("breast")]]
    plain = score_directions(G, M, zreg=zreg)[0]
    coupled = score_directions(G, M, zreg=zreg, couplings=couplings)[0]
    assert coupled["label"] == "breast" and coupled["purity"] > plain["purity"] + 0.2
    assert couplings["breast"]["outline"] > 0.2 and couplings["breast"]["y"] < 0  # the body grows, its centre moves up


def test_couplings_credit_only_changes_of_the_measured_sign():
    row = {"rho": {a: 0.0 for a in ("width", "height", "size", "rotation", "y", "thickness", "breast", "z", "intensity")},
           "effect": {a: 0.0 for a in ("width", "height", "size", "rotation", "y", "thickness", "breast", "z", "intensity")}}
    row["rho"].update(breast=0.9, height=0.9, y=-0.9)
    row["effect"].update(breast=1.0, height=0.5, y=0.4)
    couplings = {"breast": {"outline": 0.6, "y": -0.5}}
    same = json.loads(json.dumps(row))
    _label(same, {"width": 0.0, "height": 0.1}, couplings)
    assert same["label"] == "breast" and same["purity"] == pytest.approx(1.0, abs=1e-6)
    flipped = json.loads(json.dumps(row))
    flipped["rho"]["y"] = 0.9  # the centre moves the other way: not what breast tissue does
    _label(flipped, {"width": 0.0, "height": 0.1}, couplings)
    assert flipped["purity"] == pytest.approx((0.9 + 0.45) / (0.9 + 0.45 + 0.36), abs=1e-3)
    plain = json.loads(json.dumps(row))
    _label(plain, {"width": 0.0, "height": 0.1}, None)
    assert plain["purity"] == pytest.approx(0.9 / (0.9 + 0.45 + 0.36), abs=1e-3)


def test_tracking_is_read_within_latents_so_a_latent_that_does_not_move_has_no_say():
    eps = np.linspace(-4, 4, 5)
    v = np.zeros((5, 4))
    v[:, 0], v[:, 1] = eps * 3.0, eps * 0.5  # two latents move monotonically, by very different amounts
    assert tracking(eps, v) == pytest.approx(1.0)
    v[:, 2] = [0.1, -0.1, 0.0, 0.1, -0.1]  # jitter in a third: a small weight, a small dent
    assert RHO_MIN < tracking(eps, v) < 1.0
    assert tracking(eps, np.zeros((5, 3))) == 0.0


def test_couplings_from_a_file_are_checked():
    assert as_couplings({"breast": {"outline": 0.5, "y": -0.2}}) == {"breast": {"outline": 0.5, "y": -0.2}}
    for bad in ([], {"nose": {}}, {"breast": {"outline": float("nan")}}, {"breast": {"ears": 1.0}}):
        with pytest.raises(ValueError):
            as_couplings(bad)


def test_a_supervised_direction_recovers_planted_linear_factors_within_15_degrees():
    """A phantom generator of another seed plants its factors along other axes: the supervised fit
    of the rotation, y and z attributes on z must point along them."""
    G = PhantomGenerator(16, 32, seed=3).eval()
    with torch.no_grad():
        z = torch.randn(384, 16, generator=torch.Generator().manual_seed(1))
        images, zf = G(z)[:, 0].numpy(), G.factors(z)["z"].numpy()
    A, names = supervised(G, ZRegressor.fit(images, zf), n=384)
    assert names == list(FACTORS)
    M = G.true_directions().numpy()
    for f in ("rotation", "y", "z"):
        i = FACTORS.index(f)
        cos = abs(float(M[:, i] @ A[:, names.index(f)].numpy()))
        assert cos >= np.cos(np.radians(15)), (f, cos)
    A2, names2 = supervised(G, None, n=128)  # no z regressor: z is never measured, so it gets no direction
    assert "z" not in names2 and A2.shape == (16, len(names2))


@pytest.mark.slow
def test_control_records_hold_a_direction_per_factor_to_every_grid_K(tmp_path, phantom):
    G, zreg, couplings, S = phantom
    seen = []

    def chance(kind, K):
        seen.append(K)
        return chance_limits(S, FACTORS, K)

    recs = closed_form_records({"phantom": G}, {"phantom": "d1"}, 0, zreg, tmp_path, chance, couplings=couplings,
                               control_Ks=[32, 100])
    by = {r.deformator: r for r in recs}
    assert set(by) == {"axes", "supervised"}  # K = 0: no closed-form methods; both controls on a truth generator
    for r in recs:
        assert r.K == len(FACTORS) and r.rca is None and set(r.found_by_K) == {"32", "100"}
        assert set(r.found_by_K["100"]) == {f for f, v in r.factors.items() if v["found"]}  # judged at the largest K
        assert len(json.loads((tmp_path / r.directions).parent.joinpath("labels.json").read_text())["directions"]) == 8
    assert len(by["axes"].found_by_K["32"]) >= 7 and by["axes"].truth["axes_recovered"] == len(FACTORS)
    assert 32 in seen and 100 in seen
    assert true_axes(torch.nn.Linear(2, 2), "gan") is None  # a trained kind has no true axes


def _without(G, factor: str):
    """G with one factor's axis projected out of z: it never varies that factor."""
    m = G.true_directions()[:, FACTORS.index(factor)]

    class Flat(torch.nn.Module):
        latent_dim = G.latent_dim

        def forward(self, z):
            return G(z - (z @ m)[:, None] * m[None])

    return Flat()


@pytest.mark.slow
def test_a_generator_that_never_varies_a_factor_gets_not_generated_for_it(phantom):
    G, zreg, _, _ = phantom
    with torch.no_grad():
        data = G(torch.randn(96, 32, generator=torch.Generator().manual_seed(9)))
    c = coverage(_without(G, "rotation"), data[:64], data[64:], zreg, n=96)
    f = c["factors"]
    assert f["rotation"]["spread_ratio"] < SPREAD_MIN and f["rotation"]["generated"] is False
    assert all(f[n]["generated"] for n in ("width", "height", "y", "z"))
    assert c["generated"] == sum(v["generated"] for v in f.values())
    from raylatent.tune.stage import mark_generated

    rec = TrialRecord(trial="t", generator="phantom", reconstructor="lenet", deformator="proj", K=32, seed=0,
                      iterations=1, rca=0.5, ls=0.1, shift_mae=0.4, gamma=0.25, wall_s=1.0, node_id=None,
                      directions="x", factors={"rotation": {"found": False}, "y": {"found": True}})
    mark_generated([rec], {"phantom": c})
    assert rec.factors["rotation"]["generated"] is False and rec.factors["y"]["generated"] is True


@pytest.mark.slow
def test_the_coverage_of_a_generator_that_copies_its_training_slices_flags_memorisation(phantom):
    G, _, _, _ = phantom
    with torch.no_grad():
        data = G(torch.randn(160, 32, generator=torch.Generator().manual_seed(11)))[:, 0].numpy()
        fresh = G(torch.randn(64, 32, generator=torch.Generator().manual_seed(12)))[:, 0].numpy()
    train, test = data[:120], data[120:]
    copies = train[np.random.default_rng(0).integers(0, len(train), 64)]
    assert memorisation(copies, train, test)["memorised"] and memorisation(copies, train, test)["median_ratio"] < 0.05
    honest = memorisation(fresh, train, test)
    assert not honest["memorised"] and honest["median_ratio"] > MEMORISED
