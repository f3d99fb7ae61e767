"""DCGAN generator and discriminator (Radford et al.), sized by the number of up-sampling blocks.

At 128^2 with ngf = ndf = 128 this is the paper's model: ConvTranspose2d(d -> 16*ngf, 4, 1, 0),
then stride-2 blocks halving the width down to ngf, then a Tanh image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn


@dataclass
class GANSettings:
    """The GAN's own generators settings (a grid's `generators:` section): the paper's DCGAN."""

    gan_width: int = 32          # ngf = ndf (paper: 128 at 128^2)
    lr_gan: float = 2e-4
    beta1_gan: float = 0.5
    smooth_low: float = 0.9      # one-sided label smoothing: real targets ~ U[smooth_low, 1]
    RANGES: ClassVar[dict] = {"gan_width": (1, 1024), "lr_gan": (0, 1, "(]"), "beta1_gan": (0, 1, "[)"),
                              "smooth_low": (0, 1)}


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

    def first_layer(self, z: torch.Tensor) -> torch.Tensor:
        """The first (linear) layer's activations of z (GANSpace)."""
        return self.net[0](z.view(z.shape[0], self.latent_dim, 1, 1))

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


class GANTraining:
    """One DCGAN step as the paper trains it: BCE on logits, Adam(lr_gan, beta1_gan), one-sided
    label smoothing of the real targets and instance noise on D's inputs (sigma from the loop's
    schedule). `modules` and `optimizers` are what the loop wraps in DDP and checkpoints."""

    def __init__(self, model: nn.Module, cfg):
        self.cfg = cfg
        D = DCGANDiscriminator(cfg.size, cfg.gan_width)
        self.modules = {"model": model, "D": D}
        betas = (cfg.beta1_gan, 0.999)
        self.optimizers = {"opt": torch.optim.Adam(model.parameters(), lr=cfg.lr_gan, betas=betas),
                           "opt_D": torch.optim.Adam(D.parameters(), lr=cfg.lr_gan, betas=betas)}

    def step(self, x: torch.Tensor, sigma: float, gen: torch.Generator, device) -> dict[str, float]:
        import torch.nn.functional as F

        from raylatent.models.schedules import smoothed_real_targets

        G, D = self.modules["model"], self.modules["D"]
        opt_G, opt_D = self.optimizers["opt"], self.optimizers["opt_D"]
        n = x.shape[0]
        fake = G(torch.randn(n, self.cfg.latent_dim, generator=gen).to(device))

        def noisy(t):
            return t + sigma * torch.randn(t.shape, generator=gen).to(device) if sigma > 0 else t

        real_t = smoothed_real_targets(n, self.cfg.smooth_low, 1.0, generator=gen).to(device)
        opt_D.zero_grad(set_to_none=True)
        out_real = D(noisy(x))
        loss_real = F.binary_cross_entropy_with_logits(out_real, real_t)
        loss_real.backward()
        out_fake = D(noisy(fake.detach()))
        loss_fake = F.binary_cross_entropy_with_logits(out_fake, torch.zeros(n, device=device))
        loss_fake.backward()
        opt_D.step()
        opt_G.zero_grad(set_to_none=True)
        loss_G = F.binary_cross_entropy_with_logits(D(noisy(fake)), torch.ones(n, device=device))
        loss_G.backward()
        opt_G.step()
        return {"loss_D": (loss_real + loss_fake).item(), "loss_G": loss_G.item(),
                "D_real": torch.sigmoid(out_real).mean().item(), "D_fake": torch.sigmoid(out_fake).mean().item()}

    def eval_metrics(self, model: nn.Module, images: torch.Tensor, device) -> dict[str, float]:
        return {}


def _register() -> None:
    from raylatent.models.inversion import reverse_search
    from raylatent.models.registry import GeneratorKind, register

    register(GeneratorKind(
        name="gan", title="GAN", model_class=DCGANGenerator, width_field="gan_width", settings=GANSettings,
        build=lambda latent_dim, size, width: DCGANGenerator(latent_dim, size, width),
        generator_of=lambda model: model, training=GANTraining,
        invert=lambda model, images: reverse_search(model, images, steps=200, restarts=2),
        inversion="reverse latent search", loss_keys=("loss_D", "loss_G")))


_register()
