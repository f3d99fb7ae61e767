"""The whole grid: one section per stage, each validated beside what it configures (data/config.py,
models/config.py, discovery/config.py, report/config.py), the monitoring settings, and the checks
across sections. Loading a grid from YAML with `--set` overrides is gridfile.py.

Re-exports every section's config and the error type, so callers above the stages import them here.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from raylatent.data.config import DataConfig, IngestConfig, resolve_salt
from raylatent.discovery.config import DirectionsConfig
from raylatent.errors import ConfigError
from raylatent.models.config import GeneratorsConfig, config_class
from raylatent.monitor import MonitorConfig
from raylatent.report.config import SEED_SPREAD, ReportConfig

__all__ = ["ConfigError", "DataConfig", "DirectionsConfig", "GeneratorsConfig", "Grid", "IngestConfig",
           "MonitorConfig", "ReportConfig", "SEED_SPREAD", "GRIDS_DIR", "resolve_salt", "replicated_kinds"]

GRIDS_DIR = Path(__file__).resolve().parent / "grids"  # shipped in the package; ablations/ links to them

GRID_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass
class Grid:
    name: str = "smoke"
    data: DataConfig = field(default_factory=DataConfig)
    generators: GeneratorsConfig = field(default_factory=lambda: config_class()())
    directions: DirectionsConfig = field(default_factory=DirectionsConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    search: object = None        # a raylatent.search.space.SearchConfig, or None: no search (a plain grid)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and GRID_NAME.fullmatch(self.name) and ".." not in self.name):
            raise ConfigError(f"name {self.name!r}: a grid name is one folder name (letters, digits, '.', '_', '-'); "
                              f"it names runs/<name> and reports/<name>")
        if self.generators.size != self.data.size:
            raise ConfigError(f"generators.size {self.generators.size} != data.size {self.data.size} "
                              f"(set both, or only data.size)")
        from raylatent.models.reconstructors import RECONSTRUCTORS

        for rec in self.directions.reconstructors:
            need = RECONSTRUCTORS[rec].min_size
            if self.data.size < need:
                raise ConfigError(f"data.size {self.data.size}: the {rec} reconstructor needs images of at least "
                                  f"{need}^2 (its unpadded 5x5 convolutions, as the authors'); raise data.size")
        from raylatent.discovery.methods import method_of

        for d in self.directions.deformators:
            if method_of(d["deformator"]).needs_K_equal_d and d["K"] != self.generators.latent_dim:
                raise ConfigError(f"directions.deformators: {d['deformator']} with K={d['K']} (its directions "
                                  f"need K = latent_dim = {self.generators.latent_dim})")
        if self.search is not None:
            self.search.check(self)
        if self.generators.replicates > 1:
            if self.search is not None:
                raise ConfigError("generators.replicates: not with a search: section (a search trains its own "
                                  "replicates); set replicates: 1")
            if not replicated_kinds(self.directions.generators):
                raise ConfigError(f"generators.replicates {self.generators.replicates}: none of directions.generators "
                                  f"({', '.join(self.directions.generators)}) is trained, so every replicate is "
                                  f"the same; set replicates: 1")
        if not self.monitor.experiment:
            self.monitor.experiment = self.name

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def replicate(self, r: int) -> "Grid":
        """Replicate r of this grid (0 = itself, one replicate): generators seeded seed + r; from
        r = 1 on only the trained kinds (a generator fixed by construction is the same in every one)."""
        g = dataclasses.replace(self.generators, seed=self.generators.seed + r, replicates=1)
        d = self.directions
        if r > 0:
            keep = replicated_kinds(g.kinds)
            g = dataclasses.replace(g, kinds=keep)
            d = dataclasses.replace(d, generators=tuple(k for k in d.generators if k in keep))
        m = self.monitor if r == 0 else dataclasses.replace(self.monitor, experiment=f"{self.monitor.experiment}-r{r + 1}")
        return dataclasses.replace(self, generators=g, directions=d, monitor=m)


def replicated_kinds(kinds) -> tuple:
    """The kinds a new replicate trains anew: the trainable ones (models/registry.py)."""
    from raylatent.models.registry import kind_of

    return tuple(k for k in kinds if kind_of(k).trainable)
