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


MAX_GRID_BYTES = 1 << 20     # a grid is a page of settings; the shipped ones are under 10 KB
MAX_YAML_NODES = 100_000     # values after every alias is expanded (an alias bomb expands to billions)


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (a second `generators:` section would
    silently replace the first)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # <<: *defaults: what it brings may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                again = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(None, None, f"a key that is not text or a number ({key!r})",
                                                        key_node.start_mark) from None
            if again:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _expanded_size(node, memo: dict) -> int:
    """How many values `node` stands for once its aliases are copied out (shared nodes counted
    once per use, each node's count computed once)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a cycle counts once (safe_load builds it as a shared object)
    if isinstance(node, yaml.MappingNode):
        n = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        n = 1 + sum(_expanded_size(v, memo) for v in node.value)
    else:
        n = 1
    memo[id(node)] = n
    if n > MAX_YAML_NODES:
        raise yaml.YAMLError(f"more than {MAX_YAML_NODES} values once its aliases are expanded")
    return n


def read_yaml(text: str):
    """safe_load, with aliases bounded (MAX_YAML_NODES after expansion) and duplicate keys refused."""
    node = yaml.compose(text, Loader=_UniqueKeyLoader)
    if node is None:
        return None
    _expanded_size(node, {})
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def _set(tree: dict, dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {k} is not a section")
    try:
        node[keys[-1]] = read_yaml(raw)
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
    if not p.is_file():  # a FIFO would block the read forever, a folder cannot be read
        raise ConfigError(f"--grid {name_or_path}: not a regular file; give a grid .yaml file")
    if p.stat().st_size > MAX_GRID_BYTES:
        raise ConfigError(f"--grid {p}: {p.stat().st_size} bytes, over the {MAX_GRID_BYTES} a grid file may have")
    try:
        tree = read_yaml(p.read_text()) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text; a grid is a YAML file") from None
    except RecursionError:
        raise ConfigError(f"{p}: nested too deeply to be a grid") from None
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
    name = tree.get("name", p.stem)
    name = str(name) if isinstance(name, int) and not isinstance(name, bool) else name  # name: 2024
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{p}: name {name!r}: expected a text name (one folder name)")
    return Grid(name=name, **sections)
