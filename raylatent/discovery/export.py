"""Learned directions as a plain file, and traversals for the reporter."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from raylatent.models.directions import as_arrays, shift_fn


def save_directions(path: str | os.PathLike, A: torch.Tensor | dict, config: dict) -> Path:
    """npz with A (d x K, unit columns), K, d, the configuration as JSON, and any other array
    the direction model's shift needs (a dict from `Directions.arrays()`, e.g. proj's W and b)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: torch.as_tensor(v).detach().cpu().numpy().astype(np.float32) for k, v in as_arrays(A).items()}
    d, K = arrays["A"].shape
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.npz")
    np.savez(tmp, **arrays, K=K, d=d, config=json.dumps(config, sort_keys=True))
    os.replace(tmp, path)
    return path


def load_directions(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    with np.load(path, allow_pickle=False) as f:
        return f["A"], json.loads(str(f["config"]))


def load_shift_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an export (A, and W and b for the authors' proj deformator)."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files if k in ("A", "W", "b")}


@torch.no_grad()
def traversal(G: nn.Module, A: torch.Tensor | np.ndarray | dict, z: torch.Tensor, shifts, directions=None,
              batch: int = 256) -> torch.Tensor:
    """Images G(z + shift_k(s)): tensor (n_dirs, n_shifts, n_z, C, H, W), on the CPU. A is the
    d x K matrix (shift s * a_k) or the arrays of an export (the exact shift of its model)."""
    G.eval()
    dev = next(iter([*G.parameters(), *G.buffers()]), torch.empty(0)).device  # the phantom has buffers only
    fn, K = shift_fn(A), np.asarray(as_arrays(A)["A"]).shape[1]
    z = z.to(dev)
    dirs = list(range(K)) if directions is None else list(directions)
    s = torch.as_tensor(list(shifts), dtype=torch.float32, device=dev)
    k = torch.as_tensor(dirs, device=dev).repeat_interleave(len(s))
    delta = fn(k, s.repeat(len(dirs))).reshape(len(dirs), len(s), -1)  # D x S x d
    zs = z[None, None] + delta[:, :, None, :]  # D x S x N x d
    flat = zs.reshape(-1, z.shape[1])
    out = torch.cat([G(flat[i:i + batch]).cpu() for i in range(0, flat.shape[0], batch)])
    return out.reshape(len(dirs), len(s), z.shape[0], *out.shape[1:])
