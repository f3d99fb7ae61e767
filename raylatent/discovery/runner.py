"""Run discovery for N steps with periodic held-out metrics and resumable checkpoints.

A checkpoint holds A, R, both optimisers, the step and the sampling RNG state, written
atomically; resuming from it reproduces an uninterrupted run's numbers exactly (on one device)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import torch

from raylatent.discovery.evaluate import evaluate
from raylatent.discovery.step import Discovery

CKPT = "discovery.pt"


def save_checkpoint(disc: Discovery, folder: str | os.PathLike) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{CKPT}.{os.getpid()}"
    torch.save(disc.state_dict(), tmp)
    os.replace(tmp, folder / CKPT)
    return folder / CKPT


def slim_checkpoint(folder: str | os.PathLike) -> Path | None:
    """A finished run's checkpoint without its optimiser states (two thirds of it with Adam):
    what the trained A and R need to be measured again, not what further steps would. Called
    once the run's record exists, since a run with a record is never resumed."""
    path = Path(folder) / CKPT
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("opt_R") is None and not state.get("opt_A"):
        return path
    tmp = path.with_name(f".{CKPT}.{os.getpid()}")
    torch.save({**state, "opt_R": None, "opt_A": None}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(disc: Discovery, folder: str | os.PathLike) -> bool:
    path = Path(folder) / CKPT
    if not path.exists():
        return False
    disc.load_state_dict(torch.load(path, map_location=disc.device, weights_only=True))
    return True


def run(disc: Discovery, steps: int, eval_every: int = 0, eval_n: int = 512,
        on_report: Callable[[dict, bool], None] | None = None,
        checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int = 0) -> list[dict]:
    """Step until `steps` total (a resumed `disc` continues from its step count).

    Every `eval_every` steps (and at the end) held-out RCA/Ls are measured and passed to
    `on_report(metrics, checkpointed)`; a checkpoint is written every `checkpoint_every` steps."""
    history: list[dict] = []
    t0 = time.perf_counter()
    last_train: dict = {}
    while disc.step_count < steps:
        last_train = disc.step()
        s = disc.step_count
        do_eval = (eval_every and s % eval_every == 0) or s == steps
        do_ckpt = checkpoint_dir is not None and ((checkpoint_every and s % checkpoint_every == 0) or s == steps)
        if do_ckpt:
            save_checkpoint(disc, checkpoint_dir)
        if do_eval:
            m = {"step": s, **last_train, **evaluate(disc, n=eval_n), "wall_s": time.perf_counter() - t0}
            history.append(m)
            if on_report:
                on_report(m, bool(do_ckpt))
    return history
