"""What every Tune trainable of discovery does (the directions stage's trials and the search's):
the generators from the object store, the trial's device, and the trial folder's resume, saves,
curve and record.

A trial keeps its state in its own folder and resumes only from it (a weights-only checkpoint,
JSON and npz), never from Tune's pickles; its record is written last and marks it finished, after
which its checkpoint drops the optimiser states (a trial with a record never resumes).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from raylatent.discovery.config import DirectionsConfig
from raylatent.discovery.export import save_directions
from raylatent.discovery.records import CURVE, DIRECTIONS, RECORD, read_json, write_json
from raylatent.discovery.runner import load_checkpoint, save_checkpoint, slim_checkpoint
from raylatent.discovery.step import Discovery


def generator_weights(generators_dir: Path, kinds, digests: dict | None = None) -> tuple[dict, dict, dict]:
    """Every generator's weights (numpy, for the object store), its configuration and its digest
    (hashed here only when the caller has not already: a paper-scale checkpoint is a long read)."""
    from raylatent.models.export import WEIGHTS, read_generator
    from raylatent.stages import file_digest

    weights, gcfg, digests = {}, None, dict(digests or {})
    for kind in kinds:
        state = read_generator(generators_dir, kind)
        weights[kind] = {k: v.numpy() for k, v in state["model"].items()}
        gcfg = json.loads(state["config"])
        if kind not in digests:
            digests[kind] = file_digest(generators_dir / kind / WEIGHTS)
    return weights, gcfg, digests


def generator_from_store(kind: str, state: dict, gcfg: dict) -> torch.nn.Module:
    """A generator's z -> image module from its weights in the object store (read-only numpy)."""
    from raylatent.models import as_generator
    from raylatent.models.export import build_generator

    return as_generator(build_generator(kind, gcfg, {k: torch.from_numpy(np.array(v)) for k, v in state.items()}))


def trial_device(d: DirectionsConfig) -> str:
    """cuda when the trial holds a GPU, else the CPU limited to the trial's share of cores."""
    if torch.cuda.is_available() and d.gpus_per_trial > 0:
        return "cuda"
    torch.set_num_threads(max(1, int(d.cpus_per_trial)))
    return "cpu"


def directions_of(disc: Discovery) -> dict:
    """The trial's direction set as its exported arrays, on the CPU."""
    return {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in disc.A.arrays().items()}


def keep_earlier_trials(trials_dir: Path, stage: str) -> None:
    """A run without --resume over a folder where trials already finished or checkpointed is
    refused (one line naming --resume), never started over: that work may be hours of GPU time."""
    from raylatent.errors import ConfigError

    if not Path(trials_dir).is_dir():
        return
    folders = [p for p in Path(trials_dir).iterdir() if p.is_dir()]
    done = sum((p / RECORD).is_file() for p in folders)
    started = sum((p / CURVE).is_file() and not (p / RECORD).is_file() for p in folders)
    if done or started:
        raise ConfigError(f"{stage}: {trials_dir.parent} holds {done} finished and {started} started trials of an "
                          f"earlier run of this grid; rerun with --resume to keep them (or delete that folder to "
                          f"start over)")


class TrialFolder:
    """A trial's own folder: its curve, and per discovery run (one, or a search's replicates, each
    in a sub-folder) a checkpoint and its directions; the record last."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def resume(self, disc: Discovery, sub: str = "") -> bool:
        """Continue `disc` from its own last checkpoint, if there is one."""
        return load_checkpoint(disc, self.path / sub)

    def curve(self, upto: int) -> list[dict]:
        """The curve so far, up to the step the checkpoints reached (a kill in between re-evaluates)."""
        return [c for c in read_json(self.path / CURVE, []) if c["step"] <= upto]

    def write_curve(self, curve: list[dict]) -> None:
        write_json(self.path / CURVE, curve)

    def save(self, disc: Discovery, provenance: dict, sub: str = "", curve: list[dict] | None = None) -> dict:
        """The directions (with the configuration that made them), the `curve` if given, then the
        checkpoint (a kill in between resumes before the curve's last evaluation and makes it
        again, never skips it); returns the directions' arrays."""
        arrays = directions_of(disc)
        save_directions(self.path / sub / DIRECTIONS, arrays, {**disc.cfg.to_dict(), **provenance})
        if curve is not None:
            self.write_curve(curve)
        save_checkpoint(disc, self.path / sub)
        return arrays

    def finish(self, record: dict, subs=("",)) -> None:
        """The record (last: it marks the trial done), then the checkpoints without optimiser states."""
        write_json(self.path / RECORD, record)
        for sub in subs:
            slim_checkpoint(self.path / sub)


__all__ = ["TrialFolder", "directions_of", "keep_earlier_trials", "generator_from_store", "generator_weights", "trial_device"]
