"""A generator trained in one process, with no Ray: what a search trial does when the search
samples `generators` fields (each sample needs generators of its own, and a Ray Train run per
Tune trial would hold a second set of workers and cost ~20 s to start).

The epoch (`run_epoch`) and its held-out measurement (`HeldOut`: FID, the kind's own metrics)
are the DDP loop's own, so both train alike; what differs is one worker: a full shuffle of the
train split every epoch (seeded like a DDP worker's, `epoch_seed`) and `batch_size` slices per
step, where the grid's generators stage steps on `batch_size x num_workers`. A search compares
its samples with the grid's default trained the same way, never with the stage's generators.

Resumable: the latest full state (modules and optimisers, weights only) after every epoch, and
the model of each of the last `keep_last` epochs, from which the lowest FID is exported exactly
as the generators stage does (models/export.py), with its metrics.json.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from raylatent.errors import ConfigError
from raylatent.models.config import GeneratorsConfig
from raylatent.models import kind_of, make_generator_from
from raylatent.models.export import METRICS, write_export
from raylatent.train.loops import HISTORY, STATE, HeldOut, run_epoch
from raylatent.train.shuffle import epoch_seed

PROGRESS = ".progress"


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _snapshot(folder: Path, epoch: int) -> Path:
    return folder / f"epoch-{epoch:05d}.pt"


def train_in_process(kind: str, cfg: GeneratorsConfig, train_images: torch.Tensor, test_images: torch.Tensor,
                     folder: Path, device: str = "cpu", log=None) -> dict:
    """Train `kind` on `train_images` (N x 1 x H x W, [-1, 1]) and export the best-FID model of
    the last `keep_last` epochs to folder/<kind>/; returns its metrics.json record. A rerun
    returns the record; an interrupted run continues from its last finished epoch."""
    dest, work = folder / kind, folder / f".{kind}{PROGRESS}"
    if (dest / METRICS).exists():
        shutil.rmtree(work, ignore_errors=True)  # killed after the export, before this was removed
        return json.loads((dest / METRICS).read_text())
    if not kind_of(kind).trainable:
        raise ConfigError(f"generators: {kind} is fixed by construction; nothing to train")
    n = len(train_images)
    if n < cfg.batch_size:
        raise ConfigError(f"generators.batch_size {cfg.batch_size}: the train split has {n} slices (fewer than one "
                          f"batch); lower generators.batch_size or add data")
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = make_generator_from(kind, cfg)
    training = kind_of(kind).training(model, cfg)
    for m in training.modules.values():
        m.to(device)
    start, history = 0, []
    if (work / STATE).exists():
        state = torch.load(work / STATE, map_location=device, weights_only=True)
        for name, part in {**training.modules, **training.optimizers}.items():
            part.load_state_dict(state[name])
        history = json.loads((work / HISTORY).read_text())[: int(state["epoch"]) + 1]
        start = int(state["epoch"]) + 1
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + start)
    held = HeldOut(cfg, test_images, device)
    for epoch in range(start, cfg.epochs):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch, 0)))
        batches = ({"image": train_images[order[i:i + cfg.batch_size], 0]}
                   for i in range(0, n - cfg.batch_size + 1, cfg.batch_size))  # full batches, as the DDP loop
        metrics = run_epoch(training, batches, cfg, epoch, gen, device)
        metrics.update(held.measure(model, training)[0], started_at_epoch=start)
        history.append(metrics)
        _atomic_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, _snapshot(work, epoch))
        stale = _snapshot(work, epoch - cfg.keep_last)
        if stale.exists():
            stale.unlink()
        (work / f".{HISTORY}").write_text(json.dumps(history))
        os.replace(work / f".{HISTORY}", work / HISTORY)
        _atomic_save({**{k: m.state_dict() for k, m in training.modules.items()},
                      **{k: o.state_dict() for k, o in training.optimizers.items()}, "epoch": epoch}, work / STATE)
        if log is not None:
            log(f"{kind} epoch {epoch + 1}/{cfg.epochs}: FID {metrics['fid']:.2f}")
    from raylatent.train.stage import pick_best

    kept = [(e, m) for e, m in ((m["epoch"], m) for m in history[-cfg.keep_last:]) if _snapshot(work, e).exists()]
    epoch, metrics = pick_best(kept)
    weights = torch.load(_snapshot(work, epoch), map_location="cpu", weights_only=True)
    record = write_export(folder, kind, weights, epoch, json.dumps(asdict(cfg)), {
        "kind": kind, "chosen_epoch": int(epoch), "fid": metrics["fid"], "fid_network": metrics.get("fid_network"),
        "candidates": [{"epoch": e, "fid": m["fid"]} for e, m in kept], "history": history,
        "config": asdict(cfg), "trained": "in-process"})
    shutil.rmtree(work)  # resume needs none of it once the export is written
    return record


__all__ = ["train_in_process"]
