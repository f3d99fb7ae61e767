"""Reading an .npz the project wrote, bounded before anything is inflated: a member that
declares gigabytes (a zip bomb, a tampered run) is refused by its header, never allocated."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from raylatent.errors import ConfigError

MAX_NPZ_BYTES = 8 << 30  # all members together, inflated: a K = 100 export at d = 512 is ~0.5 MB; renders at 1024^2 several GB


def load_npz(path: str | os.PathLike, max_bytes: int = MAX_NPZ_BYTES, what: str = "arrays") -> dict[str, np.ndarray]:
    """Every member of the .npz at `path` (no pickles), once their declared sizes sum to at most
    `max_bytes`; any failure is one ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: missing or not a regular file ({what})")
    try:
        with zipfile.ZipFile(path) as z:
            declared = sum(i.file_size for i in z.infolist())
            if declared > max_bytes:
                raise ConfigError(f"{path}: its members declare {declared} bytes, over the {max_bytes} an .npz may "
                                  f"inflate to ({what})")
            arrays = sum(_array_bytes(z, i) for i in z.infolist())  # what np.load would allocate
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{path}: not an .npz ({type(e).__name__}; {what})") from None
    if arrays > max_bytes:
        raise ConfigError(f"{path}: its arrays' headers declare {arrays} bytes, over the {max_bytes} an .npz may "
                          f"hold ({what})")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, MemoryError, zipfile.BadZipFile) as e:
        raise ConfigError(f"{path}: unreadable ({type(e).__name__}; {what})") from None


def _array_bytes(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """The bytes one .npy member's header asks for (shape x item size), read from its first bytes;
    an object array (pickles) or a header that is not one is refused."""
    fmt = np.lib.format
    with z.open(info) as f:
        version = fmt.read_magic(f)
        shape, _, dtype = (fmt.read_array_header_1_0(f) if version == (1, 0) else fmt.read_array_header_2_0(f))
    if dtype.hasobject:
        raise ConfigError(f"{info.filename}: an object array (pickled Python objects are never loaded)")
    n = 1
    for s in shape:
        n *= int(s)
    return n * dtype.itemsize
