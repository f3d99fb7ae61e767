"""Generator kinds: the one place that says, per kind, everything the stages need.

A kind is registered by the module that defines its network (`models/dcgan.py` registers `gan`,
`models/vae.py` registers `vae`). The training loop, the dry run, the baselines, the labels and
the report consult this registry and never branch on a kind's name, so a new generator is one
module plus one import line in `models/__init__.py` (and a grid entry).

What a kind provides:
- `build(latent_dim, size, width)`: the whole trainable model; `settings`: a dataclass of its own
  generators settings (defaults, and `RANGES` for their checks), merged into the grid's
  `generators:` section (models/config.py); `width_field`: the one of them that holds its width
  (none: width 0, e.g. the phantom's);
- `generator_of(model)`: its z -> image module (which has `latent_dim`, `first_linear` for SeFa
  and `first_layer(z)` for GANSpace);
- `training(model, cfg)`: an object with `modules` (what DDP wraps and checkpoints),
  `optimizers`, `step(x, sigma, generator, device) -> metrics`, `eval_metrics(model, images)`;
- `invert(model, images)` and `inversion`: latents of held-out images (encoder or reverse search);
- `loss_keys`: the per-epoch losses the console and the report show;
- `has_encoder`: whether the paper's encoder figures (memorisation via the encoder) apply;
- `trainable`: False for a kind that is fixed by construction (`phantom`, whose true directions are
  known): the generators stage writes it without training, and its `training` is None.
- `truth(generator)`: for a generator that knows its true directions, (d x F matrix of unit
  columns, the F factor names), or (tangents, names) where its factor paths are curves:
  `tangents(z)` gives B x d x F unit tangents at latents z; discovered directions are then scored
  against them (interpret/truth.py);
- `paths(generator)`: for a generator whose true factor paths are curves, a direction set that
  follows them (the `axes` positive control).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn


@dataclass(frozen=True)
class GeneratorKind:
    name: str
    title: str
    model_class: type
    build: Callable[[int, int, int], nn.Module]
    generator_of: Callable[[nn.Module], nn.Module]
    training: Callable | None
    invert: Callable
    inversion: str
    loss_keys: tuple[str, ...]
    has_encoder: bool = False
    trainable: bool = True
    truth: Callable | None = None
    settings: type | None = None
    width_field: str | None = None
    paths: Callable | None = None


GENERATORS: dict[str, GeneratorKind] = {}


def register(kind: GeneratorKind) -> GeneratorKind:
    GENERATORS[kind.name] = kind
    return kind


def kind_of(name: str) -> GeneratorKind:
    if name not in GENERATORS:
        raise ValueError(f"generator {name!r}: must be one of {', '.join(sorted(GENERATORS))}")
    return GENERATORS[name]


def kind_names() -> tuple[str, ...]:
    return tuple(GENERATORS)
