"""Read the ingest stage's shards back: as a Ray Dataset (Ray Train, Ray Tune) or as in-process
torch tensors (tests, the reporter, small CPU jobs)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads

from raylatent.errors import ConfigError
from raylatent.data.ingest import MANIFEST, SPLITS, load_manifest

if TYPE_CHECKING:  # torch is imported only where a split is loaded (Ray Data readers need none)
    import torch


def _split_dir(root: str | Path, split: str) -> Path:
    root = Path(root)
    if split not in SPLITS:
        raise ConfigError(f"split {split!r}: must be one of {SPLITS}")
    if load_manifest(root) is None:
        raise ConfigError(f"{root}: no {MANIFEST} (not a finished ingest; run python -m raylatent.ingest)")
    return root / split


def images_from_arrow(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The image column (fixed-shape tensor extension) -> N x S x S float32 numpy."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if isinstance(arr, pa.FixedShapeTensorArray):
        return arr.to_numpy_ndarray()
    # Ray's own tensor extension, or a plain list column written by other tools
    storage = arr.storage if isinstance(arr, pa.ExtensionArray) else arr
    flat = np.asarray(storage.flatten(), dtype=np.float32)
    side = int(round(np.sqrt(flat.size / max(len(arr), 1))))
    return flat.reshape(len(arr), side, side)


@dataclass
class Split:
    """One split in memory: images N x 1 x S x S (torch float32) and the per-slice columns."""

    images: torch.Tensor
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return self.images.shape[0]


def load_split(root: str | Path, split: str = "train", limit: int | None = None) -> Split:
    """The whole split as torch tensors, in one process, rows in a stable order (slice_key)."""
    import torch

    d = _split_dir(root, split)
    files = sorted(d.glob("*.parquet"))
    if not files:
        return Split(torch.zeros(0, 1, 1, 1), {})
    table = pads.dataset([str(f) for f in files], format="parquet").to_table()
    table = table.sort_by("slice_key")
    if limit is not None:
        table = table.slice(0, limit)
    images = images_from_arrow(table.column("image"))
    cols = {name: table.column(name).to_numpy(zero_copy_only=False)
            for name in table.column_names if name != "image"}
    return Split(torch.from_numpy(np.array(images, dtype=np.float32))[:, None], cols)


def read_dataset(root: str | Path, split: str = "train", columns: list[str] | None = None,
                 shuffle_seed: int | None = None):
    """The split as a Ray Dataset (for Ray Train's `datasets=` / `get_dataset_shard`); with
    `shuffle_seed`, its files are read in a seeded random order (a new one each execution)."""
    import ray

    d = _split_dir(root, split)
    shuffle = None if shuffle_seed is None else ray.data.FileShuffleConfig(seed=shuffle_seed)
    return ray.data.read_parquet(str(d), columns=columns, shuffle=shuffle)
