"""WarpedGANSpace's RBF paths: a shift of |eps| along a curve that depends on z, learned by the
discovery step, exported and rebuilt exactly, and set from the grid's deformator entry."""
import numpy as np
import pytest
import torch

from raylatent.config import ConfigError, DirectionsConfig
from raylatent.discovery.export import load_shift_arrays, save_directions, traversal
from raylatent.discovery.methods import make_directions
from raylatent.discovery.step import Discovery, DiscoveryConfig
from raylatent.models.directions import rebuild
from raylatent.models.warped import WarpedDirections, rbf_gradient
from toy_generators import BlobGenerator


def test_small_shifts_move_exactly_eps_along_a_path_that_bends_with_z():
    A = make_directions("warped", 16, 6, seed=0, settings={"gamma": 0.2})
    z = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
    k = torch.arange(64) % 6
    eps = torch.linspace(-0.5, 0.5, 64)  # every |eps| within one path step: the authors' own shift
    with torch.no_grad():
        s = A(z, k, eps)
        torch.testing.assert_close(s.norm(dim=1), eps.abs(), atol=1e-5, rtol=1e-5)
        # its direction differs from latent to latent (a linear set's is the same column everywhere)
        d = A(z, torch.zeros(64, dtype=torch.long), torch.full((64,), 0.1))
        cos = torch.nn.functional.cosine_similarity(d[:32], d[32:])
        assert float(cos.min()) < 0.9
        lin = make_directions("unit", 16, 6, seed=0)
        dl = lin(z, torch.zeros(64, dtype=torch.long), torch.full((64,), 0.1))
        torch.testing.assert_close(torch.nn.functional.cosine_similarity(dl[:32], dl[32:]), torch.ones(32))
        # a long shift is the path integrated in path_step steps: it bends, so its chord is shorter than |eps|
        long = A(z[:8], k[:8], torch.full((8,), 6.0))
        assert float(long.norm(dim=1).max()) <= 6.0 + 1e-4 and float(long.norm(dim=1).min()) < 5.99


def test_the_shift_follows_the_rbf_gradient_and_is_independent_of_its_batch():
    A = make_directions("warped", 8, 3, seed=2, settings={"dipoles": 3})
    z, k = torch.randn(4, 8), torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        g = rbf_gradient(z, A.support[k], A.alphas[k], A.log_gamma.exp()[k])
        torch.testing.assert_close(A(z, k, torch.full((4,), 0.2)), 0.2 * g / g.norm(dim=1, keepdim=True))
        both = A(z, k, torch.tensor([0.2, 5.0, -3.0, 0.4]))
        alone = torch.cat([A(z[i:i + 1], k[i:i + 1], torch.tensor([e])) for i, e in enumerate([0.2, 5.0, -3.0, 0.4])])
        torch.testing.assert_close(both, alone)
    assert A.support.shape == (3, 6, 8) and A.alphas.sum() == 0  # antipodal pairs, weighted +1 / -1
    with pytest.raises(ValueError, match="no setting"):
        make_directions("warped", 8, 3, settings={"width": 2})


def test_learned_exported_and_rebuilt_as_the_same_path(tmp_path):
    torch.manual_seed(0)
    G = BlobGenerator(8, 32).eval()
    disc = Discovery(G, DiscoveryConfig(K=4, deformator="warped", reconstructor="lenet", recon_width=0.5, batch=8,
                                        lr_directions=0.05, settings={"dipoles": 2, "gamma": 0.3, "learn_gamma": True,
                                                                      "path_step": 0.5}))
    assert isinstance(disc.A, WarpedDirections)
    before = {n: p.detach().clone() for n, p in disc.A.named_parameters()}
    for _ in range(3):
        disc.step()
    assert all(not torch.equal(p, before[n]) for n, p in disc.A.named_parameters())  # support and gamma learn
    path = save_directions(tmp_path / "d.npz", disc.A.arrays(), disc.cfg.to_dict())
    arrays = load_shift_arrays(path)
    assert str(arrays["model"]) == "warped" and arrays["A"].shape == (8, 4)
    z = torch.randn(3, 8)
    with torch.no_grad():
        want = G(z + disc.A(z, torch.full((3,), 2), torch.full((3,), 1.7)))
        torch.testing.assert_close(traversal(G, arrays, z, [1.7], [2])[0, 0], want, rtol=1e-5, atol=1e-5)
        eps = torch.tensor([-4.0, 0.3, 2.5])
        torch.testing.assert_close(rebuild(arrays)(z, torch.tensor([0, 3, 1]), eps),
                                   disc.A(z, torch.tensor([0, 3, 1]), eps))
    assert np.allclose(np.linalg.norm(arrays["A"], axis=0), 1.0, atol=1e-5)


def test_its_settings_are_the_grids_deformator_entry():
    d = DirectionsConfig(deformators=({"deformator": "warped", "K": 16, "dipoles": 4, "gamma": 0.1},
                                      {"deformator": "warped", "K": 16}))
    assert [name for name, _, _ in d.cells()] == ["warped+dipoles4+gamma0.1", "warped"]
    assert d.settings_for("warped+dipoles4+gamma0.1", 16) == {"hessian": 0.0, "dipoles": 4, "gamma": 0.1,
                                                               "learn_gamma": False, "path_step": 0.5}
    assert d.settings_for("warped", 16)["dipoles"] == 2
    for bad, why in (({"dipoles": 0}, "dipoles 0"), ({"gamma": -1.0}, "gamma"), ({"path_step": 0.0}, "path_step"),
                     ({"learn_gamma": 1}, "learn_gamma")):
        with pytest.raises(ConfigError, match=why):
            DirectionsConfig(deformators=({"deformator": "warped", "K": 16, **bad},))


def test_the_hessian_penalty_is_smallest_along_the_phantoms_true_axes():
    """The property a disentangling criterion relies on: on the phantom generator the penalty along
    its eight true axes is below its value along any of eight random rotations of them inside the
    factor subspace (the interacting pairs, measured: y-z, rotation-z, height-y)."""
    from raylatent.discovery.criteria import hessian_penalty
    from raylatent.models.directions import FixedDirections
    from raylatent.models.phantom_gen import PhantomGenerator

    G = PhantomGenerator(16, 32).eval()
    z = torch.randn(48, 16, generator=torch.Generator().manual_seed(0))

    def penalty(A):
        with torch.no_grad():
            return float(hessian_penalty(G, FixedDirections(A), z, torch.Generator().manual_seed(1), samples=6))

    axes = penalty(G.M)
    rotated = [penalty(G.M @ torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(s)))[0])
               for s in range(8)]
    assert axes < min(rotated), (axes, rotated)
    assert penalty(G.M[:, :1]) < 1e-6 * axes  # one direction has no other to interact with


def test_a_grid_entry_adds_the_penalty_as_its_own_cell_and_it_reaches_the_directions():
    from raylatent.report.tables import columns

    d = DirectionsConfig(generators=("gan",), reconstructors=("lenet",), random_baseline=False,
                         deformators=({"deformator": "proj", "K": 8}, {"deformator": "proj", "K": 8, "hessian": 0.5}),
                         iterations=({"deformator": "proj", "steps": 7},))
    trials = d.trials()
    assert [t.name for t in trials] == ["gan-lenet-proj-K8-s0", "gan-lenet-proj+hessian0.5-K8-s0"]
    assert [t.steps for t in trials] == [7, 7]  # a rule for proj covers its variants
    cfgs = [DiscoveryConfig.for_trial(d, t) for t in trials]
    assert [c.settings["hessian"] for c in cfgs] == [0.0, 0.5] and "settings" not in cfgs[0].to_dict()
    G = BlobGenerator(8, 32).eval()
    runs = [Discovery(G, DiscoveryConfig(**{**c.to_dict(), "batch": 8, "recon_width": 0.5,
                                            "settings": c.settings})) for c in cfgs]
    metrics = [r.step() for r in runs]
    assert "hessian" not in metrics[0] and metrics[1]["hessian"] > 0
    # same seed, same draws for the V&B loss: the directions differ only through the penalty's gradient
    assert not torch.allclose(runs[0].A.linear.weight, runs[1].A.linear.weight)
    recs = [{"generator": "gan", "reconstructor": "lenet", "deformator": t.deformator, "K": 8, "rca": 0.5, "ls": 0.1}
            for t in trials]
    assert columns(recs)[-1] == ("proj+hessian0.5", 8, "Unit Length (the authors' projective deformator) [hessian0.5] K=8")
