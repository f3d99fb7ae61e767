"""Generators, reconstructors and direction models: plain PyTorch, no Ray.

Importing this package registers the generator kinds (see `registry.py`); a new kind is one
module (its network, its training, its settings) that calls `register(...)`, and one import line
here."""
from __future__ import annotations

from torch import nn

from raylatent.models.dcgan import DCGANDiscriminator, DCGANGenerator  # importing registers the `gan` kind
from raylatent.models.registry import GENERATORS, kind_names, kind_of
from raylatent.models.vae import VAE  # and the `vae` kind
from raylatent.models.phantom_gen import PhantomGenerator  # the `phantom` kind (ground truth, untrained)
from raylatent.models.curved_phantom import CurvedPhantomGenerator  # the `curved` kind (ground truth along curves)


def make_generator(kind: str, size: int, width: int, latent_dim: int = 32) -> nn.Module:
    """The trainable model of a generator kind (the GAN's generator, the whole VAE)."""
    return kind_of(kind).build(latent_dim, size, width)


def make_generator_from(kind: str, cfg) -> nn.Module:
    """The model a generators configuration describes (its width from the kind's own field)."""
    k = kind_of(kind)
    return k.build(cfg.latent_dim, cfg.size, getattr(cfg, k.width_field) if k.width_field else 0)


def as_generator(model: nn.Module) -> nn.Module:
    """The z -> image module of a trained model (the VAE's decoder, the GAN's generator)."""
    for k in GENERATORS.values():
        if isinstance(model, k.model_class):
            return k.generator_of(model)
    return model


__all__ = ["DCGANGenerator", "DCGANDiscriminator", "VAE", "PhantomGenerator", "CurvedPhantomGenerator", "make_generator",
           "make_generator_from",
           "as_generator", "kind_of", "kind_names"]
