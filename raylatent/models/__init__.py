"""Generators, reconstructors and direction models: plain PyTorch, no Ray."""
from __future__ import annotations

from torch import nn

from raylatent.models.dcgan import DCGANDiscriminator, DCGANGenerator
from raylatent.models.vae import VAE


def make_generator(kind: str, size: int, width: int, latent_dim: int = 32) -> nn.Module:
    """The trainable model for a generator kind: DCGANGenerator or the whole VAE."""
    if kind == "gan":
        return DCGANGenerator(latent_dim, size, width)
    if kind == "vae":
        return VAE(latent_dim, size, width)
    raise ValueError(f"generator {kind!r}: must be 'gan' or 'vae'")


def make_generator_from(kind: str, cfg) -> nn.Module:
    """The model a generators configuration (size, gan_width, vae_width, latent_dim) describes."""
    return make_generator(kind, cfg.size, cfg.gan_width if kind == "gan" else cfg.vae_width, cfg.latent_dim)


def as_generator(model: nn.Module) -> nn.Module:
    """The z -> image module of a trained model (the VAE's decoder, the GAN's generator)."""
    return model.decoder if isinstance(model, VAE) else model


__all__ = ["DCGANGenerator", "DCGANDiscriminator", "VAE", "make_generator", "make_generator_from",
           "as_generator"]
