"""A grid's `generators:` section: what the training of every kind shares, and each registered
kind's own settings (its width, optimiser, loss weights), which the kind declares in its module
(`GeneratorKind.settings`, models/registry.py) and which a grid sets in the same flat section
(`gan_width`, `lr_vae`). `GeneratorsConfig` is the shared fields plus every registered kind's,
made once per set of registered kinds (`config_class`), so a kind registered later (a plug-in, a
test's toy) brings its settings with it.
"""
from __future__ import annotations

from dataclasses import dataclass, make_dataclass
from pathlib import Path

from raylatent.errors import ConfigError, check_ranges as _check_ranges


def _generator_kinds() -> set[str]:
    """The registered generator kinds (models/registry.py), imported only when a config is built."""
    from raylatent.models import kind_names

    return set(kind_names())


@dataclass
class SharedGeneratorsConfig:
    """What every kind's training shares (paper section 3.2); defaults are the smoke scale."""

    kinds: tuple = ("gan", "vae")
    size: int = 32
    latent_dim: int = 32
    epochs: int = 6
    batch_size: int = 32
    keep_last: int = 5           # the generator kept is the best-FID of the last N epochs
    noise_start: float = 0.1     # instance noise sigma at epoch 0 (handed to each kind's step), off from the midpoint
    noise_steps: int = 5
    augment: bool = True
    shuffle_buffer: int = 2048   # rows per worker's seeded local shuffle (0 = off; the authors shuffle)
    fid_network: str = "inception"  # inception | fallback
    fid_weights: str = ""        # local pytorch-fid weights file (offline clusters)
    fid_samples: int = 512
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 0.5
    gpus_per_worker: float = 0.0
    max_failures: int = 1
    seed: int = 0
    # independently trained copies of every trainable generator (seeds seed, seed + 1, ...), each
    # with its own directions stage and report, so a claim about a generator has an interval
    replicates: int = 1

    def __post_init__(self) -> None:
        self.kinds = tuple(self.kinds)
        known = _generator_kinds()
        bad = set(self.kinds) - known
        if bad or not self.kinds:
            raise ConfigError(f"generators.kinds: {sorted(bad) or 'empty'} (known: {', '.join(sorted(known))})")
        if self.size < 8 or self.size & (self.size - 1):
            raise ConfigError(f"generators.size {self.size}: must be a power of two >= 8")
        if self.keep_last < 1 or self.keep_last > self.epochs:
            raise ConfigError(f"generators.keep_last {self.keep_last}: must be in 1..epochs ({self.epochs})")
        if self.fid_network not in ("inception", "fallback"):
            raise ConfigError(f"generators.fid_network {self.fid_network!r}: inception or fallback")
        if self.fid_weights and not Path(self.fid_weights).expanduser().is_file():
            raise ConfigError(f"generators.fid_weights {self.fid_weights}: no such file (give the "
                              f"pt_inception-2015-12-05 weights of pytorch-fid, or leave it empty)")
        if self.num_workers < 1:
            raise ConfigError("generators.num_workers: at least 1")
        _check_ranges(self, "generators", {
            "latent_dim": (1, 4096), "epochs": (1, 100_000), "batch_size": (1, 65_536), "noise_start": (0, 10),
            "noise_steps": (1, 10_000), "fid_samples": (2, 10_000_000), "num_workers": (1, 10_000),
            "cpus_per_worker": (0, 1024, "(]"), "gpus_per_worker": (0, 64), "max_failures": (0, 1000),
            "shuffle_buffer": (0, 10_000_000), "replicates": (1, 100)})
        for base in type(self).__mro__:  # each kind's own settings, by the ranges its module declares
            if "RANGES" in base.__dict__ and base is not SharedGeneratorsConfig:
                _check_ranges(self, "generators", base.RANGES)
        if not isinstance(self.replicates, int) or isinstance(self.replicates, bool):
            raise ConfigError(f"generators.replicates {self.replicates!r}: a whole number >= 1 (e.g. 2)")
        if self.shuffle_buffer and self.shuffle_buffer < self.batch_size:
            raise ConfigError(f"generators.shuffle_buffer {self.shuffle_buffer}: 0 (off) or at least "
                              f"batch_size ({self.batch_size}) rows")


_CLASSES: dict[tuple, type] = {}


def config_class() -> type:
    """The `generators:` section's class for the kinds registered now: the shared fields, then each
    kind's own settings in registration order (made once per set of kinds)."""
    from raylatent.models import GENERATORS  # importing registers the built-in kinds

    own = tuple(dict.fromkeys(k.settings for k in GENERATORS.values() if k.settings is not None))
    if own not in _CLASSES:
        _CLASSES[own] = make_dataclass(
            "GeneratorsConfig", [], bases=(*reversed(own), SharedGeneratorsConfig),
            namespace={"__module__": __name__,
                       "__doc__": "A grid's generators section: the shared fields and every registered kind's own."})
    return _CLASSES[own]


def __getattr__(name: str):
    if name == "GeneratorsConfig":  # the class of the kinds registered now (pickle finds it here too)
        return config_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
