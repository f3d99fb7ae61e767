"""ResNet VAE after LukeDitria's CNN-VAE (which the paper's authors followed): residual down
blocks to mu and log-variance at 1x1xd, residual up blocks back to a Tanh image."""
from __future__ import annotations

import torch
from torch import nn

from raylatent.models.dcgan import _n_blocks


class ResDown(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout // 2, 3, 2, 1)
        self.bn1 = nn.BatchNorm2d(cout // 2)
        self.conv2 = nn.Conv2d(cout // 2, cout, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Conv2d(cin, cout, 3, 2, 1)
        self.act = nn.ELU()

    def forward(self, x):
        s = self.skip(x)
        x = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(x)) + s)


class ResUp(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv1 = nn.Conv2d(cin, cout // 2, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(cout // 2)
        self.conv2 = nn.Conv2d(cout // 2, cout, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Conv2d(cin, cout, 3, 1, 1)
        self.act = nn.ELU()

    def forward(self, x):
        x = self.up(x)
        s = self.skip(x)
        x = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(x)) + s)


def _widths(size: int, ch: int, max_mult: int = 8) -> list[int]:
    n = _n_blocks(size)
    return [ch * min(2 ** i, max_mult) for i in range(n + 1)]


class Encoder(nn.Module):
    def __init__(self, latent_dim: int, size: int, ch: int, channels: int = 1):
        super().__init__()
        w = _widths(size, ch)
        self.conv_in = nn.Conv2d(channels, w[0], 3, 1, 1)
        self.blocks = nn.Sequential(*[ResDown(w[i], w[i + 1]) for i in range(len(w) - 1)])
        self.mu = nn.Conv2d(w[-1], latent_dim, 4, 1, 0)
        self.logvar = nn.Conv2d(w[-1], latent_dim, 4, 1, 0)

    def forward(self, x):
        h = self.blocks(self.conv_in(x))
        return self.mu(h).flatten(1), self.logvar(h).flatten(1)


class Decoder(nn.Module):
    """The VAE's generator: z (B x d) -> image. Shares the DCGAN generator's call signature."""

    def __init__(self, latent_dim: int, size: int, ch: int, channels: int = 1):
        super().__init__()
        w = _widths(size, ch)[::-1]
        self.latent_dim, self.size = latent_dim, size
        self.conv_in = nn.ConvTranspose2d(latent_dim, w[0], 4, 1, 0)
        self.blocks = nn.Sequential(*[ResUp(w[i], w[i + 1]) for i in range(len(w) - 1)])
        self.conv_out = nn.Conv2d(w[-1], channels, 3, 1, 1)

    @property
    def first_linear(self) -> torch.Tensor:
        w = self.conv_in.weight
        return w.reshape(w.shape[0], -1).T

    def forward(self, z):
        h = self.blocks(torch.nn.functional.elu(self.conv_in(z.view(z.shape[0], self.latent_dim, 1, 1))))
        return torch.tanh(self.conv_out(h))


class VAE(nn.Module):
    def __init__(self, latent_dim: int = 32, size: int = 128, ch: int = 64, channels: int = 1):
        super().__init__()
        self.latent_dim, self.size = latent_dim, size
        self.encoder = Encoder(latent_dim, size, ch, channels)
        self.decoder = Decoder(latent_dim, size, ch, channels)

    def forward(self, x):
        mu, logvar = self.encoder(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decoder(z), mu, logvar


def vae_loss(x, recon, mu, logvar, beta: float = 0.01):
    """log-MSE reconstruction (Yu, 2020) + beta * KL to N(0, I), per the paper (beta = 0.01).

    KL is summed over latent dims and averaged over the batch; the log keeps the reconstruction
    term on the KL's scale without a hand-tuned weight."""
    mse = torch.mean((recon - x) ** 2)
    kl = torch.mean(-0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp(), dim=1))
    rec = torch.log(mse + 1e-8)
    return rec + beta * kl, {"recon_mse": float(mse.detach()), "kl": float(kl.detach())}
