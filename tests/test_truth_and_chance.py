"""Scores against the true directions, and verdicts held to what random directions reach."""
import numpy as np
import pytest
import torch

from raylatent.interpret.chance import calibrate, factor_score, pool_scores, thresholds
from raylatent.interpret.labels import FACTORS, factor_recovery, score_directions
from raylatent.interpret.truth import RECOVERED, truth_scores

NAMES = tuple(f"f{i}" for i in range(4))


def _orthonormal(d, F, seed=0):
    return torch.linalg.qr(torch.randn(d, F, generator=torch.Generator().manual_seed(seed))).Q.numpy()


def test_true_axes_found_in_any_order_and_sign_random_ones_not():
    d, F = 12, 4
    M = _orthonormal(d, F)
    rng = np.random.default_rng(1)
    A = np.concatenate([-M[:, [2]], M[:, [0]], rng.normal(size=(d, 3)), 3.0 * M[:, [3]], M[:, [1]]], axis=1)
    t = truth_scores(A, M, NAMES)
    assert t["axes_recovered"] == F
    assert t["matched_direction"] == {"f0": 1, "f1": 6, "f2": 0, "f3": 5}
    assert all(abs(v - 1.0) < 1e-6 for v in t["matched_cos"].values())
    R = rng.normal(size=(d, 8))
    r = truth_scores(R, M, NAMES)
    assert r["axes_recovered"] == 0 and max(r["best_cos"].values()) < RECOVERED
    # a random direction has F/d of its squared length in the factor span, on average
    assert abs(truth_scores(rng.normal(size=(d, 400)), M, NAMES)["in_subspace_mean"] - F / d) < 0.05


def test_one_direction_cannot_count_for_two_factors():
    M = np.eye(3)[:, :2]
    A = (M[:, [0]] + M[:, [1]]) / np.sqrt(2)  # halfway between both: best |cos| 0.71 for each
    t = truth_scores(np.concatenate([A, np.eye(3)[:, [2]]], axis=1), M, ("a", "b"))
    assert t["best_cos"] == {"a": pytest.approx(0.7071, abs=1e-4), "b": pytest.approx(0.7071, abs=1e-4)}
    assert sorted(t["matched_cos"].values()) == [0.0, pytest.approx(0.7071, abs=1e-4)]


def _row(label, rho, purity):
    return {"label": label, "rho": {f: (rho if f == label else 0.1) for f in NAMES}, "purity": purity}


def test_the_threshold_is_the_95th_percentile_of_the_best_of_K():
    rng = np.random.default_rng(0)
    pool = [_row("f0", float(s), 1.0) if s > 0.6 else _row("none", 0.0, 0.0) for s in rng.uniform(0, 1, 400)]
    lim = thresholds(pool, NAMES, K=1, draws=4000)
    # K = 1: the score of one random direction, |rho| ~ U(0.6, 1) for 40% of them, else 0
    assert lim["f0"] == pytest.approx(np.quantile([factor_score(r, "f0") for r in pool], 0.95), abs=0.02)
    assert thresholds(pool, NAMES, K=50)["f0"] > lim["f0"]  # the best of more directions reaches further
    assert lim["f1"] == 0.0  # no random direction is ever labelled f1
    found = {f: {"direction": 0, "rho": 0.9, "purity": 1.0, "found": True} for f in ("f0", "f1")}
    got = calibrate(found, [_row("f0", 0.9, 1.0), _row("f1", 0.7, 1.0)], {"f0": 0.95, "f1": 0.0})
    assert got["f0"]["found"] is False and got["f1"]["found"] is True and got["f0"]["chance"] == 0.95


@pytest.fixture(scope="module")
def phantom():
    from raylatent.models.phantom_gen import PhantomGenerator

    torch.manual_seed(0)
    return PhantomGenerator(latent_dim=16, size=32, seed=3)


def test_on_the_phantom_its_true_axes_beat_chance_and_random_directions_do_not(phantom):
    """The calibration end to end on a generator whose truth is known: the eight true axes are
    found (bar the factors the attributes cannot see at 32²), K random directions are not."""
    K = len(FACTORS)
    limits = thresholds(pool_scores(phantom, phantom.latent_dim, 48), FACTORS, K)

    def found(A):
        scores = score_directions(phantom, torch.as_tensor(A, dtype=torch.float32))
        return sum(f["found"] for f in calibrate(factor_recovery(scores), scores, limits).values())

    truth = found(phantom.true_directions())
    R = torch.randn(phantom.latent_dim, K, generator=torch.Generator().manual_seed(99))
    rand = found(R / R.norm(dim=0))
    assert rand <= 1 and truth >= rand + 3, (truth, rand, limits)
