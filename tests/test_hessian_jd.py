"""The Hessian joint diagonalisation (a closed-form method) and the identifiability check of a
truth generator: what each claims, on generators whose answer is known."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from raylatent.data.factors import FACTORS
from raylatent.discovery.hessian_jd import eigen_matrices, hessian_jd, jacobian_basis, off_diagonal_share
from raylatent.discovery.methods import METHODS, method_of
from raylatent.interpret.identifiability import identifiability
from raylatent.interpret.truth import score_truth, truth_scores
from raylatent.models import make_generator


class Blocks(nn.Module):
    """z (d) -> u = R^T z (F factors, R hidden and orthonormal) -> pixels that each add up curves of
    every factor (seeded mixing weights): each pixel's Hessian is diagonal along R's columns, while
    the factors' image-space effects overlap, so E[J^T J]'s eigenvectors are not R's columns."""

    def __init__(self, latent_dim: int = 6, factors: int = 3, seed: int = 0, hide: bool = False):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.latent_dim = latent_dim
        self.register_buffer("R", torch.linalg.qr(torch.randn(latent_dim, factors, generator=g))[0])
        self.register_buffer("w", torch.linspace(0.5, 2.0, 12))
        self.register_buffer("C", torch.randn(5, factors, generator=g) + 1.0)  # correlated: effects overlap
        self.hide = hide  # the last two factors enter only through their sum (one combination unseen)

    def forward(self, z):
        u = z @ self.R
        if self.hide:
            u = torch.cat([u[:, :-2], (u[:, -2:-1] + u[:, -1:]).expand(-1, 2)], dim=1)
        wu = u[:, :, None] * self.w
        curves = wu + 0.5 * torch.sin(2 * wu + 0.3)  # n x F x 12: a slope, so the effects overlap
        return torch.einsum("nfk,pf->npk", curves, self.C).reshape(len(z), 1, 1, -1)


def test_the_method_is_registered_as_a_closed_form_method_of_every_grid():
    assert METHODS["hessjd"].role == "closed-form"
    G = Blocks()
    A = method_of("hessjd").fit(G, 4, "toy", None)
    assert A.shape == (G.latent_dim, 3)  # K = 4 asked, but G moves in three directions only
    assert torch.allclose(A.norm(dim=0), torch.ones(3), atol=1e-5)
    assert torch.allclose(A.T @ A, torch.eye(3), atol=1e-5)


def test_joint_diagonalisation_recovers_axes_that_the_jacobian_cannot_order():
    G = Blocks()
    M = G.R.numpy()
    names = ("a", "b", "c")
    _, _, vecs, r = jacobian_basis(G, 3)
    assert r == 3  # the three directions G moves; the other three it ignores
    pca = truth_scores(vecs[:, :3].numpy(), M, names)
    jd = truth_scores(hessian_jd(G, 3).numpy(), M, names)
    assert jd["axes_recovered"] == 3 and min(jd["matched_cos"].values()) > 0.99, jd
    assert pca["axes_recovered"] < 3, pca  # the span alone is not the axes: the rotation does the work


def test_eigen_matrices_keep_every_quadratic_criterion():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4, 4))
    X = X + X.transpose(0, 2, 1)
    iu = np.triu_indices(4, 1)
    vec = np.concatenate([np.diagonal(X, axis1=1, axis2=2), X[:, iu[0], iu[1]] * 2 ** 0.5], axis=1)
    mats = eigen_matrices(vec.T @ vec, 4)
    assert len(mats) == 10  # r (r + 1) / 2: 50 matrices reduced to the operator's rank
    for s in range(3):
        V = np.linalg.qr(rng.standard_normal((4, 4)))[0]
        assert off_diagonal_share(mats, V) == pytest.approx(off_diagonal_share(X, V), rel=1e-9)


def test_on_the_phantom_it_recovers_the_factors_the_images_can_tell_apart():
    G = make_generator("phantom", 32, 0, 32).eval()
    truth = (G.true_directions(), FACTORS)
    jd = score_truth(hessian_jd(G, 32), truth)
    sefa = score_truth(method_of("sefa").fit(G, 32, "phantom", None), truth)
    assert jd["in_subspace_mean"] > 0.99  # eight directions, all inside the factors' span
    for f in ("rotation", "thickness", "breast", "z"):
        assert jd["matched_cos"][f] >= 0.95, (f, jd["matched_cos"])
    assert jd["axes_recovered"] >= 4 and sefa["axes_recovered"] == 0
    mean = lambda s: np.mean(list(s["matched_cos"].values()))  # noqa: E731
    assert mean(jd) > mean(sefa) + 0.05, (jd["matched_cos"], sefa["matched_cos"])


def test_the_phantom_hides_one_combination_of_width_height_and_size():
    G = make_generator("phantom", 32, 0, 32).eval()
    out = identifiability(G, (G.true_directions(), FACTORS))
    assert out["rank_max"] == len(FACTORS) - 1, out  # never all eight
    hidden = out["hidden_share"]
    assert min(hidden[f] for f in ("width", "height", "size")) > 0.1, hidden
    assert max(hidden[f] for f in ("rotation", "y", "thickness")) == 0.0, hidden


def test_a_generator_that_shows_every_factor_has_full_rank_and_one_that_sums_two_does_not():
    for hide, rank in ((False, 3), (True, 2)):
        G = Blocks(hide=hide)
        out = identifiability(G, (G.R, ("a", "b", "c")))
        assert out["rank_min"] == out["rank_max"] == rank, out
        assert (out["hidden_share"]["c"] > 0.4) == hide, out
        assert out["hidden_share"]["a"] == 0.0, out


def test_the_dry_run_is_told_how_many_images_it_draws():
    from raylatent.discovery.hessian_jd import images_drawn

    class Counting(Blocks):
        drawn = 0

        def forward(self, z):
            Counting.drawn += len(z)
            return super().forward(z)

    G = Counting()
    hessian_jd(G, 3)
    assert Counting.drawn == images_drawn(G.latent_dim, 3) == method_of("hessjd").fit_images(G.latent_dim, 3)


def test_the_dry_run_bound_on_its_size_is_what_it_returns_on_a_generator_of_full_rank():
    G = Blocks(latent_dim=6, factors=6)
    for K in (4, 6, 9):
        assert hessian_jd(G, K).shape[1] == method_of("hessjd").most_directions(G.latent_dim, K) == min(K, 6)
