"""Stage configurations: dataclasses, validated on construction with one-line errors.

The one place that reads settings from the environment (the pseudonym salt) or from YAML.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """A bad setting; str() is a one-line message naming the setting and the fix."""


def resolve_salt(explicit: str | None = None) -> str:
    """The secret that turns patient/series/SOP identifiers into pseudonyms.

    Kept outside every output (env RAYLATENT_SALT, else a per-user file created on first use) so
    a published shard folder cannot be re-identified by hashing guessed IDs like LIDC-IDRI-0001."""
    if explicit:
        return explicit
    env = os.environ.get("RAYLATENT_SALT")
    if env:
        return env
    path = Path(os.environ.get("RAYLATENT_HOME", Path.home() / ".config" / "raylatent")) / "salt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(secrets.token_hex(16))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    return path.read_text().strip()


@dataclass
class IngestConfig:
    src: str
    out: str
    size: int = 128
    test_frac: float = 0.1
    seed: int = 0
    strict: bool = False
    salt: str = field(default="", repr=False)
    files_per_batch: int = 48

    def __post_init__(self) -> None:
        if not Path(self.src).is_dir():
            raise ConfigError(f"--src {self.src}: no such folder (point it at a folder of DICOM files)")
        if self.size < 8 or self.size > 1024:
            raise ConfigError(f"--size {self.size}: must be between 8 and 1024 pixels")
        if not 0.0 <= self.test_frac < 1.0:
            raise ConfigError(f"--test-frac {self.test_frac}: must be in [0, 1)")
        if Path(self.out).resolve() == Path(self.src).resolve():
            raise ConfigError("--out must differ from --src (the source folder is never written)")
        self.salt = resolve_salt(self.salt)


@dataclass
class GeneratorsConfig:
    """Training of the DCGAN and the VAE (paper section 3.2); defaults are the smoke scale."""

    kinds: tuple = ("gan", "vae")
    size: int = 32
    latent_dim: int = 32
    gan_width: int = 32          # ngf = ndf (paper: 128 at 128^2)
    vae_width: int = 16          # base channels of the ResNet VAE (paper's authors: 64)
    epochs: int = 6
    batch_size: int = 32
    keep_last: int = 5           # the generator kept is the best-FID of the last N epochs
    lr_gan: float = 2e-4
    beta1_gan: float = 0.5
    lr_vae: float = 1e-4
    beta_kl: float = 0.01
    noise_start: float = 0.1     # instance noise sigma at epoch 0, off from the midpoint
    noise_steps: int = 5
    smooth_low: float = 0.9      # real targets ~ U[smooth_low, 1]
    augment: bool = True
    fid_network: str = "inception"  # inception | fallback
    fid_weights: str = ""        # local pytorch-fid weights file (offline clusters)
    fid_samples: int = 512
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 0.5
    gpus_per_worker: float = 0.0
    max_failures: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        self.kinds = tuple(self.kinds)
        bad = set(self.kinds) - {"gan", "vae"}
        if bad or not self.kinds:
            raise ConfigError(f"generators.kinds: {sorted(bad) or 'empty'} (use gan and/or vae)")
        if self.size < 8 or self.size & (self.size - 1):
            raise ConfigError(f"generators.size {self.size}: must be a power of two >= 8")
        if self.keep_last < 1 or self.keep_last > self.epochs:
            raise ConfigError(f"generators.keep_last {self.keep_last}: must be in 1..epochs ({self.epochs})")
        if self.fid_network not in ("inception", "fallback"):
            raise ConfigError(f"generators.fid_network {self.fid_network!r}: inception or fallback")
        if self.num_workers < 1:
            raise ConfigError("generators.num_workers: at least 1")
