"""The data settings: ingest (DICOM -> shards) and a grid's `data:` section, and the pseudonym salt
(the one setting read from the environment)."""
from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from raylatent.errors import ConfigError, check_ranges as _check_ranges

# the synthetic cohort's sizes (one place: the grid's data section and python -m raylatent.phantom)
PHANTOM_LIMITS = {"patients": (1, 10_000), "slices": (1, 2_000), "matrix": (32, 2_048), "seed": (0, 2 ** 31 - 1)}


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
        fd, tmp = tempfile.mkstemp(prefix=".salt.", dir=path.parent)  # mode 600 from its first byte
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(16))
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
        s, o = Path(self.src).resolve(), Path(self.out).resolve()
        if s == o or s in o.parents or o in s.parents:
            raise ConfigError(f"--out {self.out} must lie outside --src {self.src} and not contain it "
                              f"(the source folder is never written)")
        self.salt = resolve_salt(self.salt)


@dataclass
class DataConfig:
    path: str = ""               # folder of CT DICOM; empty = the built-in phantom
    patients: int = 16           # phantom cohort (used when path is empty)
    slices: int = 32
    matrix: int = 128
    phantom_seed: int = 0
    size: int = 32
    test_frac: float = 0.15
    split_seed: int = 0

    def __post_init__(self) -> None:
        if self.path and not Path(self.path).expanduser().is_dir():
            raise ConfigError(f"data.path {self.path}: no such folder (give a LIDC-IDRI/DICOM folder, "
                              f"or leave data.path empty for the built-in phantom)")
        # the phantom's own bounds, as its CLI checks them
        _check_ranges(self, "data", {**{k: PHANTOM_LIMITS[k] for k in ("patients", "slices", "matrix")},
                                     "size": (8, 1024), "test_frac": (0, 1, "()"),
                                     "phantom_seed": PHANTOM_LIMITS["seed"], "split_seed": (0, 2 ** 32 - 1)})
