"""A grid's `report:` section: what the report shows and how claims are resolved."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from raylatent.discovery.renders import EXPLORER_DIRECTIONS
from raylatent.errors import ConfigError, is_number as _is_number

SEED_SPREAD = {"rca": 0.07, "ls": 0.03}


@dataclass
class ReportConfig:
    shifts: tuple = (-6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0)
    windows: tuple = ({"name": "lung", "center": -600, "width": 1500},
                      {"name": "mediastinal", "center": 40, "width": 400})
    z_direction: int = -1        # Fig 8 direction: -1 = the automatic z label, else this index
    gif_dirs_per_file: int = 10
    max_chart_rows: int = 32     # rows per direction-chart page
    # directions per configuration in explorer.html (found and labelled ones first): at paper scale
    # (128^2, 30 configurations) each one is a sprite of 4 latents x 9 shifts per window
    explorer_directions: int = EXPLORER_DIRECTIONS
    # with one seed per cell, a claim's difference smaller than this is "not resolved": the
    # seed-to-seed range measured on the smoke generators (benchmarks/seed-spread-smoke.json); with several seeds the cells'
    # own 95% interval is used instead
    seed_spread: dict = field(default_factory=lambda: dict(SEED_SPREAD))

    def __post_init__(self) -> None:
        """Checked at load, so a typo fails in the first second and not after the whole study."""
        if (not isinstance(self.shifts, (list, tuple)) or not 1 <= len(self.shifts) <= 32
                or not all(_is_number(x) and math.isfinite(x) and abs(x) <= 100 for x in self.shifts)):
            raise ConfigError(f"report.shifts: {self.shifts!r} (a list of 1 to 32 finite numbers within +-100, "
                              "e.g. [-6, 0, 6])")
        if not isinstance(self.windows, (list, tuple)) or not 1 <= len(self.windows) <= 8:
            raise ConfigError(f"report.windows: {self.windows!r} (a list of 1 to 8 windows, e.g. "
                              "[{name: lung, center: -600, width: 1500}])")
        for w in self.windows:
            if not (isinstance(w, dict) and set(w) == {"name", "center", "width"} and isinstance(w["name"], str)
                    and 0 < len(w["name"]) <= 40 and _is_number(w["center"]) and _is_number(w["width"])
                    and math.isfinite(w["center"]) and math.isfinite(w["width"]) and w["width"] > 0):
                raise ConfigError(f"report.windows: {w!r} (need name, center and width > 0 in HU, e.g. "
                                  "{name: lung, center: -600, width: 1500})")
        z = self.z_direction
        if isinstance(z, bool) or not isinstance(z, int) or not -1 <= z < 10_000:
            raise ConfigError(f"report.z_direction: {z!r} (-1 for the automatic z label, else a direction index)")
        spread = self.seed_spread
        if not (isinstance(spread, dict) and set(spread) == {"rca", "ls"}
                and all(_is_number(v) and v >= 0 for v in spread.values())):
            raise ConfigError(f"report.seed_spread: {spread!r} (need rca and ls, each >= 0, e.g. {{rca: 0.05, ls: 0.02}})")
        n = self.explorer_directions
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"report.explorer_directions: {n!r} (directions per configuration in explorer.html: "
                              "an integer, at least 1)")
        if n > 1000:
            raise ConfigError(f"report.explorer_directions: {n} (at most 1000)")
        for name in ("gif_dirs_per_file", "max_chart_rows"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1000:
                raise ConfigError(f"report.{name}: {v!r} (a whole number from 1 to 1000)")
