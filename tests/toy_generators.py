"""Tiny analytic generators whose latent factors are known, for fast discovery tests."""
import torch
from torch import nn


class BlobGenerator(nn.Module):
    """A Gaussian blob on a size x size canvas. z[0] moves it in x, z[1] in y, z[2] scales it,
    z[3] sets its brightness; the other latent dims do nothing."""

    def __init__(self, latent_dim: int = 8, size: int = 16):
        super().__init__()
        self.latent_dim, self.size = latent_dim, size
        c = torch.linspace(-1, 1, size)
        self.register_buffer("yy", c[:, None].expand(size, size))
        self.register_buffer("xx", c[None, :].expand(size, size))
        self.dummy = nn.Parameter(torch.zeros(1))  # so "frozen parameters" is meaningful

    def forward(self, z):
        x0 = 0.25 * torch.tanh(z[:, 0] / 2)[:, None, None]
        y0 = 0.25 * torch.tanh(z[:, 1] / 2)[:, None, None]
        s = (0.3 * torch.exp(0.12 * torch.tanh(z[:, 2] / 2) * 2))[:, None, None]
        b = (0.5 + 0.4 * torch.tanh(z[:, 3] / 2))[:, None, None]
        img = b * torch.exp(-((self.xx - x0) ** 2 + (self.yy - y0) ** 2) / (2 * s ** 2)) + self.dummy
        return (img * 2 - 1)[:, None]
