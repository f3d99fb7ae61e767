"""Learned directions as a plain file, and traversals for the reporter."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn


def save_directions(path: str | os.PathLike, A: torch.Tensor, config: dict) -> Path:
    """npz with A (d x K, unit columns), K, d and the configuration as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    A = A.detach().cpu().numpy().astype(np.float32)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.npz")
    np.savez(tmp, A=A, K=A.shape[1], d=A.shape[0], config=json.dumps(config, sort_keys=True))
    os.replace(tmp, path)
    return path


def load_directions(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    with np.load(path, allow_pickle=False) as f:
        return f["A"], json.loads(str(f["config"]))


@torch.no_grad()
def traversal(G: nn.Module, A: torch.Tensor | np.ndarray, z: torch.Tensor, shifts, directions=None,
              batch: int = 256) -> torch.Tensor:
    """Images G(z + s * a_k): tensor (n_dirs, n_shifts, n_z, C, H, W), on the CPU."""
    G.eval()
    dev = next(G.parameters()).device
    A = torch.as_tensor(A, dtype=torch.float32, device=dev)
    z = z.to(dev)
    dirs = list(range(A.shape[1])) if directions is None else list(directions)
    s = torch.as_tensor(list(shifts), dtype=torch.float32, device=dev)
    zs = z[None, None] + s[None, :, None, None] * A.T[dirs][:, None, None, :]  # D x S x N x d
    flat = zs.reshape(-1, z.shape[1])
    out = torch.cat([G(flat[i:i + batch]).cpu() for i in range(0, flat.shape[0], batch)])
    return out.reshape(len(dirs), len(s), z.shape[0], *out.shape[1:])
