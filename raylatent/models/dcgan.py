"""DCGAN generator and discriminator (Radford et al.), sized by the number of up-sampling blocks.

At 128^2 with ngf = ndf = 128 this is the paper's model: ConvTranspose2d(d -> 16*ngf, 4, 1, 0),
then stride-2 blocks halving the width down to ngf, then a Tanh image.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def _n_blocks(size: int) -> int:
    n = math.log2(size / 4)
    if size < 8 or n != int(n):
        raise ValueError(f"image size {size}: must be a power of two >= 8 (e.g. 32, 64, 128)")
    return int(n)


def init_dcgan_weights(m: nn.Module) -> None:
    """DCGAN's N(0, 0.02) init for convolutions, N(1, 0.02) for batch-norm scales."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    def __init__(self, latent_dim: int = 32, size: int = 128, ngf: int = 128, channels: int = 1):
        super().__init__()
        n = _n_blocks(size)
        self.latent_dim, self.size = latent_dim, size
        mult = 2 ** (n - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, ngf * mult, 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(ngf * mult), nn.ReLU(True)]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ngf * mult // 2), nn.ReLU(True)]
            mult //= 2
        layers += [nn.ConvTranspose2d(ngf, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    @property
    def first_linear(self) -> torch.Tensor:
        """The map z -> first activations: on a 1x1 input ConvTranspose2d(d, C, 4) is exactly
        linear, weight (d, C, 4, 4) -> matrix (C*16, d). Used by SeFa."""
        w = self.net[0].weight
        return w.reshape(w.shape[0], -1).T

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.latent_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    def __init__(self, size: int = 128, ndf: int = 128, channels: int = 1):
        super().__init__()
        n = _n_blocks(size)
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        mult = 1
        for _ in range(n - 1):
            layers += [nn.Conv2d(ndf * mult, ndf * mult * 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ndf * mult * 2), nn.LeakyReLU(0.2, True)]
            mult *= 2
        layers += [nn.Conv2d(ndf * mult, 1, 4, 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B,): the loss applies the sigmoid (BCEWithLogits is the stable form of BCE)."""
        return self.net(x).view(x.shape[0])
