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
