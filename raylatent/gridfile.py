"""Reading a grid YAML into a validated `Grid`: unknown keys, wrong types and bad values are
one-line errors naming the key (and the file), never a traceback; `--set key.sub=value`
overrides are applied before validation."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from raylatent.config import (GRIDS_DIR, ConfigError, DataConfig, DirectionsConfig, GeneratorsConfig, Grid,
                              MonitorConfig, ReportConfig)
from raylatent.errors import is_number as _is_number
from raylatent.models.config import config_class

_SECTIONS = {"data": DataConfig, "generators": GeneratorsConfig, "directions": DirectionsConfig,  # generators: config_class()
             "report": ReportConfig, "monitor": MonitorConfig}


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(names))})")
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    for k, v in values.items():
        t = str(types[k])
        if t in ("int", "float") and not _is_number(v):
            raise ConfigError(f"{where}.{k}: expected a number, got {v!r}")
        if t == "int" and isinstance(v, float) and not v.is_integer():
            raise ConfigError(f"{where}.{k}: expected a whole number, got {v!r}")
        if t == "bool" and not isinstance(v, bool):
            raise ConfigError(f"{where}.{k}: expected true/false, got {v!r}")
        if t == "str" and not isinstance(v, str):
            raise ConfigError(f"{where}.{k}: expected a string, got {v!r}")
        if t == "tuple" and not isinstance(v, (list, tuple)):
            raise ConfigError(f"{where}.{k}: expected a list, got {v!r}")
        if t == "dict" and v is not None and not isinstance(v, dict):
            raise ConfigError(f"{where}.{k}: expected a mapping, got {v!r}")
    try:
        return cls(**{k: (int(v) if str(types[k]) == "int" else v) for k, v in values.items()})
    except ConfigError as e:
        raise ConfigError(str(e).replace("generators.", f"{where}.", 1) if where == "generators" else str(e)) from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


def _set(tree: dict, dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {k} is not a section")
    try:
        node[keys[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(f"--set {dotted}={raw}: not a valid YAML value") from None


def load_grid(name_or_path: str, overrides: list[str] | tuple = ()) -> Grid:
    """A grid by name (raylatent/grids/<name>.yaml, linked from ablations/) or path, with `key.sub=value` overrides."""
    p = Path(name_or_path)
    if not p.suffix:
        p = GRIDS_DIR / f"{name_or_path}.yaml"
    if not p.exists():
        known = ", ".join(sorted(x.stem for x in GRIDS_DIR.glob("*.yaml")))
        raise ConfigError(f"--grid {name_or_path}: no such grid ({p}); known: {known}, or a path to a .yaml")
    try:
        tree = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{p}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of sections")
    for ov in overrides:
        if "=" not in ov:
            raise ConfigError(f"--set {ov}: expected key=value, e.g. directions.seeds=[0,1]")
        k, v = ov.split("=", 1)
        _set(tree, k.strip(), v)
    unknown = sorted(set(tree) - set(_SECTIONS) - {"name", "search"})
    if unknown:
        raise ConfigError(f"{p}: unknown section {unknown[0]!r} (known: name, {', '.join(_SECTIONS)}, search)")
    data = _build(DataConfig, tree.get("data", {}) or {}, "data")
    gen_tree = dict(tree.get("generators", {}) or {})
    gen_tree.setdefault("size", data.size)
    sections = {"data": data, "generators": _build(config_class(), gen_tree, "generators")}
    for name in ("directions", "report", "monitor"):
        sections[name] = _build(_SECTIONS[name], tree.get(name, {}) or {}, name)
    if tree.get("search") is not None:  # optional: a grid without it is a plain grid
        from raylatent.search.space import SearchConfig

        sections["search"] = _build(SearchConfig, tree["search"], "search")
    return Grid(name=str(tree.get("name", p.stem)), **sections)
