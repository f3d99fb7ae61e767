"""A grid's `report:` section: what the report shows and how claims are resolved."""
from __future__ import annotations

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
        if not self.shifts or not all(_is_number(x) for x in self.shifts):
            raise ConfigError(f"report.shifts: {list(self.shifts)} (a list of numbers, e.g. [-6, 0, 6])")
        for w in self.windows:
            if not (isinstance(w, dict) and set(w) == {"name", "center", "width"} and isinstance(w["name"], str)
                    and _is_number(w["center"]) and _is_number(w["width"]) and w["width"] > 0):
                raise ConfigError(f"report.windows: {w!r} (need name, center and width > 0 in HU, e.g. "
                                  "{name: lung, center: -600, width: 1500})")
        spread = self.seed_spread
        if not (isinstance(spread, dict) and set(spread) == {"rca", "ls"}
                and all(_is_number(v) and v >= 0 for v in spread.values())):
            raise ConfigError(f"report.seed_spread: {spread!r} (need rca and ls, each >= 0, e.g. {{rca: 0.05, ls: 0.02}})")
        n = self.explorer_directions
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"report.explorer_directions: {n!r} (directions per configuration in explorer.html: "
                              "an integer, at least 1)")
        for name in ("gif_dirs_per_file", "max_chart_rows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"report.{name}: {getattr(self, name)} (must be at least 1)")
