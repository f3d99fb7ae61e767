"""The generators stage's export: one weights-only file per generator kind, which the
directions stage and the reporter read back (neither may import the training code)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

WEIGHTS = "generator.pt"


def save_generator(path: str | os.PathLike, kind: str, state_dict: dict, epoch: int, config_json: str) -> None:
    torch.save({"model": state_dict, "kind": kind, "epoch": epoch, "config": config_json}, path)


def read_generator(folder: str | os.PathLike, kind: str) -> dict:
    """The saved record ({model, kind, epoch, config}); a one-line ConfigError naming the file and
    the fix when it is missing or unreadable (a copy cut short, a disk filled up)."""
    from raylatent.config import ConfigError

    path = Path(folder) / kind / WEIGHTS
    if not path.exists():
        raise ConfigError(f"{path}: no generator checkpoint (run the generators stage: python -m raylatent.ablate)")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(record, dict) or not {"model", "config"} <= set(record):
            raise ValueError("not a raylatent generator export")
    except Exception as e:  # torch raises RuntimeError, pickle errors, EOFError... for a damaged file
        reason = str(e).strip().splitlines()[0].split(". ")[0][:160] if str(e).strip() else type(e).__name__
        # directions learned on the old generator would be stale: they go too (run/generators/<key>/<kind>)
        run = path.parents[3] if len(path.parents) > 3 and path.parents[2].name == "generators" else None
        stale = f" and {run / 'directions'}" if run else ""
        raise ConfigError(f"{path}: unreadable generator checkpoint ({reason}); delete {path.parent}{stale} and "
                          f"rerun python -m raylatent.ablate to train it again") from None
    return record


def build_generator(kind: str, config: dict, state_dict: dict) -> nn.Module:
    """The whole model (the VAE with its encoder) from a generators configuration, in eval mode."""
    from raylatent.models import make_generator_from

    model = make_generator_from(kind, SimpleNamespace(**config))
    model.load_state_dict(state_dict)
    return model.eval()


def load_exported(folder: str | os.PathLike, kind: str) -> nn.Module:
    record = read_generator(folder, kind)
    return build_generator(kind, json.loads(record["config"]), record["model"])
