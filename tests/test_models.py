"""Generators, reconstructors and direction models: shapes and invariants."""
import pytest
import torch
import torch.nn.functional as F

from raylatent.models import VAE, DCGANDiscriminator, DCGANGenerator, as_generator, make_generator
from raylatent.discovery.methods import make_directions
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


def _res_block_params(cin: int, cout: int) -> int:
    """One of the authors' Res_down / Res_up blocks: conv1 3x3 cin->cout/2, BN, conv2 3x3
    cout/2->cout, BN, conv3 (skip) 3x3 cin->cout, every convolution with a bias."""
    h = cout // 2
    return (cin * h * 9 + h) + 2 * h + (h * cout * 9 + cout) + 2 * cout + (cin * cout * 9 + cout)


def test_vae_is_the_authors_network_at_paper_width():
    """Their Models/VAE.py at 128^2, ch 64, z 32, counted from its layer list: encoder blocks
    1-64-128-256-512-512 with 4x4/4 convolutions to mu and log-variance, decoder blocks
    32-1024-512-512-256-128-64-32 and a 3x3 convolution to one channel. (Instantiating their file
    gave the same totals: 9,141,056 + 20,893,041 = 30,034,097 parameters.)"""
    enc = [1, 64, 128, 256, 512, 512]
    dec = [32, 1024, 512, 512, 256, 128, 64, 32]
    n_enc = sum(_res_block_params(a, b) for a, b in zip(enc, enc[1:])) + 2 * (512 * 32 * 16 + 32)
    n_dec = sum(_res_block_params(a, b) for a, b in zip(dec, dec[1:])) + (32 * 9 + 1)
    vae = VAE(32, 128, 64)

    def n(m):
        return sum(p.numel() for p in m.parameters())

    assert (n(vae.encoder), n(vae.decoder)) == (n_enc, n_dec) == (9_141_056, 20_893_041)
    assert [(b.conv1.in_channels, b.conv2.out_channels) for b in vae.encoder.blocks] == list(zip(enc, enc[1:]))
    assert [(b.conv1.in_channels, b.conv2.out_channels) for b in vae.decoder.blocks] == list(zip(dec, dec[1:]))
    assert all(isinstance(b.pool, torch.nn.AvgPool2d) for b in vae.encoder.blocks)
    assert (vae.encoder.mu.kernel_size, vae.encoder.mu.stride) == ((4, 4), (4, 4))
    sizes = []
    hooks = [b.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1])) for b in vae.decoder.blocks]
    vae.eval().decoder(torch.zeros(1, 32))
    for h in hooks:
        h.remove()
    assert sizes == [2, 4, 8, 16, 32, 64, 128]  # seven up blocks from 1x1
    x = torch.linspace(-3, 3, 7)
    torch.testing.assert_close(F.rrelu(x), torch.where(x >= 0, x, x * (1 / 8 + 1 / 3) / 2))  # their activation


def test_vae_first_linear_is_exactly_the_first_layer():
    G = VAE(8, 32, 4).eval().decoder
    z = torch.randn(5, 8)
    lin = G.first_layer(z) - G.first_layer(torch.zeros(5, 8))
    torch.testing.assert_close(lin, (G.first_linear @ z.T).T, rtol=1e-4, atol=1e-5)


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


@pytest.mark.parametrize("size,final", [(32, 1), (128, 25)])
def test_lenet_convolutions_are_unpadded_as_the_authors(size, final):
    """5x5 convolutions without padding (Models/ShiftPredictor.py): 32 -> 28 -> 14 -> 10 -> 5 -> 1
    and 128 -> 124 -> 62 -> 58 -> 29 -> 25 before the mean pool."""
    R = make_reconstructor("lenet", K=7)
    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[-2:])))
             for m in R.features if isinstance(m, (torch.nn.Conv2d, torch.nn.MaxPool2d))]
    R.eval()(torch.zeros(2, 1, size, size), torch.zeros(2, 1, size, size))
    for h in hooks:
        h.remove()
    s1 = size - 4
    s2 = s1 // 2 - 4
    assert shapes == [(s1, s1), (s1 // 2, s1 // 2), (s2, s2), (s2 // 2, s2 // 2), (final, final)]
    assert all(c.padding == (0, 0) for c in R.features if isinstance(c, torch.nn.Conv2d))


def test_lenet_rejects_images_below_32_at_grid_load():
    from raylatent.config import ConfigError
    from raylatent.gridfile import load_grid

    with pytest.raises(ConfigError, match=r"data.size 16: the lenet reconstructor needs images of at least 32"):
        load_grid("smoke", ["data.size=16"])


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
        loss = (A(None, k, torch.randn(16)) @ torch.randn(A.latent_dim)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_unit_columns_stay_unit_and_shift_is_eps_times_column():
    A = make_directions("unit", 32, 100)
    _steps(A)
    M = A.matrix()
    torch.testing.assert_close(M.norm(dim=0), torch.ones(100))
    k, eps = torch.tensor([3, 99]), torch.tensor([2.5, -1.0])
    torch.testing.assert_close(A(None, k, eps), torch.stack([2.5 * M[:, 3], -1.0 * M[:, 99]]))


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
    out = P(None, torch.tensor([0, 4, 4]), torch.tensor([3.0, -0.5, 0.5]))
    torch.testing.assert_close(out.norm(dim=1), torch.tensor([3.0, 0.5, 0.5]))
    assert not torch.allclose(out[1], -out[2])  # with a bias, -eps is not the opposite direction
    R = make_directions("random", 8, 5)
    assert list(R.parameters()) == []
    torch.testing.assert_close(R.matrix().T @ R.matrix(), torch.eye(5), atol=1e-5, rtol=0)


def test_proj_is_the_authors_projective_deformator():
    """Linear(K, d) with bias, weights 0.1 * N(0, 1), bias U(-1/sqrt(K), 1/sqrt(K)), output
    rescaled to |eps| (Models/Deformator.py, DeformatorType.PROJECTIVE with random_init)."""
    d, K = 32, 100
    A = make_directions("proj", d, K, seed=3)
    assert A.linear.weight.requires_grad and A.linear.bias.requires_grad
    W, b = A.linear.weight.detach(), A.linear.bias.detach()
    assert W.shape == (d, K) and b.shape == (d,)
    assert abs(float(W.std()) - 0.1) < 0.005 and abs(float(W.mean())) < 0.005
    assert float(b.abs().max()) <= K ** -0.5 and abs(float(b.std()) - (K ** -0.5) / 3 ** 0.5) < 0.02
    k = torch.arange(K).repeat(7)
    eps = torch.tensor([-6.0, -2.5, -0.5, 0.5, 1.0, 3.0, 6.0]).repeat_interleave(K)
    shift = A(None, k, eps)
    torch.testing.assert_close(shift.norm(dim=1), eps.abs())  # every k and eps moves |eps|
    # with the bias, -eps is not the mirror of +eps (it would be for a plain column)
    with torch.no_grad():
        up, down = A(None, k[:K], torch.full((K,), 1.0)), A(None, k[:K], torch.full((K,), -1.0))
    assert float((up + down).norm(dim=1).min()) > 0.1
    unit = make_directions("unit", d, K, seed=3)
    torch.testing.assert_close(unit(None, k[:K], torch.full((K,), 1.0)), -unit(None, k[:K], torch.full((K,), -1.0)))


def test_ortho_is_the_authors_exponential_map():
    """log_mat_half ~ N(0, 1) (their script's random_init) and A = expm(S - S^T): orthonormal,
    determinant +1, shift norm |eps|."""
    A = make_directions("ortho", 32, 32, seed=1)
    assert A.S.shape == (32, 32) and abs(float(A.S.detach().std()) - 1.0) < 0.05
    M = A.matrix().detach()
    torch.testing.assert_close(M.T @ M, torch.eye(32), atol=1e-5, rtol=0)
    assert float(torch.linalg.det(M)) == pytest.approx(1.0, abs=1e-4)
    eps = torch.linspace(-6, 6, 32)
    torch.testing.assert_close(A(None, torch.arange(32), eps).norm(dim=1), eps.abs(), atol=1e-5, rtol=1e-5)
