"""Generators, reconstructors and direction models: shapes and invariants."""
import pytest
import torch

from raylatent.models import VAE, DCGANDiscriminator, DCGANGenerator, as_generator, make_generator
from raylatent.models.directions import make_directions
from raylatent.models.reconstructors import make_reconstructor
from raylatent.models.vae import vae_loss


@pytest.mark.parametrize("size,width", [(32, 8), (64, 4), (128, 2)])
def test_generator_and_discriminator_shapes(size, width):
    G = DCGANGenerator(32, size, width)
    x = G(torch.randn(3, 32))
    assert x.shape == (3, 1, size, size) and x.min() >= -1 and x.max() <= 1
    assert DCGANDiscriminator(size, width)(x).shape == (3,)


def test_paper_dcgan_layout_at_128():
    G = DCGANGenerator(32, 128, 128)
    first = G.net[0]
    assert isinstance(first, torch.nn.ConvTranspose2d) and first.out_channels == 16 * 128
    assert (first.kernel_size, first.stride, first.padding) == ((4, 4), (1, 1), (0, 0))
    assert isinstance(G.net[-1], torch.nn.Tanh)
    # the first layer on a 1x1 input is exactly linear in z (what SeFa relies on)
    z = torch.randn(5, 32)
    lin = (G.first_linear @ z.T).T.reshape(5, 16 * 128, 4, 4)
    torch.testing.assert_close(first(z.view(5, 32, 1, 1)), lin, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size,width", [(32, 8), (64, 4), (128, 4)])
def test_vae_shapes_and_loss(size, width):
    vae = VAE(32, size, width)
    x = torch.rand(2, 1, size, size) * 2 - 1
    recon, mu, logvar = vae(x)
    assert recon.shape == x.shape and mu.shape == logvar.shape == (2, 32)
    assert as_generator(vae)(torch.randn(4, 32)).shape == (4, 1, size, size)
    loss, parts = vae_loss(x, recon, mu, logvar, beta=0.01)
    assert loss.ndim == 0 and parts["recon_mse"] > 0
    loss.backward()


def test_make_generator_rejects_unknown():
    with pytest.raises(ValueError, match="generator 'gen'"):
        make_generator("gen", 32, 8)
    with pytest.raises(ValueError, match="power of two"):
        DCGANGenerator(32, 48, 8)


@pytest.mark.parametrize("kind,size", [("lenet", 32), ("lenet", 128), ("resnet", 32), ("resnet", 64)])
def test_reconstructor_heads(kind, size):
    R = make_reconstructor(kind, K=7, width=0.5)
    x = torch.randn(3, 1, size, size)
    logits, shift = R(x, x)
    assert logits.shape == (3, 7) and shift.shape == (3,)
    if kind == "resnet":
        assert R.features.conv1.in_channels == 2


def test_lenet_is_the_authors_shift_predictor():
    """6/16/120 channels and two-layer heads (Linear 120-84, BatchNorm, ReLU, Linear 84-K) for both
    outputs, as Voynov & Babenko's LeNetShiftPredictor at its default width."""
    R = make_reconstructor("lenet", K=7)
    convs = [m for m in R.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(2, 6), (6, 16), (16, 120)]
    for head, out in ((R.direction, 7), (R.shift, 1)):
        assert [type(m).__name__ for m in head] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
        assert (head[0].in_features, head[0].out_features, head[3].out_features) == (120, 84, out)


def test_resnet_width_one_is_torchvision_resnet18_and_narrower_is_cheaper():
    from torchvision.models import resnet18

    def n(m):
        return sum(p.numel() for p in m.parameters())

    tv = resnet18(weights=None)
    full = make_reconstructor("resnet", K=7, width=1.0)
    # torchvision's resnet18 less its 3-channel conv1 and fc, plus ours (2-channel conv1, two heads)
    expected = n(tv) - n(tv.conv1) - n(tv.fc) + 2 * 64 * 49 + (512 * 7 + 7) + (512 + 1)
    assert n(full) == expected
    quarter = make_reconstructor("resnet", K=7, width=0.25)
    assert [quarter.features.layer1[0].conv1.out_channels, quarter.features.layer4[1].conv2.out_channels] == [16, 128]
    assert n(quarter) < n(full) / 10


def _steps(A, n=20):
    opt = torch.optim.Adam(A.parameters(), lr=0.1)
    for _ in range(n):
        k = torch.randint(0, A.K, (16,))
        loss = (A(k, torch.randn(16)) @ torch.randn(A.latent_dim)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_unit_columns_stay_unit_and_shift_is_eps_times_column():
    A = make_directions("unit", 32, 100)
    _steps(A)
    M = A.matrix()
    torch.testing.assert_close(M.norm(dim=0), torch.ones(100))
    k, eps = torch.tensor([3, 99]), torch.tensor([2.5, -1.0])
    torch.testing.assert_close(A(k, eps), torch.stack([2.5 * M[:, 3], -1.0 * M[:, 99]]))


def test_ortho_stays_special_orthogonal():
    A = make_directions("ortho", 16, 16)
    _steps(A)
    M = A.matrix()
    torch.testing.assert_close(M.T @ M, torch.eye(16), atol=1e-5, rtol=0)
    assert torch.det(M).item() == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="K == latent_dim"):
        make_directions("ortho", 16, 32)


def test_proj_rescales_to_eps_and_random_is_fixed():
    P = make_directions("proj", 8, 5)
    torch.nn.init.normal_(P.linear.bias)
    out = P(torch.tensor([0, 4, 4]), torch.tensor([3.0, -0.5, 0.5]))
    torch.testing.assert_close(out.norm(dim=1), torch.tensor([3.0, 0.5, 0.5]))
    assert not torch.allclose(out[1], -out[2])  # with a bias, -eps is not the opposite direction
    R = make_directions("random", 8, 5)
    assert list(R.parameters()) == []
    torch.testing.assert_close(R.matrix().T @ R.matrix(), torch.eye(5), atol=1e-5, rtol=0)
