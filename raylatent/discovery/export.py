"""Direction sets as a plain file (npz, no pickles), and traversals for the reporter."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from raylatent.models.directions import MODEL, as_arrays, rebuild


def save_directions(path: str | os.PathLike, A: torch.Tensor | dict, config: dict) -> Path:
    """npz with A (d x K, unit columns), K, d, the configuration as JSON, and whatever else the
    set's shift needs (`Directions.arrays()`: e.g. proj's W and b, and the model's name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(str(v)) if k == MODEL else torch.as_tensor(v).detach().cpu().numpy().astype(np.float32)
              for k, v in as_arrays(A).items()}
    d, K = arrays["A"].shape
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.npz")
    np.savez(tmp, **arrays, K=K, d=d, config=json.dumps(config, sort_keys=True))
    os.replace(tmp, path)
    return path


def load_directions(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """An export's d x K matrix and the configuration that made it."""
    from raylatent.data.npz import load_npz
    from raylatent.errors import ConfigError

    f = load_npz(path, what="a direction export")
    try:
        return f["A"], json.loads(str(f["config"]))
    except (KeyError, ValueError):
        raise ConfigError(f"{path}: not a direction export (no A or config)") from None


def load_shift_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """What `rebuild` needs of an export: A, the set's own arrays (W and b for the authors' proj
    deformator) and its model's name."""
    from raylatent.data.npz import load_npz

    return {k: v for k, v in load_npz(path, what="a direction export").items() if k not in ("K", "d", "config")}


@torch.no_grad()
def traversal(G: nn.Module, A: torch.Tensor | np.ndarray | dict, z: torch.Tensor, shifts, directions=None,
              batch: int = 256) -> torch.Tensor:
    """Images G(z + shift(z, k, s)): tensor (n_dirs, n_shifts, n_z, C, H, W), on the CPU. A is a
    direction set, its arrays (an export: the exact shift of its model) or a d x K matrix."""
    G.eval()
    dev = next(iter([*G.parameters(), *G.buffers()]), torch.empty(0)).device  # the phantom has buffers only
    fn = rebuild(A).to(dev)
    z = z.to(dev)
    dirs = list(range(fn.K)) if directions is None else list(directions)
    s = torch.as_tensor(list(shifts), dtype=torch.float32, device=dev)
    n, d = z.shape
    base = z[None, None].expand(len(dirs), len(s), n, d).reshape(-1, d)  # D x S x N latents, flat
    k = torch.as_tensor(dirs, device=dev)[:, None, None].expand(len(dirs), len(s), n).reshape(-1)
    eps = s[None, :, None].expand(len(dirs), len(s), n).reshape(-1)
    flat = base + fn(base, k, eps)
    out = torch.cat([G(flat[i:i + batch]).cpu() for i in range(0, flat.shape[0], batch)])
    return out.reshape(len(dirs), len(s), z.shape[0], *out.shape[1:])
