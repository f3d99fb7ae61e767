"""The generators stage's export: one weights-only file per generator kind, which the
directions stage, the reporter and the API read back (none may import the training code).
`read_generator` gives the stored record, `build_generator` a model from a record's parts (also
from the object store), `load_exported` the whole model, `load_generator` its z -> image module."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from torch import nn

WEIGHTS = "generator.pt"
METRICS = "metrics.json"


def save_generator(path: str | os.PathLike, kind: str, state_dict: dict, epoch: int, config_json: str) -> None:
    torch.save({"model": state_dict, "kind": kind, "epoch": epoch, "config": config_json}, path)


def write_export(out: Path, kind: str, state_dict: dict, epoch: int, config_json: str, summary: dict) -> dict:
    """out/<kind>/: the weights and their metrics.json, written in a temporary folder and moved
    into place whole, so a kind whose metrics.json exists is complete and a rerun skips it (the
    generators stage, a fixed kind, and a search trial's own training all export this way).
    Returns the record as a rerun reads it back."""
    dest, tmp = out / kind, out / f".{kind}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_generator(tmp / WEIGHTS, kind, state_dict, epoch, config_json)
    (tmp / METRICS).write_text(json.dumps(summary, indent=1))
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return json.loads((dest / METRICS).read_text())


def read_generator(folder: str | os.PathLike, kind: str) -> dict:
    """The saved record ({model, kind, epoch, config}); a one-line ConfigError naming the file and
    the fix when it is missing or unreadable (a copy cut short, a disk filled up)."""
    from raylatent.errors import ConfigError

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
    _check_config(path, record, kind)
    return record


MAX_PARAMETERS = 1_000_000_000  # 4 GB of fp32 weights: far above the paper's networks (DCGAN ~50 M, VAE 30 M)


def _check_config(path: Path, record: dict, kind: str) -> None:
    """A checkpoint's configuration is validated and its network sized on the meta device (no
    memory) before anything is allocated: a file asking for an absurd width is refused."""
    from raylatent.errors import ConfigError
    from raylatent.models import make_generator_from

    try:
        cfg = generators_config(json.loads(record["config"]))
        with torch.device("meta"):
            n = sum(p.numel() for p in make_generator_from(kind, cfg).parameters())
    except ConfigError as e:
        raise ConfigError(f"{path}: its configuration is invalid ({e}); delete {path.parent} and retrain") from None
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise ConfigError(f"{path}: unreadable configuration ({type(e).__name__}: {e}); delete {path.parent} "
                          f"and retrain") from None
    if n > MAX_PARAMETERS:
        raise ConfigError(f"{path}: its configuration asks for {n:,} parameters (limit {MAX_PARAMETERS:,}); "
                          f"not loading it")


def generators_config(config: dict):
    """A checkpoint's stored configuration as a validated GeneratorsConfig (keys this version does
    not know are dropped; `fid_weights` names a file on the machine that trained it)."""
    import dataclasses

    from raylatent.models.config import config_class

    cls = config_class()
    known = {f.name for f in dataclasses.fields(cls)} - {"fid_weights"}
    return cls(**{k: v for k, v in config.items() if k in known})


def build_generator(kind: str, config: dict, state_dict: dict) -> nn.Module:
    """The whole model (the VAE with its encoder) from a generators configuration, in eval mode."""
    from raylatent.models import make_generator_from

    model = make_generator_from(kind, generators_config(config))
    model.load_state_dict(state_dict)
    return model.eval()


def load_exported(folder: str | os.PathLike, kind: str) -> nn.Module:
    """The whole exported model (the VAE with its encoder), weights only, in eval mode."""
    record = read_generator(folder, kind)
    return build_generator(kind, json.loads(record["config"]), record["model"])


def load_generator(folder: str | os.PathLike, kind: str) -> nn.Module:
    """A run's generator as its z -> image module (the VAE's decoder), weights only, in eval
    mode: what every reader of a run samples from (the API, the renders, the benchmarks)."""
    from raylatent.models import as_generator

    return as_generator(load_exported(folder, kind)).eval()
