"""A grid's `directions:` section (the Ray Tune grid of discovery trials and their settings), and
the one configuration a trial runs with (`DiscoveryConfig.for_trial`)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from raylatent.errors import ConfigError, check_ranges as _check_ranges, is_number as _is_number
from raylatent.models.config import _generator_kinds


@dataclass
class DirectionsConfig:
    """The Ray Tune grid: one trial per generator x reconstructor x (deformator, K) x seed."""

    generators: tuple = ("gan", "vae")
    reconstructors: tuple = ("lenet", "resnet")
    deformators: tuple = ({"deformator": "ortho", "K": 32}, {"deformator": "proj", "K": 32},
                          {"deformator": "proj", "K": 100})
    seeds: tuple = (0,)
    iterations: tuple = ({"steps": 300},)  # rules, first match wins; keys: generator, reconstructor, deformator, K
    exclude: tuple = ()          # cells not run: rules with keys generator, reconstructor, deformator, K
    batch: int = 128
    gamma: float = 0.25
    lr: float = 1e-4
    lr_directions: float = 0.0   # 0 = same as lr (the paper)
    lr_by_reconstructor: dict = field(default_factory=dict)  # e.g. {resnet: 0.0005}; else lr
    shift_scale: float = 6.0
    min_shift: float = 0.5
    recon_width: float = 1.0     # channel width factor of both reconstructors (1 = the paper's)
    width_by_reconstructor: dict = field(default_factory=dict)  # e.g. {resnet: 0.25}; else recon_width
    eval_every: int = 100
    eval_n: int = 512
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 1
    random_baseline: bool = True   # a `random` trial per generator (paper Figs 9-10)
    baselines: bool = True         # closed-form SeFa, GANSpace and Hessian-JD directions, scored alike
    chance_pool: int = 256         # random directions scored per generator for the chance thresholds
    label_latents: int = 8         # each direction is labelled from this many latents (antithetic pairs) ...
    label_steps: int = 5           # ... at this many shifts: every set (trials, pools, controls) alike

    # fields added after runs existed: in a stage's key only when a grid sets them off their
    # default, so earlier runs keep their keys (ablate.Plan, search/run.py)
    KEYED_WHEN_SET = ("label_latents", "label_steps")

    def __post_init__(self) -> None:
        for name, allowed in (("generators", _generator_kinds()), ("reconstructors", {"lenet", "resnet"})):
            vals = tuple(getattr(self, name))
            setattr(self, name, vals)
            if not vals or set(vals) - allowed:
                raise ConfigError(f"directions.{name}: {list(vals)} (allowed: {sorted(allowed)})")
        for name in ("deformators", "iterations", "exclude"):
            bad = [r for r in getattr(self, name) if not isinstance(r, dict)]
            if bad:
                raise ConfigError(f"directions.{name}: {bad[0]!r} is not a mapping (e.g. "
                                  + ("{deformator: unit, K: 32})" if name == "deformators" else "{K: 100, steps: 500})"))
        self.deformators = tuple(dict(d) for d in self.deformators)
        from raylatent.discovery.methods import method_of, names

        learned = names("learned")
        cells = []
        for d in self.deformators:
            if not {"deformator", "K"} <= set(d) or d["deformator"] not in learned:
                raise ConfigError(f"directions.deformators: {d} (need deformator: {'|'.join(learned)} and K; "
                                  f"proj is the paper's unit length, unit our normalised columns)")
            try:
                cells.append((method_of(d["deformator"]).variant(_given(d)), d["K"]))  # validates its settings
            except ValueError as e:
                raise ConfigError(f"directions.deformators: {d}: {e}") from None
        if len(set(cells)) < len(cells):
            raise ConfigError(f"directions.deformators: {[d for d, c in zip(self.deformators, cells) if cells.count(c) > 1][0]} "
                              f"is listed twice (one entry per deformator, K and settings)")
        self.iterations = tuple(dict(r) for r in self.iterations)
        self.exclude = tuple(dict(r) for r in self.exclude)
        for r in self.exclude:
            if not r or set(r) - {"generator", "reconstructor", "deformator", "K"}:
                raise ConfigError(f"directions.exclude: rule {r} (a non-empty mapping with keys generator, "
                                  f"reconstructor, deformator, K; e.g. {{generator: phantom, reconstructor: resnet}})")
        for r in self.iterations:
            if "steps" not in r or set(r) - {"steps", "generator", "reconstructor", "deformator", "K"}:
                raise ConfigError(f"directions.iterations: rule {r} (keys: steps, generator, reconstructor, "
                                  f"deformator, K)")
        for d in self.deformators:
            if not (isinstance(d["K"], int) and not isinstance(d["K"], bool) and 1 <= d["K"] <= 4096):
                raise ConfigError(f"directions.deformators: K {d['K']!r} in {d} (a whole number of directions, 1..4096)")
        for r in self.iterations:
            steps = r["steps"]
            if not (isinstance(steps, int) and not isinstance(steps, bool) and 1 <= steps <= 100_000_000):
                raise ConfigError(f"directions.iterations: steps {steps!r} in {r} (a whole number >= 1)")
        if (not isinstance(self.seeds, (list, tuple)) or not self.seeds or len(set(self.seeds)) != len(self.seeds)
                or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2 ** 31 for x in self.seeds)):
            raise ConfigError(f"directions.seeds: {self.seeds if not isinstance(self.seeds, tuple) else list(self.seeds)} "
                              f"(a non-empty list of distinct whole numbers in [0, 2^31), e.g. [0, 1])")
        _check_ranges(self, "directions", {
            "batch": (2, 65_536), "gamma": (0, 1000), "lr": (0, 10, "(]"), "lr_directions": (0, 10),
            "shift_scale": (0, 1000, "(]"), "min_shift": (0, 1000), "recon_width": (0, 64, "(]"),
            "eval_every": (1, 100_000_000), "eval_n": (2, 10_000_000), "cpus_per_trial": (0, 1024, "(]"),
            "gpus_per_trial": (0, 64), "max_failures": (0, 1000), "chance_pool": (2, 100_000)})
        try:
            self.sweep()
        except ValueError as e:
            raise ConfigError(f"directions.label_latents / label_steps: {e}") from None
        if self.min_shift >= self.shift_scale:
            raise ConfigError(f"directions.min_shift {self.min_shift}: must be below shift_scale ({self.shift_scale})")
        self.seeds = tuple(int(s) for s in self.seeds)
        for name in ("batch", "eval_n"):  # the reconstructors' BatchNorm layers need two samples
            if getattr(self, name) < 2:
                raise ConfigError(f"directions.{name}: {getattr(self, name)} (must be at least 2)")
        for name, top in (("lr_by_reconstructor", 10.0), ("width_by_reconstructor", 64.0)):  # width: a multiplier
            given = getattr(self, name) or {}
            if not isinstance(given, dict):
                raise ConfigError(f"directions.{name}: {given!r} (a mapping, e.g. {{resnet: 0.0005}})")
            setattr(self, name, dict(given))
            for k, v in given.items():
                if k not in ("lenet", "resnet") or not _is_number(v) or not math.isfinite(v) or not 0 < v <= top:
                    raise ConfigError(f"directions.{name}: {k}: {v} (lenet|resnet: a positive number up to {top:g})")

    def cells(self) -> list[tuple[str, int, dict]]:
        """(name the cell runs under, K, the entry) per deformator entry: the method's name, with
        the settings the entry gives appended (`proj+hessian0.1`; discovery/methods.py)."""
        from raylatent.discovery.methods import method_of

        return [(method_of(d["deformator"]).variant(_given(d)), d["K"], d) for d in self.deformators]

    def settings_for(self, deformator: str, K: int) -> dict:
        """A cell's settings (its method's defaults and its grid entry's), by the name it runs under."""
        from raylatent.discovery.methods import method_of

        entry = next((d for name, k, d in self.cells() if (name, k) == (deformator, K)), {})
        return method_of(deformator).check_settings(_given(entry))

    def sweep(self):
        """How every direction set of the stage is swept to label it (interpret/labels.Sweep)."""
        from raylatent.interpret.labels import Sweep

        return Sweep(self.label_latents, self.label_steps)

    @classmethod
    def key_settings(cls, settings: dict) -> dict:
        """The section's settings as a stage key holds them: a `KEYED_WHEN_SET` field only when it
        is off its default."""
        return {k: v for k, v in settings.items()
                if k not in cls.KEYED_WHEN_SET or v != cls.__dataclass_fields__[k].default}

    def lr_for(self, reconstructor: str) -> float:
        return float(self.lr_by_reconstructor.get(reconstructor, self.lr))

    def width_for(self, reconstructor: str) -> float:
        return float(self.width_by_reconstructor.get(reconstructor, self.recon_width))

    def steps_for(self, generator: str, reconstructor: str, K: int, deformator: str = "proj") -> int:
        want = {"generator": generator, "reconstructor": reconstructor, "deformator": deformator, "K": K}
        for r in self.iterations:
            if _matches(r, want):
                return int(r["steps"])
        raise ConfigError(f"directions.iterations: no rule matches {generator}/{reconstructor}/{deformator}/K={K}")

    def trials(self) -> list:
        """Every Tune trial (a `Trial`), learned cells first, then each generator's reference."""
        from raylatent.discovery.methods import reference
        from raylatent.discovery.records import Trial

        cells = []
        for g in self.generators:
            cells += [(g, rec, name, K) for rec in self.reconstructors for name, K, _ in self.cells()]
            if self.random_baseline:
                cells.append((g, self.reconstructors[0], reference(), self.deformators[-1]["K"]))
        cells = [c for c in cells if not self.excluded(*c)]
        return [Trial(g, rec, defo, K, seed, self.steps_for(g, rec, K, defo))
                for seed in self.seeds for g in self.generators for (g2, rec, defo, K) in cells if g2 == g]

    def excluded(self, generator: str, reconstructor: str, deformator: str, K: int) -> bool:
        cell = {"generator": generator, "reconstructor": reconstructor, "deformator": deformator, "K": K}
        return any(_matches(r, cell) for r in self.exclude)


def _given(entry: dict) -> dict:
    """The settings a deformator entry gives its method (all but its name and K)."""
    return {k: v for k, v in entry.items() if k not in ("deformator", "K")}


def _matches(rule: dict, cell: dict) -> bool:
    """An iterations / exclude rule matches a cell when every key it names agrees; a rule's
    deformator matches its method's cells with any settings (`proj` matches `proj+hessian0.1`)."""
    from raylatent.discovery.methods import VARIANT

    return all(cell[k] == v or (k == "deformator" and str(cell[k]).split(VARIANT, 1)[0] == v)
               for k, v in rule.items() if k != "steps")


@dataclass
class DiscoveryConfig:
    """What one discovery run (a Tune trial, a search replicate, a dry run's probe) trains with."""

    K: int = 32
    deformator: str = "proj"       # a trained method of discovery/methods.py: proj (the paper's unit length) | unit | ortho | random
    reconstructor: str = "lenet"   # lenet | resnet
    recon_width: float = 1.0       # reconstructor channel width factor (1 = the paper's)
    batch: int = 128
    gamma: float = 0.25
    lr: float = 1e-4
    lr_directions: float | None = None  # A's learning rate; None = lr (the paper's setting)
    shift_scale: float = 6.0
    min_shift: float = 0.5
    seed: int = 0
    settings: dict = field(default_factory=dict)  # the method's (its grid entry's), e.g. a path's width, a criterion

    def to_dict(self) -> dict:
        from raylatent.discovery.methods import method_of

        out = asdict(self)
        if not out["settings"] or out["settings"] == method_of(self.deformator).defaults:
            del out["settings"]  # nothing set beyond the defaults: an export reads as one made without settings
        return out

    @classmethod
    def for_trial(cls, d: DirectionsConfig, t, batch: int | None = None) -> "DiscoveryConfig":
        """A trial's configuration (`t`: a discovery.records.Trial) under the grid's directions
        section `d`; `batch` overrides the grid's (a dry run's capped probe)."""
        return cls(K=t.K, deformator=t.deformator, reconstructor=t.reconstructor,
                   recon_width=d.width_for(t.reconstructor), batch=batch or d.batch, gamma=d.gamma,
                   lr=d.lr_for(t.reconstructor), lr_directions=d.lr_directions or None,
                   shift_scale=d.shift_scale, min_shift=d.min_shift, seed=t.seed,
                   settings=d.settings_for(t.deformator, t.K))

# seed-to-seed spread at smoke scale: the median over the 12 learned cells of the range of held-out
