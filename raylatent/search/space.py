"""The `search:` section of a grid: which discovery settings the engine tunes, how, and by what.

A search sample is a set of values for the searched fields of `directions` (e.g. lr, gamma,
batch); it is applied to every learned cell of the grid (generator x reconstructor x deformator
x K) and every seed, and its metric is the mean over those replicates, so the search finds one
configuration that is good for the whole grid, and seeds act as replicates of each sample.

Distributions, one key each: `{loguniform: [low, high]}`, `{uniform: [low, high]}`,
`{randint: [low, high]}` (both ends included), `{choice: [a, b, ...]}`, `{grid: [a, b, ...]}`
(every value, times num_samples; random search only). Everything is validated at load with
one-line errors, as every other key of a grid; the sampling itself (and Ray Tune) is elsewhere.
Pure Python: no Ray, no torch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field

import numpy as np

from raylatent.config import ConfigError, DirectionsConfig
from raylatent.discovery.methods import CRITERIA, check_criteria
from raylatent.models.config import config_class
from raylatent.errors import is_number as _is_number

DISTRIBUTIONS = ("loguniform", "uniform", "randint", "choice", "grid")
# reported by every search trial at every evaluation (held-out, on fresh latents)
REPORTED = ("rca", "ls", "shift_mae")
# reported only where every searched generator knows its true directions (interpret/truth.py)
TRUTH_METRICS = ("matched_cos", "axes_recovered")
DEFAULT_MODE = {"rca": "max", "ls": "min", "shift_mae": "min", "matched_cos": "max", "axes_recovered": "max"}
# fields that change how a trial is run or measured, not what discovery does: never searched
NOT_SEARCHED = {
    "directions": {"generators", "reconstructors", "deformators", "seeds", "iterations", "exclude",
                   "lr_by_reconstructor", "width_by_reconstructor", "eval_every", "eval_n", "cpus_per_trial",
                   "gpus_per_trial", "max_failures", "random_baseline", "baselines", "chance_pool"},
    # latent_dim: the deformators' K are set against it; shuffle_buffer: a search trial trains in
    # one process on a full shuffle (train/local.py), so it would change nothing
    "generators": {"kinds", "size", "num_workers", "use_gpu", "cpus_per_worker", "gpus_per_worker",
                   "max_failures", "seed", "fid_network", "fid_weights", "fid_samples", "augment",
                   "latent_dim", "shuffle_buffer"},
}
def section_class(section: str) -> type:
    """The class of a searchable section (generators: with every registered kind's own settings)."""
    return DirectionsConfig if section == "directions" else config_class()
DEFAULT_NAME = "search-default"


def _field_type(cls, name: str) -> str:
    if cls is DirectionsConfig and name in CRITERIA:
        return type(CRITERIA[name]).__name__
    return str({f.name: f.type for f in dataclasses.fields(cls)}[name])


def criteria_of(dir_params: dict) -> tuple[dict, dict]:
    """A sample's directions values as (DirectionsConfig fields, criteria): a criterion (the
    Hessian penalty's weight) applies to every learned cell of the grid, whatever its entry sets."""
    return ({k: v for k, v in dir_params.items() if k not in CRITERIA},
            {k: v for k, v in dir_params.items() if k in CRITERIA})


@dataclass(frozen=True)
class Spec:
    """One searched field: its distribution and that distribution's arguments."""
    section: str
    name: str
    dist: str
    values: tuple

    @property
    def key(self) -> str:
        """The sample's key: the field's name for `directions` (as the grid spells it), prefixed
        for `generators` (`generators.lr_gan`), so the two sections never collide."""
        return self.name if self.section == "directions" else f"{self.section}.{self.name}"

    @property
    def is_int(self) -> bool:
        return _field_type(section_class(self.section), self.name) == "int"

    def describe(self) -> str:
        if self.dist in ("choice", "grid"):
            return f"{self.dist} of {list(self.values)}"
        return f"{self.dist} [{self.values[0]}, {self.values[1]}]"

    def endpoints(self) -> tuple:
        """The extreme values a sample can take (each is checked against the field's own bounds)."""
        return tuple(self.values)

    def draw(self, rng: np.random.Generator):
        """One random value (random search; TPE draws through Optuna instead)."""
        lo_hi = self.values
        if self.dist == "loguniform":
            return float(math.exp(rng.uniform(math.log(lo_hi[0]), math.log(lo_hi[1]))))
        if self.dist == "uniform":
            return float(rng.uniform(lo_hi[0], lo_hi[1]))
        if self.dist == "randint":
            return int(rng.integers(lo_hi[0], lo_hi[1] + 1))
        return self.values[int(rng.integers(len(self.values)))]

    def to_tune(self):
        """The Tune search-space domain (for searchers such as Optuna)."""
        from ray import tune

        if self.dist == "loguniform":
            return tune.loguniform(*self.values)
        if self.dist == "uniform":
            return tune.uniform(*self.values)
        if self.dist == "randint":
            return tune.randint(self.values[0], self.values[1] + 1)  # Tune's upper end is excluded
        if self.dist == "choice":
            return tune.choice(list(self.values))
        return tune.grid_search(list(self.values))


def parse_spec(section: str, name: str, raw) -> Spec:
    where = f"search.{section}.{name}"
    cls = section_class(section)
    fields = {f.name for f in dataclasses.fields(cls)} | (set(CRITERIA) if section == "directions" else set())
    if name not in fields:
        raise ConfigError(f"{where}: unknown field of {section} (searchable: "
                          f"{', '.join(sorted(searchable(section)))})")
    if name in NOT_SEARCHED[section] or name not in searchable(section):
        raise ConfigError(f"{where}: not searchable (it sets how trials are run or measured, not discovery; "
                          f"searchable: {', '.join(sorted(searchable(section)))})")
    if not (isinstance(raw, dict) and len(raw) == 1 and next(iter(raw)) in DISTRIBUTIONS):
        raise ConfigError(f"{where}: {raw!r} (one distribution: {{loguniform|uniform|randint: [low, high]}} or "
                          f"{{choice|grid: [values]}}, e.g. {{loguniform: [1.0e-4, 1.0e-2]}})")
    dist, vals = next(iter(raw.items()))
    if not isinstance(vals, (list, tuple)) or not vals:
        raise ConfigError(f"{where}.{dist}: {vals!r} (a non-empty list)")
    if any(isinstance(v, str) for v in vals):
        raise ConfigError(f"{where}.{dist}: {list(vals)} must be numbers (YAML reads 1e-4 as text: write 1.0e-4)")
    if not all(_is_number(v) and math.isfinite(v) for v in vals):
        raise ConfigError(f"{where}.{dist}: {list(vals)} (numbers only)")
    is_int = _field_type(cls, name) == "int"
    if dist in ("loguniform", "uniform", "randint"):
        if len(vals) != 2:
            raise ConfigError(f"{where}.{dist}: {list(vals)} (exactly [low, high])")
        lo, hi = vals
        if not lo < hi:
            raise ConfigError(f"{where}.{dist}: low {lo} must be below high {hi}")
        if dist == "loguniform" and lo <= 0:
            raise ConfigError(f"{where}.loguniform: low {lo} must be > 0 (a log scale); use uniform for 0")
        if is_int and dist != "randint":
            raise ConfigError(f"{where}: {name} is a whole number; use randint, choice or grid, not {dist}")
        if dist == "randint" and not all(float(v).is_integer() for v in vals):
            raise ConfigError(f"{where}.randint: {list(vals)} (whole numbers)")
        vals = (int(lo), int(hi)) if dist == "randint" else (float(lo), float(hi))
    else:
        if is_int and not all(float(v).is_integer() for v in vals):
            raise ConfigError(f"{where}.{dist}: {list(vals)} ({name} is a whole number)")
        if len(set(vals)) != len(vals):
            raise ConfigError(f"{where}.{dist}: {list(vals)} lists a value twice")
        vals = tuple(int(v) if is_int else v for v in vals)
    return Spec(section, name, dist, tuple(vals))


def searchable(section: str) -> list[str]:
    """Numeric fields of a section that change what is computed."""
    cls = section_class(section)
    return [f.name for f in dataclasses.fields(cls)
            if str(f.type) in ("int", "float") and f.name not in NOT_SEARCHED[section]] + \
        (sorted(CRITERIA) if section == "directions" else [])


@dataclass
class SearchConfig:
    """What to tune, by which metric, with which searcher and scheduler."""

    directions: dict = field(default_factory=dict)   # field -> {distribution: args}
    generators: dict = field(default_factory=dict)   # every sample trains its own generators (train/local.py)
    num_samples: int = 8         # sampled configurations (x the grid values' combinations, random search)
    metric: str = "rca"          # rca | ls | shift_mae | matched_cos | axes_recovered (the last two: ground truth)
    mode: str = ""               # max | min; empty = the metric's natural direction
    algorithm: str = "random"    # random | tpe (Optuna's TPE through Tune; pip install raylatent[search])
    scheduler: str = "none"      # none | asha (on the evaluations every trial reports)
    grace_period: int = 1        # ASHA: evaluations before a trial may be stopped
    reduction_factor: int = 3    # ASHA: 1/reduction_factor of the trials go on at each rung
    seed: int = 0                # the searcher's seed (same seed, same samples)
    max_concurrent: int = 0      # trials at once; 0 = as many as the CPUs allow

    def __post_init__(self) -> None:
        for section in ("directions", "generators"):
            raw = getattr(self, section) or {}
            if not isinstance(raw, dict):
                raise ConfigError(f"search.{section}: expected a mapping of field: {{distribution: args}}")
            setattr(self, section, dict(raw))
        self._specs = [parse_spec(s, k, v) for s in ("directions", "generators")
                       for k, v in getattr(self, s).items()]
        if not self._specs:
            raise ConfigError("search: no field to search (add e.g. directions: {lr: {loguniform: [1.0e-4, 1.0e-2]}})")
        metrics = REPORTED + TRUTH_METRICS
        if self.metric not in metrics:
            raise ConfigError(f"search.metric {self.metric!r}: not reported by the trials (one of {', '.join(metrics)})")
        self.mode = self.mode or DEFAULT_MODE[self.metric]
        if self.mode not in ("max", "min"):
            raise ConfigError(f"search.mode {self.mode!r}: max or min (or leave it out: {DEFAULT_MODE[self.metric]} "
                              f"for {self.metric})")
        if self.algorithm not in ("random", "tpe"):
            raise ConfigError(f"search.algorithm {self.algorithm!r}: random or tpe")
        if self.algorithm == "tpe":
            import importlib.util

            if importlib.util.find_spec("optuna") is None:
                raise ConfigError("search.algorithm tpe: needs Optuna (pip install 'raylatent[search]'), or use random")
        if self.scheduler not in ("none", "asha"):
            raise ConfigError(f"search.scheduler {self.scheduler!r}: none or asha")
        if self.algorithm == "tpe" and any(s.dist == "grid" for s in self._specs):
            g = next(s for s in self._specs if s.dist == "grid")
            raise ConfigError(f"search.{g.section}.{g.name}: grid needs algorithm: random (TPE chooses its own "
                              f"points; use choice)")
        for name, lo in (("num_samples", 1), ("grace_period", 1), ("reduction_factor", 2), ("max_concurrent", 0)):
            v = getattr(self, name)
            if not (_is_number(v) and float(v).is_integer() and lo <= v <= 100_000):
                raise ConfigError(f"search.{name}: {v!r} (a whole number >= {lo})")
        if not (_is_number(self.seed) and float(self.seed).is_integer()):
            raise ConfigError(f"search.seed: {self.seed!r} (a whole number)")

    @property
    def specs(self) -> list[Spec]:
        return list(self._specs)

    def specs_of(self, section: str) -> list[Spec]:
        return [s for s in self._specs if s.section == section]

    @property
    def trains_generators(self) -> bool:
        """Generator fields are searched: every trial (the default too, so the comparison is
        like for like) trains its own trainable generators before discovery."""
        return bool(self.specs_of("generators"))

    def split(self, params: dict) -> tuple[dict, dict]:
        """A sample as (directions fields, generators fields), by field name."""
        prefix = "generators."
        return ({k: v for k, v in params.items() if not k.startswith(prefix)},
                {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)})

    def check(self, grid) -> None:
        """What needs the whole grid: each end of every range is a valid setting of its section
        (so no sample is rejected mid-search), a truth metric has generators that know their true
        directions, and ASHA has rungs to stop at."""
        for s in self._specs:
            base = getattr(grid, s.section)
            if s.section == "directions" and s.name in CRITERIA:
                set_by = [e for e in grid.directions.deformators if s.name in e]
                if set_by:
                    raise ConfigError(f"search.directions.{s.name}: the deformator entry {set_by[0]} sets it already "
                                      f"(a searched criterion applies to every learned cell); search it or set it, not both")
            for v in s.endpoints():
                try:
                    if s.section == "directions" and s.name in CRITERIA:
                        check_criteria({**CRITERIA, s.name: v})
                    else:
                        dataclasses.replace(base, **{s.name: v})
                except (ConfigError, ValueError) as e:
                    raise ConfigError(f"search.{s.section}.{s.name}: {s.dist} value {v} is not a valid setting "
                                      f"({e})") from None
        from raylatent.models.registry import kind_of

        if self.trains_generators and not any(kind_of(g).trainable for g in grid.directions.generators):
            g = self.specs_of("generators")[0]
            raise ConfigError(f"search.generators.{g.name}: no generator of directions.generators "
                              f"({', '.join(grid.directions.generators)}) is trained (they are fixed by construction); "
                              f"add gan or vae to directions.generators, or search directions fields only")
        if self.metric in TRUTH_METRICS:

            blind = [g for g in grid.directions.generators if kind_of(g).truth is None]
            if blind:
                raise ConfigError(f"search.metric {self.metric}: needs the true directions, and generator "
                                  f"{blind[0]} has none (search only generators with truth, e.g. "
                                  f"directions.generators: [phantom], or use rca/ls)")
        if self.scheduler == "asha":
            evals = max_evaluations(grid)
            if self.grace_period >= evals:
                raise ConfigError(f"search.grace_period {self.grace_period}: the trials report only {evals} "
                                  f"evaluations (steps / eval_every), so ASHA could never stop one; lower it")
        if not cells(grid):
            raise ConfigError("search: the grid has no learned cell to search (directions.deformators/exclude)")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    # ------------------------------------------------------------------ samples
    def default_params(self, grid) -> dict:
        """The grid's own values of the searched fields: the configuration a search must beat."""
        return {s.key: CRITERIA[s.name] if s.section == "directions" and s.name in CRITERIA
                else getattr(getattr(grid, s.section), s.name) for s in self._specs}

    def random_samples(self) -> list[dict]:
        """Random search's samples, the same for the same seed (so --resume regenerates them and
        skips the finished ones): every combination of the grid values, num_samples times each."""
        specs = self._specs
        grids = [s for s in specs if s.dist == "grid"]
        rng = np.random.default_rng(self.seed)
        out = []
        for combo in itertools.product(*[s.values for s in grids]) if grids else [()]:
            for _ in range(self.num_samples):
                p = {s.key: s.draw(rng) for s in specs if s.dist != "grid"}
                p.update({s.key: v for s, v in zip(grids, combo)})
                out.append({s.key: p[s.key] for s in specs})
        return out

    def n_trials(self) -> int:
        """Sampled configurations (the default comes on top)."""
        combos = math.prod(len(s.values) for s in self._specs if s.dist == "grid")
        return self.num_samples * combos


def cells(grid) -> list:
    """The learned cells x seeds a sample is run on (the random baseline is never searched: its
    directions are fixed)."""
    from raylatent.discovery.methods import reference

    return [t for t in grid.directions.trials() if t.deformator != reference()]


def max_evaluations(grid) -> int:
    d = grid.directions
    return max(math.ceil(t.steps / min(d.eval_every, t.steps)) for t in cells(grid)) if cells(grid) else 1


def params_hash(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:6]


def trial_name(index: int, params: dict) -> str:
    """Deterministic: the sample's number and a hash of its values (so a resumed random search
    finds the same folder again)."""
    return f"search-{index:04d}-{params_hash(params)}"
