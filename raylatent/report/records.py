"""What the reporter reads from a run directory, checked before anything is drawn.

A run directory may come from someone else. Every path it names must stay inside it, every record
must have the fields and types the report uses (a one-line error names the file and the field
otherwise), and free text (data source, network names, hardware) is escaped before it reaches
Markdown or HTML. Trial names are rebuilt from their fields, so they cannot carry markup or path
separators into headings and asset file names.
"""
from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

from raylatent.errors import ConfigError
from raylatent.data.factors import FACTORS
from raylatent.discovery.records import NO_RECONSTRUCTOR, Trial
from raylatent.interpret.labels import LABEL_NAMES as LABELS

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def esc(text) -> str:
    """Free text from a run file, safe in Markdown and in the HTML it renders to. Quotes become
    named entities (`&quot;`, `&apos;`): a numeric one's `#` would be escaped for Markdown below and
    show as text (a title's "paper's" read "paper&\\#x27;s")."""
    quoted = html.escape(str(text), quote=False).replace('"', "&quot;").replace("'", "&apos;")
    return _MD_SPECIAL.sub(r"\\\1", quoted).replace("\n", " ")


def inside(base: Path, rel, what: str, source: Path) -> Path:
    """base / rel, refusing anything that resolves outside base (absolute paths, '..', links)."""
    if not isinstance(rel, str) or not rel:
        raise ConfigError(f"{source}: {what} {rel!r} is not a relative path")
    base = base.resolve()
    p = (base / rel).resolve()
    if p != base and base not in p.parents:
        raise ConfigError(f"{source}: {what} {rel!r} points outside {base}; refusing to follow it")
    return p


MAX_RUN_FILE_BYTES = 64 << 20  # the largest JSON a run writes (results.json at K = 100 x 44 trials) is ~2 MB


def read_json_in(path: Path, base: Path, default=None, rerun: str = "rerun python -m raylatent.ablate"):
    """A run file, read only when it resolves inside `base` (a link out of the run is refused), is a
    regular file under MAX_RUN_FILE_BYTES and parses as JSON; `default` when it is absent. Every
    failure is one line naming the file."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return default
    b = Path(base).resolve()
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ConfigError(f"{path}: a dangling or looping link; {rerun}") from None
    if real != b and b not in real.parents:
        raise ConfigError(f"{path}: points outside {b}; refusing to follow it")
    if not real.is_file():
        raise ConfigError(f"{path}: not a regular file; {rerun}")
    if real.stat().st_size > MAX_RUN_FILE_BYTES:
        raise ConfigError(f"{path}: {real.stat().st_size} bytes, over the {MAX_RUN_FILE_BYTES} a run file may have")
    try:
        return json.loads(real.read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise ConfigError(f"{path}: not readable as JSON ({type(e).__name__}); {rerun}") from None


def _number_or_none(v) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))


def load_records(path: Path, base: Path | None = None) -> list[dict]:
    """results.json, validated: one-line errors for a malformed file, never a traceback. Read only
    inside `base` (default: its own folder)."""
    records = read_json_in(path, base or Path(path).parent, rerun="rerun the directions stage")
    if records is None:
        raise ConfigError(f"{path}: missing (the directions stage did not finish; rerun with --resume)")
    if not isinstance(records, list):
        raise ConfigError(f"{path}: expected a list of trial records")
    from raylatent.discovery.methods import METHODS
    from raylatent.models import kind_names
    from raylatent.models.reconstructors import RECONSTRUCTORS

    kinds = {"generator": set(kind_names()), "reconstructor": {*RECONSTRUCTORS, NO_RECONSTRUCTOR},
             "deformator": set(METHODS)}
    for i, r in enumerate(records):
        where = f"{path}: record {i}"
        if not isinstance(r, dict):
            raise ConfigError(f"{where}: not a mapping")
        for key, allowed in kinds.items():
            if r.get(key) not in allowed:
                raise ConfigError(f"{where}: {key} {r.get(key)!r} (expected one of {sorted(allowed)})")
        for key in ("K", "seed"):
            if not (isinstance(r.get(key), int) and not isinstance(r.get(key), bool)):
                raise ConfigError(f"{where}: {key} {r.get(key)!r} (expected a whole number)")
        for key in ("rca", "ls", "shift_mae", "gamma", "wall_s"):
            if not _number_or_none(r.get(key)):
                raise ConfigError(f"{where}: {key} {r.get(key)!r} (expected a finite number or null)")
        if r["reconstructor"] != NO_RECONSTRUCTOR and r.get("rca") is None:
            raise ConfigError(f"{where}: a trained trial without rca")
        if not (r.get("iterations") is None or isinstance(r.get("iterations"), int)):
            raise ConfigError(f"{where}: iterations {r.get('iterations')!r} (expected a whole number)")
        trial = Trial.from_dict(r)
        r["trial"] = trial.name
        if r.get("directions") != trial.directions_file:
            raise ConfigError(f"{where}: directions {r.get('directions')!r} (expected {trial.directions_file})")
        if not isinstance(r.get("factors") or {}, dict):
            raise ConfigError(f"{where}: factors must be a mapping")
        for name, f in (r.get("factors") or {}).items():
            if name not in FACTORS:  # names reach headings, tables and the explorer: only the known ones
                raise ConfigError(f"{where}: factor {esc(name)[:60]!r} (expected one of {list(FACTORS)})")
            if not (isinstance(f, dict) and _number_or_none(f.get("rho")) and f.get("rho") is not None
                    and _number_or_none(f.get("purity")) and f.get("purity") is not None
                    and isinstance(f.get("found"), bool) and isinstance(f.get("direction"), int)):
                raise ConfigError(f"{where}: factors.{name} {f!r} (expected direction, rho, purity, found)")
        if "labels" in r and not (isinstance(r["labels"], list) and all(x in LABELS for x in r["labels"])):
            raise ConfigError(f"{where}: labels must be a list of {sorted(LABELS)}")
        truth = r.get("truth")
        if truth is not None and not (isinstance(truth, dict) and all(
                isinstance(truth.get(k, {}), dict) and set(truth.get(k, {})) <= set(FACTORS)
                for k in ("matched_cos", "best_cos"))):
            raise ConfigError(f"{where}: truth must name only the factors {list(FACTORS)}")
    return records


def load_labels(ddir: Path, r: dict) -> dict | None:
    """A trial's labels.json, or None when it has none (an unlabelled run); a damaged one is a
    one-line error naming the file (the direction charts and the explorer both read it)."""
    p = ddir / Path(r["directions"]).parent / "labels.json"
    rerun = "rerun python -m raylatent.ablate to label the directions again"
    lab = read_json_in(p, ddir, rerun=rerun)  # a trials/ link out of the run is refused here
    if lab is None:
        return None
    if not (isinstance(lab, dict) and isinstance(lab.get("directions"), list)):
        raise ConfigError(f"{p}: damaged labels ({rerun})")
    return lab
