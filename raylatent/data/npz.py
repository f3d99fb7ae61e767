"""Reading an .npz the project wrote, bounded before anything is inflated: a member that
declares gigabytes (a zip bomb, a tampered run) is refused by its header, never allocated."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from raylatent.errors import ConfigError

MAX_NPZ_BYTES = 2 << 30  # all members together, inflated: a K = 100 export at d = 512 is ~0.5 MB, renders ~100 MB


def load_npz(path: str | os.PathLike, max_bytes: int = MAX_NPZ_BYTES, what: str = "arrays") -> dict[str, np.ndarray]:
    """Every member of the .npz at `path` (no pickles), once their declared sizes sum to at most
    `max_bytes`; any failure is one ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: missing or not a regular file ({what})")
    try:
        with zipfile.ZipFile(path) as z:
            declared = sum(i.file_size for i in z.infolist())
    except (OSError, zipfile.BadZipFile, ValueError) as e:
        raise ConfigError(f"{path}: not an .npz ({type(e).__name__}; {what})") from None
    if declared > max_bytes:
        raise ConfigError(f"{path}: its members declare {declared} bytes, over the {max_bytes} an .npz may inflate to "
                          f"({what})")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ConfigError(f"{path}: unreadable ({type(e).__name__}; {what})") from None
