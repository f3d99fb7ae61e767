"""The discovery step, its runner and evaluation, on tiny generators (CPU, seconds)."""
import numpy as np
import pytest
import torch

from raylatent.discovery.evaluate import evaluate
from raylatent.discovery.export import load_directions, load_shift_arrays, save_directions, traversal
from raylatent.discovery.runner import load_checkpoint, run
from raylatent.discovery.step import (Discovery, DiscoveryConfig, discovery_loss, reference_step,
                                      sample_shifts)
from raylatent.models import DCGANGenerator
from toy_generators import BlobGenerator


def test_shift_sampling_matches_the_authors_distribution():
    cfg = DiscoveryConfig(K=10)
    k, eps = sample_shifts(20000, 10, cfg, torch.Generator().manual_seed(0))
    assert k.min() == 0 and k.max() == 9
    assert eps.abs().min() >= 0.5 and eps.abs().max() <= 6.0
    assert abs(float((eps > 0).float().mean()) - 0.5) < 0.02
    assert float((eps.abs() == 0.5).float().mean()) == pytest.approx(0.5 / 6, abs=0.01)


@pytest.fixture(scope="module")
def toy_run():
    torch.manual_seed(0)
    G = BlobGenerator(latent_dim=8, size=32)  # the authors' unpadded LeNet needs 32^2
    cfg = DiscoveryConfig(K=4, deformator="unit", batch=32, lr=1e-3, lr_directions=1e-2, seed=0)
    disc = Discovery(G, cfg)
    init_mass = (disc.A.matrix()[:4] ** 2).sum(0).detach()
    history = run(disc, 600, eval_every=100, eval_n=512)
    return disc, history, init_mass


@pytest.mark.slow
def test_rca_rises_far_above_chance(toy_run):
    disc, history, _ = toy_run
    assert history[0]["step"] == 100 and history[-1]["step"] == 600
    assert history[-1]["rca"] >= 0.85  # chance is 0.25
    assert history[-1]["ls"] < history[0]["ls"]


def test_columns_move_into_the_true_factor_subspace(toy_run):
    disc, _, init_mass = toy_run
    mass = (disc.A.matrix()[:4] ** 2).sum(0).detach()  # share of each column on active dims
    assert init_mass.mean() < 0.7
    assert int((mass > 0.95).sum()) >= 3 and mass.mean() > 0.85


def test_generator_is_frozen_and_untouched(toy_run):
    disc, _, _ = toy_run
    assert not disc.G.training
    assert all(not p.requires_grad for p in disc.G.parameters())
    assert float(disc.G.dummy) == 0.0


def test_fast_and_reference_steps_compute_the_same_loss():
    G = DCGANGenerator(16, 32, 8)
    cfg = DiscoveryConfig(K=6, batch=8, deformator="unit", reconstructor="lenet", recon_width=0.5)
    disc = Discovery(G, cfg)
    z = torch.randn(8, 16)
    k, eps = sample_shifts(8, 6, cfg, torch.Generator().manual_seed(3))
    fast, *_ = discovery_loss(disc.G, disc.A, disc.R, z, k, eps, cfg.gamma)
    for p in G.parameters():
        p.requires_grad_(True)  # the reference leaves G trainable, as commonly written
    opt = torch.optim.SGD(list(disc.R.parameters()) + list(disc.A.parameters()), lr=0.0)
    ref = reference_step(G, disc.A, disc.R, opt, z, k, eps, cfg.gamma)
    assert fast.item() == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("kind", ["unit", "ortho", "proj"])
def test_resume_is_bit_identical(tmp_path, kind):
    def fresh():
        torch.manual_seed(0)  # the generator comes from its own stage: the same weights each time
        return Discovery(DCGANGenerator(8, 32, 4), DiscoveryConfig(
            K=8, deformator=kind, batch=8, recon_width=0.5, lr=1e-3, seed=7))

    straight = run(fresh(), 6, eval_every=3, eval_n=32)
    a = fresh()
    run(a, 3, eval_every=3, eval_n=32, checkpoint_dir=tmp_path, checkpoint_every=3)
    b = fresh()
    assert load_checkpoint(b, tmp_path) and b.step_count == 3
    resumed = run(b, 6, eval_every=3, eval_n=32)
    keys = ("loss", "rca", "ls", "train_rca")
    assert [resumed[-1][k] for k in keys] == [straight[-1][k] for k in keys]


def test_evaluation_is_held_out_and_leaves_state_alone():
    disc = Discovery(DCGANGenerator(8, 32, 4), DiscoveryConfig(K=8, batch=8, recon_width=0.5))
    disc.step()
    before = {k: v.clone() for k, v in disc.R.state_dict().items()}
    m1, m2 = evaluate(disc, n=64), evaluate(disc, n=64)
    assert m1 == m2 and 0 <= m1["rca"] <= 1 and m1["ls"] > 0
    # Ls on the paper's scale: the shift term as it enters the loss (gamma-weighted), as the authors logged it
    assert m1["ls"] == pytest.approx(disc.cfg.gamma * m1["shift_mae"]) and disc.cfg.gamma == 0.25
    for k, v in disc.R.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert evaluate(disc, n=64, seed=1) != m1
    assert 0 <= evaluate(disc, n=17)["rca"] <= 1  # 8 + 8 + 1 would hand BatchNorm a batch of one


def test_export_round_trip_and_traversal(tmp_path):
    G = DCGANGenerator(8, 32, 4).eval()
    disc = Discovery(G, DiscoveryConfig(K=5, batch=4, recon_width=0.5))
    path = save_directions(tmp_path / "dirs.npz", disc.A.matrix(), disc.cfg.to_dict())
    A, cfg = load_directions(path)
    assert A.shape == (8, 5) and cfg["K"] == 5
    np.testing.assert_allclose(np.linalg.norm(A, axis=0), 1.0, rtol=1e-5)
    z = torch.randn(2, 8)
    imgs = traversal(G, A, z, shifts=[-3, 0, 3], directions=[0, 4])
    assert imgs.shape == (2, 3, 2, 1, 32, 32)
    torch.testing.assert_close(imgs[0, 1], imgs[1, 1])  # zero shift is the original
    torch.testing.assert_close(imgs[1, 2], G(z + 3 * torch.as_tensor(A[:, 4])), rtol=1e-5, atol=1e-5)


def test_exported_proj_directions_sweep_the_path_the_trial_learned(tmp_path):
    """The authors' proj shift bends with eps through its bias: an export must carry W and b, and
    the report's traversal must follow that path, not the straight column."""
    torch.manual_seed(0)
    G = DCGANGenerator(8, 32, 4).eval()
    disc = Discovery(G, DiscoveryConfig(K=5, batch=4, deformator="proj", recon_width=0.5))
    path = save_directions(tmp_path / "dirs.npz", disc.A.arrays(), disc.cfg.to_dict())
    arrays = load_shift_arrays(path)
    assert set(arrays) == {"A", "W", "b", "model"} and load_directions(path)[0].shape == (8, 5)
    z = torch.randn(2, 8)
    imgs = traversal(G, arrays, z, shifts=[-1.5, 0, 2.5], directions=[3])
    for j, eps in ((0, -1.5), (2, 2.5)):
        with torch.no_grad():
            want = G(z + disc.A(z, torch.tensor([3, 3]), torch.tensor([eps, eps])))
        torch.testing.assert_close(imgs[0, j], want, rtol=1e-5, atol=1e-5)
    from raylatent.models.directions import rebuild

    k, eps = torch.tensor([3]), torch.tensor([-1.5])
    with torch.no_grad():
        bent, straight = rebuild(arrays)(z[:1], k, eps), rebuild({"A": arrays["A"]})(z[:1], k, eps)
        old = {k: v for k, v in arrays.items() if k != "model"}  # an export written before sets named themselves
        torch.testing.assert_close(rebuild(old)(z[:1], k, eps), bent)
    assert float((bent - straight).norm()) > 0.1  # the bias matters at small shifts


def test_fig8_direction_comes_from_the_labels_without_new_measurement():
    """Fig 8's direction: the z label when it beat chance; else the direction the z regressor
    scored highest (from the labels, G never called); a configured index wins over both."""
    from raylatent.discovery.renders import z_direction

    A = {"A": np.eye(4, dtype=np.float32)}
    found = {"factors": {"z": {"direction": 2, "rho": 0.9, "purity": 0.8, "found": True}}}
    below = {"factors": {"z": {"direction": 3, "rho": -0.61, "purity": 0.4, "found": False}}}
    assert z_direction(None, A, found, -1) == (2, "the automatic z-position label")
    k, how = z_direction(None, A, below, -1)
    assert k == 3 and "no direction beat chance" in how and "|rho| 0.61" in how
    assert z_direction(None, A, below, 1) == (1, "configured")


def test_fig8_falls_back_to_lung_area_when_z_was_never_measured():
    """Labels made without a z regressor carry z with rho 0 (nothing measured): that is no
    evidence for any direction, so the lung-area proxy decides, and says so."""
    from raylatent.config import GeneratorsConfig
    from raylatent.discovery.renders import z_direction
    from raylatent.models import as_generator, make_generator_from

    G = as_generator(make_generator_from("phantom", GeneratorsConfig(kinds=("phantom",), size=32))).eval()
    A = {"A": np.eye(G.latent_dim, dtype=np.float32)[:, :3]}
    unmeasured = {"factors": {"z": {"direction": 0, "rho": 0.0, "purity": 0.0, "found": False}}}
    k, how = z_direction(G, A, unmeasured, -1)
    assert 0 <= k < 3 and how.startswith("no z label: largest consistent lung-area change")
