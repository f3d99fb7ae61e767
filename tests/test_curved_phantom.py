"""The curved ground-truth generator: the phantom's factors through a fixed invertible map, whose
true paths (curves) and their tangents are known, and the truth scores that read any direction
set (linear or curved) against those tangents."""
import numpy as np
import torch

from raylatent.interpret.truth import RECOVERED, path_truth_scores, score_truth, truth_scores
from raylatent.models import kind_of
from raylatent.models.curved_phantom import BEND, CouplingMap, CurvedPhantomGenerator, TruePaths
from raylatent.models.directions import FixedDirections, rebuild
from raylatent.models.phantom_gen import FACTORS, PhantomGenerator


def _z(n=32, d=16, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_the_map_is_invertible_and_its_tangents_are_the_paths_derivatives():
    T = CouplingMap(16, seed=3)
    z = _z()
    torch.testing.assert_close(T.inverse(T(z)), z, atol=1e-5, rtol=0)
    G = CurvedPhantomGenerator(16, 32, seed=3)
    P = G.true_paths()
    tangents = G.true_tangents(z)
    h = 1e-3
    for i in range(len(FACTORS)):
        with torch.no_grad():
            fd = (P(z, torch.full((32,), i), torch.full((32,), h)) - P(z, torch.full((32,), i), torch.full((32,), -h))) / (2 * h)
        cos = torch.nn.functional.cosine_similarity(fd, tangents[:, :, i])
        assert float(cos.min()) > 0.999, FACTORS[i]


def test_a_true_path_moves_its_factor_only_and_curves():
    G = CurvedPhantomGenerator(16, 32)
    P = G.true_paths()
    z = _z(8)
    with torch.no_grad():
        before = G.factors(z)
        for i, name in enumerate(FACTORS):
            after = G.factors(z + P(z, torch.full((8,), i), torch.full((8,), 1.5)))
            moved = {k: float((after[k] - before[k]).abs().max()) for k in FACTORS}
            assert moved[name] > 1e-3 and all(v < 1e-3 for k, v in moved.items() if k != name), (name, moved)
    # the tangents turn from latent to latent (the linear phantom's are M everywhere)
    t = G.true_tangents(_z(64))
    spread = (t * t.mean(0, keepdim=True)).sum(1).abs() / t.mean(0).norm(dim=0)
    assert float(spread.min()) < 0.9
    flat = CurvedPhantomGenerator(16, 32, bend=0.0)  # T a permutation: straight paths, the same tangents everywhere
    t0 = flat.true_tangents(_z(4))
    torch.testing.assert_close(t0, t0[:1].expand(4, -1, -1), atol=1e-5, rtol=0)


def test_true_paths_rebuild_from_their_export_and_score_perfectly():
    G = CurvedPhantomGenerator(16, 32, seed=1)
    P = G.true_paths()
    arrays = {k: (v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)) for k, v in P.arrays().items()}
    Q = rebuild(arrays)
    z, k, eps = _z(6), torch.tensor([0, 1, 2, 5, 6, 7]), torch.tensor([-2.0, -1.0, 0.5, 1.0, 1.5, 2.0])
    torch.testing.assert_close(Q(z, k, eps), P(z, k, eps))
    assert isinstance(Q, TruePaths) and (Q.seed, Q.bend) == (1, BEND)
    truth = kind_of("curved").truth(G)
    perfect = score_truth(P, truth)
    assert perfect["axes_recovered"] == len(FACTORS) and min(perfect["matched_cos"].values()) > 0.999
    # the best linear stand-in (each path's direction at the origin) does not reach RECOVERED on average
    linear = score_truth(FixedDirections(P.matrix()), truth)
    assert linear["axes_recovered"] < len(FACTORS) and np.mean(list(linear["matched_cos"].values())) < RECOVERED


def test_path_scores_equal_the_axis_scores_where_the_truth_is_straight():
    M = PhantomGenerator(16, 32).M.numpy()
    A = np.linalg.qr(np.random.default_rng(0).normal(size=(16, 10)))[0]
    A[:, :3] = M[:, :3] + 0.1 * A[:, :3]
    B = 5
    want = truth_scores(A, M, FACTORS)
    got = path_truth_scores(np.repeat(A[None] / np.linalg.norm(A, axis=0), B, 0), np.repeat(M[None], B, 0), FACTORS)
    assert got == want


def test_registered_as_an_untrained_truth_generator_with_its_paths_as_the_axes_control():
    from raylatent.discovery.controls import true_axes

    k = kind_of("curved")
    assert (k.trainable, k.training, k.settings) == (False, None, None)
    G = k.build(16, 32, 0)
    paths, names = true_axes(G, "curved")
    assert isinstance(paths, TruePaths) and names == list(FACTORS)
    M, names = true_axes(PhantomGenerator(16, 32), "phantom")
    assert M.shape == (16, len(FACTORS))


def test_the_report_ranks_methods_on_ground_truth_and_reads_them():
    from raylatent.report.truth import methods_on_truth

    def rec(gen, defo, seed, cos, axes, span, found):
        return {"trial": f"{gen}-lenet-{defo}-K32-s{seed}", "generator": gen, "deformator": defo, "K": 32,
                "factors_found": found, "truth": {"matched_cos": {f: cos for f in FACTORS}, "axes_recovered": axes,
                                                  "in_subspace_mean": span}}

    records = [rec("phantom", "proj", s, 0.45 + 0.01 * s, 0, 0.97, 1) for s in range(3)] + \
        [rec("phantom", "proj+hessian0.005", s, 0.93, 7 + (s == 2), 0.98, 5) for s in range(3)] + \
        [rec("curved", "warped", 0, 0.6, 2, 0.5, 2), {"trial": "gan-lenet-proj-K32-s0", "generator": "gan"}]
    md = "\n".join(methods_on_truth(records))
    assert md.count("### ") == 2 and "### gan" not in md  # one table per truth generator
    phantom = md.split("### phantom")[1].splitlines()
    rows = [ln for ln in phantom if ln.startswith("| Unit")]
    assert "hessian0.005" in rows[0] and "aligns with the factors" in rows[0]  # best first
    assert "0.46 (0.45–0.47)" in rows[1] and "finds the factors' subspace, not their axes" in rows[1]
    assert "7 (7–8)" in rows[0] and "| 3 " in rows[0]
    curved = md.split("### curved")[1].splitlines()
    assert any("WarpedGANSpace" in ln and "aligns with 2 of the factors" in ln for ln in curved)  # some axes, not 6
    assert methods_on_truth([{"trial": "x", "generator": "gan"}]) == []
