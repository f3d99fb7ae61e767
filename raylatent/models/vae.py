"""The authors' ResNet VAE (their `Models/VAE.py`, after LukeDitria's CNN-VAE), at any
power-of-two size.

Encoder: residual down blocks that halve with *average pooling* down to 4^2, then mu and
log-variance from a 4x4 convolution of stride 4 (1x1 x d). Decoder: residual up blocks with
nearest-neighbour upsampling from 1x1 all the way up, then a 3x3 convolution and Tanh. At 128^2
and base width 64 this is their network exactly: 5 down blocks (64, 128, 256, 512, 512 channels)
and 7 up blocks (1024, 512, 512, 256, 128, 64, 32). Smaller images drop the widest blocks.

The activation is `F.rrelu` called as they call it: the functional form defaults to
training=False, so it is a fixed leaky ReLU of slope (1/8 + 1/3) / 2, not a randomised one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class VAESettings:
    """The VAE's own generators settings (a grid's `generators:` section): the authors' beta-VAE."""

    vae_width: int = 16          # base channels of the ResNet VAE (paper's authors: 64)
    lr_vae: float = 1e-4
    beta_kl: float = 0.01
    RANGES: ClassVar[dict] = {"vae_width": (1, 1024), "lr_vae": (0, 1, "(]"), "beta_kl": (0, 1e6)}

# the authors' channel multipliers at 128^2 (the decoder's are listed from its 1x1 input)
ENCODER_MULTS = (1, 2, 4, 8, 8)
DECODER_MULTS = (16, 8, 8, 4, 2, 1, 0.5)


class ResDown(nn.Module):
    def __init__(self, cin: int, cout: int, scale: int = 2):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout // 2, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(cout // 2)
        self.conv2 = nn.Conv2d(cout // 2, cout, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Conv2d(cin, cout, 3, 1, 1)
        self.pool = nn.AvgPool2d(scale, scale)

    def forward(self, x):
        s = self.skip(self.pool(x))
        x = F.rrelu(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(self.pool(x)))
        return F.rrelu(x + s)


class ResUp(nn.Module):
    def __init__(self, cin: int, cout: int, scale: int = 2):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout // 2, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(cout // 2)
        self.conv2 = nn.Conv2d(cout // 2, cout, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Conv2d(cin, cout, 3, 1, 1)
        self.up = nn.Upsample(scale_factor=scale, mode="nearest")

    def linear_part(self, x):
        """The block's two linear maps of its input (conv1, and the skip after upsampling)."""
        return torch.cat([self.conv1(x).flatten(1), self.skip(self.up(x)).flatten(1)], dim=1)

    def forward(self, x):
        s = self.skip(self.up(x))
        x = F.rrelu(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(self.up(x)))
        return F.rrelu(x + s)


def _log2(size: int) -> int:
    n = math.log2(size)
    if size < 8 or n != int(n):
        raise ValueError(f"image size {size}: must be a power of two >= 8 (e.g. 32, 64, 128)")
    return int(n)


def encoder_widths(size: int, ch: int) -> list[int]:
    """Output channels of the down blocks: the authors' list, cut or extended (at 8ch) so the
    last block ends at 4^2."""
    n = _log2(size) - 2
    mults = list(ENCODER_MULTS[:n]) + [ENCODER_MULTS[-1]] * max(0, n - len(ENCODER_MULTS))
    return [int(ch * m) for m in mults]


def decoder_widths(size: int, ch: int) -> list[int]:
    """Output channels of the up blocks (1x1 -> size^2): the last log2(size) of the authors'
    list, extended at its wide end (16ch) for sizes above 128."""
    n = _log2(size)
    mults = [DECODER_MULTS[0]] * max(0, n - len(DECODER_MULTS)) + list(DECODER_MULTS[-n:])
    return [max(1, int(ch * m)) for m in mults]


class Encoder(nn.Module):
    def __init__(self, latent_dim: int, size: int, ch: int, channels: int = 1):
        super().__init__()
        w = [channels, *encoder_widths(size, ch)]
        self.blocks = nn.Sequential(*[ResDown(w[i], w[i + 1]) for i in range(len(w) - 1)])
        self.mu = nn.Conv2d(w[-1], latent_dim, 4, 4)
        self.logvar = nn.Conv2d(w[-1], latent_dim, 4, 4)

    def forward(self, x):
        h = self.blocks(x)
        return self.mu(h).flatten(1), self.logvar(h).flatten(1)


class Decoder(nn.Module):
    """The VAE's generator: z (B x d) -> image. Shares the DCGAN generator's call signature."""

    def __init__(self, latent_dim: int, size: int, ch: int, channels: int = 1):
        super().__init__()
        w = [latent_dim, *decoder_widths(size, ch)]
        self.latent_dim, self.size = latent_dim, size
        self.blocks = nn.Sequential(*[ResUp(w[i], w[i + 1]) for i in range(len(w) - 1)])
        self.conv_out = nn.Conv2d(w[-1], channels, 3, 1, 1)

    def first_layer(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's first linear maps of z (GANSpace's activations, SeFa's weight)."""
        return self.blocks[0].linear_part(z.view(z.shape[0], self.latent_dim, 1, 1))

    @property
    def first_linear(self) -> torch.Tensor:
        """(F x d): the first layer as a matrix, read off by probing it with the unit vectors."""
        eye = torch.eye(self.latent_dim, device=self.conv_out.weight.device)
        return (self.first_layer(eye) - self.first_layer(torch.zeros_like(eye))).T

    def forward(self, z):
        return torch.tanh(self.conv_out(self.blocks(z.view(z.shape[0], self.latent_dim, 1, 1))))


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


class VAETraining:
    """One beta-VAE step (log-MSE + beta * KL, Adam(lr_vae)); held-out reconstruction error per
    epoch. `modules` and `optimizers` are what the loop wraps in DDP and checkpoints."""

    def __init__(self, model: nn.Module, cfg):
        self.cfg = cfg
        self.modules = {"model": model}
        self.optimizers = {"opt": torch.optim.Adam(model.parameters(), lr=cfg.lr_vae)}

    def step(self, x: torch.Tensor, sigma: float, gen: torch.Generator, device) -> dict[str, float]:
        model, opt = self.modules["model"], self.optimizers["opt"]
        recon, mu, logvar = model(x)
        loss, parts = vae_loss(x, recon, mu, logvar, self.cfg.beta_kl)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {**parts, "loss": loss.item()}

    @torch.no_grad()
    def eval_metrics(self, model: nn.Module, images: torch.Tensor, device) -> dict[str, float]:
        was = model.training
        model.eval()
        recon, _, _ = model(images.to(device))
        model.train(was)
        return {"test_recon_mse": float(((recon.cpu() - images) ** 2).mean())}


def _register() -> None:
    from raylatent.models.inversion import encode
    from raylatent.models.registry import GeneratorKind, register

    register(GeneratorKind(
        name="vae", title="VAE", model_class=VAE, width_field="vae_width", settings=VAESettings,
        build=lambda latent_dim, size, width: VAE(latent_dim, size, width),
        generator_of=lambda model: model.decoder, training=VAETraining,
        invert=encode, inversion="its encoder", loss_keys=("loss", "recon_mse"), has_encoder=True))


_register()
