"""Where each stage's outputs live: `RUN_DIR/<stage>/<key>/`, the key content-addressed.

A key is the hash of what the stage consumes and of its own science: the generators' key holds
the ingest manifest's fingerprint (settings + every source file's size and mtime), the
directions' key the digests of the generator weights they use, and each the code version of its
stage. Scheduling settings (workers, CPUs, GPUs, retries) are left out, so the same study moved to
other hardware reuses its results, and other data never does. `RUN_DIR/stages.json` keeps the
inputs of the last key per stage, so a rerun that must redo a stage says why in one line.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

# settings that change where and how fast a stage runs, not what it computes
SCHEDULING = {  # (and `replicates`: how many copies a grid trains, not what one of them is)
    "generators": frozenset({"num_workers", "use_gpu", "cpus_per_worker", "gpus_per_worker", "max_failures",
                             "replicates"}),
    "directions": frozenset({"cpus_per_trial", "gpus_per_trial", "max_failures"}),
}
LEDGER = "stages.json"


def science(stage: str, settings: dict) -> dict:
    """A stage's settings without its scheduling fields."""
    return {k: v for k, v in settings.items() if k not in SCHEDULING.get(stage, ())}


def stage_key(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:12]


def file_digest(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def why(old: dict, new: dict) -> str:
    """The first input that differs, in words."""
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if a.get(k) != b.get(k):
                    return f"{name} changed ({k}: {_short(a.get(k))} -> {_short(b.get(k))})"
        return f"{name} changed ({_short(a)} -> {_short(b)})"
    return "inputs changed"


def _short(v) -> str:
    s = json.dumps(v, sort_keys=True, default=str)
    return s if len(s) <= 40 else s[:37] + "..."


def keyed_folder(run_dir: Path, stage: str, inputs: dict, log=print) -> Path:
    """The stage's folder for these inputs; records them, and says why when it differs from the
    last run's folder and has to be made anew."""
    key = stage_key(inputs)
    folder = run_dir / stage / key
    path = run_dir / LEDGER
    try:
        ledger = json.loads(path.read_text())
    except (OSError, ValueError):
        ledger = {}
    prev = ledger.get(stage)
    if prev and prev.get("key") != key and not folder.exists():
        log(f"{stage}: running again: {why(prev.get('inputs', {}), inputs)}")
    ledger[stage] = {"key": key, "inputs": inputs}
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{LEDGER}.{os.getpid()}")
    tmp.write_text(json.dumps(ledger, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)
    return folder
