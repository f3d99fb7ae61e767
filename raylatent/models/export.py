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
    """The saved record ({model, kind, epoch, config}); FileNotFoundError when absent."""
    return torch.load(Path(folder) / kind / WEIGHTS, map_location="cpu", weights_only=True)


def build_generator(kind: str, config: dict, state_dict: dict) -> nn.Module:
    """The whole model (the VAE with its encoder) from a generators configuration, in eval mode."""
    from raylatent.models import make_generator_from

    model = make_generator_from(kind, SimpleNamespace(**config))
    model.load_state_dict(state_dict)
    return model.eval()


def load_exported(folder: str | os.PathLike, kind: str) -> nn.Module:
    record = read_generator(folder, kind)
    return build_generator(kind, json.loads(record["config"]), record["model"])
