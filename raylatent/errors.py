"""The one error type of bad settings and inputs, and the number checks every config uses: the
ground floor every layer may import."""
from __future__ import annotations

import math


class ConfigError(ValueError):
    """A bad setting; str() is a one-line message naming the setting and the fix."""


def is_number(v) -> bool:
    """YAML's true/false are ints to Python; a config number is never one."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_ranges(obj, where: str, bounds: dict[str, tuple]) -> None:
    """Each named field a finite number in its interval: (lo, hi) closed, or (lo, hi, "(]") /
    "()" / "[)" for open ends. Catches NaN, negatives and absurd sizes at load, so a dry run
    never prints negative hours and a run never allocates gigabytes by a typo."""
    for name, (lo, hi, *spec) in bounds.items():
        v = getattr(obj, name)
        kind = spec[0] if spec else "[]"
        ok = (is_number(v) and math.isfinite(v) and (v > lo if kind[0] == "(" else v >= lo)
              and (v < hi if kind[1] == ")" else v <= hi))
        if not ok:
            raise ConfigError(f"{where}.{name}: {v!r} (must be a number in {kind[0]}{lo}, {hi}{kind[1]})")
