"""Shuffled training batches, as the authors' DataLoader(shuffle=True) gives them.

Shards are written patient by patient in z order, so unshuffled batches are runs of adjacent
slices of one patient. A global `random_shuffle` per epoch would move the whole split through the
object store every epoch (~14 GB at LIDC-IDRI scale); instead two cheap layers, as Ray Data
recommends for training ingest:

1. the train split's files are read in a seeded random order (`FileShuffleConfig`), and
2. each worker draws its batches from a seeded local shuffle buffer of `shuffle_buffer` rows
   (a new seed every epoch and rank), which mixes every patient in the buffer.

When the split fits the buffer (the smoke grid: ~440 rows in 2,048) this is a full shuffle per
epoch. At LIDC scale (~240 slices a patient, 128^2 float32 = 64 KiB a row) a 2,048-row buffer
holds ~8 patients and costs 128 MiB of worker memory; the cost per epoch is measured by
`python -m raylatent.bench shuffle`.
"""
from __future__ import annotations

from typing import Iterator


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A different, reproducible shuffle for every (run seed, epoch, worker)."""
    return (seed * 1_000_003 + epoch * 7_919 + rank * 104_729) % (2 ** 31 - 1)


def epoch_batches(iterator, batch_size: int, shuffle_buffer: int, seed: int, epoch: int,
                  rank: int = 0) -> Iterator[dict]:
    """One epoch of shuffled torch batches from a Ray Data iterator (a Train dataset shard or
    `Dataset.iterator()`), the last partial batch dropped like the authors' full batches."""
    import torch

    return iter(iterator.iter_torch_batches(
        batch_size=batch_size, dtypes=torch.float32, drop_last=True,
        local_shuffle_buffer_size=shuffle_buffer or None,
        local_shuffle_seed=epoch_seed(seed, epoch, rank) if shuffle_buffer else None))
