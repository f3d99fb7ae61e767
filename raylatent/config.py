"""Stage configurations: dataclasses, validated on construction with one-line errors.

The one place that reads settings from the environment (the pseudonym salt) or from YAML.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path



class ConfigError(ValueError):
    """A bad setting; str() is a one-line message naming the setting and the fix."""


def _is_number(v) -> bool:
    """YAML's true/false are ints to Python; a config number is never one."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_ranges(obj, where: str, bounds: dict[str, tuple]) -> None:
    """Each named field a finite number in its interval: (lo, hi) closed, or (lo, hi, "(]") /
    "()" / "[)" for open ends. Catches NaN, negatives and absurd sizes at load, so a dry run
    never prints negative hours and a run never allocates gigabytes by a typo."""
    for name, (lo, hi, *spec) in bounds.items():
        v = getattr(obj, name)
        kind = spec[0] if spec else "[]"
        ok = (_is_number(v) and math.isfinite(v) and (v > lo if kind[0] == "(" else v >= lo)
              and (v < hi if kind[1] == ")" else v <= hi))
        if not ok:
            raise ConfigError(f"{where}.{name}: {v!r} (must be a number in {kind[0]}{lo}, {hi}{kind[1]})")


def _generator_kinds() -> set[str]:
    """The registered generator kinds (models/registry.py), imported only when a config is built."""
    from raylatent.models import kind_names

    return set(kind_names())


def resolve_salt(explicit: str | None = None) -> str:
    """The secret that turns patient/series/SOP identifiers into pseudonyms.

    Kept outside every output (env RAYLATENT_SALT, else a per-user file created on first use) so
    a published shard folder cannot be re-identified by hashing guessed IDs like LIDC-IDRI-0001."""
    if explicit:
        return explicit
    env = os.environ.get("RAYLATENT_SALT")
    if env:
        return env
    path = Path(os.environ.get("RAYLATENT_HOME", Path.home() / ".config" / "raylatent")) / "salt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(secrets.token_hex(16))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    return path.read_text().strip()


@dataclass
class IngestConfig:
    src: str
    out: str
    size: int = 128
    test_frac: float = 0.1
    seed: int = 0
    strict: bool = False
    salt: str = field(default="", repr=False)
    files_per_batch: int = 48

    def __post_init__(self) -> None:
        if not Path(self.src).is_dir():
            raise ConfigError(f"--src {self.src}: no such folder (point it at a folder of DICOM files)")
        if self.size < 8 or self.size > 1024:
            raise ConfigError(f"--size {self.size}: must be between 8 and 1024 pixels")
        if not 0.0 <= self.test_frac < 1.0:
            raise ConfigError(f"--test-frac {self.test_frac}: must be in [0, 1)")
        s, o = Path(self.src).resolve(), Path(self.out).resolve()
        if s == o or s in o.parents or o in s.parents:
            raise ConfigError(f"--out {self.out} must lie outside --src {self.src} and not contain it "
                              f"(the source folder is never written)")
        self.salt = resolve_salt(self.salt)


@dataclass
class GeneratorsConfig:
    """Training of the DCGAN and the VAE (paper section 3.2); defaults are the smoke scale."""

    kinds: tuple = ("gan", "vae")
    size: int = 32
    latent_dim: int = 32
    gan_width: int = 32          # ngf = ndf (paper: 128 at 128^2)
    vae_width: int = 16          # base channels of the ResNet VAE (paper's authors: 64)
    epochs: int = 6
    batch_size: int = 32
    keep_last: int = 5           # the generator kept is the best-FID of the last N epochs
    lr_gan: float = 2e-4
    beta1_gan: float = 0.5
    lr_vae: float = 1e-4
    beta_kl: float = 0.01
    noise_start: float = 0.1     # instance noise sigma at epoch 0, off from the midpoint
    noise_steps: int = 5
    smooth_low: float = 0.9      # real targets ~ U[smooth_low, 1]
    augment: bool = True
    shuffle_buffer: int = 2048   # rows per worker's seeded local shuffle (0 = off; the authors shuffle)
    fid_network: str = "inception"  # inception | fallback
    fid_weights: str = ""        # local pytorch-fid weights file (offline clusters)
    fid_samples: int = 512
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 0.5
    gpus_per_worker: float = 0.0
    max_failures: int = 1
    seed: int = 0
    # independently trained copies of every trainable generator (seeds seed, seed + 1, ...), each
    # with its own directions stage and report, so a claim about a generator has an interval
    replicates: int = 1

    def __post_init__(self) -> None:
        self.kinds = tuple(self.kinds)
        known = _generator_kinds()
        bad = set(self.kinds) - known
        if bad or not self.kinds:
            raise ConfigError(f"generators.kinds: {sorted(bad) or 'empty'} (known: {', '.join(sorted(known))})")
        if self.size < 8 or self.size & (self.size - 1):
            raise ConfigError(f"generators.size {self.size}: must be a power of two >= 8")
        if self.keep_last < 1 or self.keep_last > self.epochs:
            raise ConfigError(f"generators.keep_last {self.keep_last}: must be in 1..epochs ({self.epochs})")
        if self.fid_network not in ("inception", "fallback"):
            raise ConfigError(f"generators.fid_network {self.fid_network!r}: inception or fallback")
        if self.fid_weights and not Path(self.fid_weights).expanduser().is_file():
            raise ConfigError(f"generators.fid_weights {self.fid_weights}: no such file (give the "
                              f"pt_inception-2015-12-05 weights of pytorch-fid, or leave it empty)")
        if self.num_workers < 1:
            raise ConfigError("generators.num_workers: at least 1")
        _check_ranges(self, "generators", {
            "latent_dim": (1, 4096), "gan_width": (1, 1024), "vae_width": (1, 1024), "epochs": (1, 100_000),
            "batch_size": (1, 65_536), "lr_gan": (0, 1, "(]"), "beta1_gan": (0, 1, "[)"), "lr_vae": (0, 1, "(]"),
            "beta_kl": (0, 1e6), "noise_start": (0, 10), "noise_steps": (1, 10_000), "smooth_low": (0, 1),
            "fid_samples": (2, 10_000_000), "num_workers": (1, 10_000), "cpus_per_worker": (0, 1024, "(]"),
            "gpus_per_worker": (0, 64), "max_failures": (0, 1000), "shuffle_buffer": (0, 10_000_000),
            "replicates": (1, 100)})
        if not isinstance(self.replicates, int) or isinstance(self.replicates, bool):
            raise ConfigError(f"generators.replicates {self.replicates!r}: a whole number >= 1 (e.g. 2)")
        if self.shuffle_buffer and self.shuffle_buffer < self.batch_size:
            raise ConfigError(f"generators.shuffle_buffer {self.shuffle_buffer}: 0 (off) or at least "
                              f"batch_size ({self.batch_size}) rows")


# --------------------------------------------------------------------------- grids (ablate)
GRIDS_DIR = Path(__file__).resolve().parent / "grids"  # shipped in the package; ablations/ links to them


@dataclass
class DataConfig:
    path: str = ""               # folder of CT DICOM; empty = the built-in phantom
    patients: int = 16           # phantom cohort (used when path is empty)
    slices: int = 32
    matrix: int = 128
    phantom_seed: int = 0
    size: int = 32
    test_frac: float = 0.15
    split_seed: int = 0

    def __post_init__(self) -> None:
        if self.path and not Path(self.path).expanduser().is_dir():
            raise ConfigError(f"data.path {self.path}: no such folder (give a LIDC-IDRI/DICOM folder, "
                              f"or leave data.path empty for the built-in phantom)")
        _check_ranges(self, "data", {"patients": (1, 100_000), "slices": (1, 10_000), "matrix": (16, 4096),
                                     "size": (8, 1024), "test_frac": (0, 1, "()")})


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
    baselines: bool = True         # closed-form SeFa and GANSpace directions, scored alike
    chance_pool: int = 256         # random directions scored per generator for the chance thresholds

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
        from raylatent.discovery.methods import names

        learned = names("learned")
        for d in self.deformators:
            if set(d) != {"deformator", "K"} or d["deformator"] not in learned:
                raise ConfigError(f"directions.deformators: {d} (need deformator: {'|'.join(learned)} and K; "
                                  f"proj is the paper's unit length, unit our normalised columns)")
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
        if not self.seeds or not all(isinstance(x, int) and not isinstance(x, bool) for x in self.seeds):
            raise ConfigError(f"directions.seeds: {list(self.seeds)} (a non-empty list of whole numbers, e.g. [0])")
        _check_ranges(self, "directions", {
            "batch": (2, 65_536), "gamma": (0, 1000), "lr": (0, 10, "(]"), "lr_directions": (0, 10),
            "shift_scale": (0, 1000, "(]"), "min_shift": (0, 1000), "recon_width": (0, 64, "(]"),
            "eval_every": (1, 100_000_000), "eval_n": (2, 10_000_000), "cpus_per_trial": (0, 1024, "(]"),
            "gpus_per_trial": (0, 64), "max_failures": (0, 1000), "chance_pool": (2, 100_000)})
        if self.min_shift >= self.shift_scale:
            raise ConfigError(f"directions.min_shift {self.min_shift}: must be below shift_scale ({self.shift_scale})")
        self.seeds = tuple(int(s) for s in self.seeds)
        for name in ("batch", "eval_n"):  # the reconstructors' BatchNorm layers need two samples
            if getattr(self, name) < 2:
                raise ConfigError(f"directions.{name}: {getattr(self, name)} (must be at least 2)")
        for name in ("lr_by_reconstructor", "width_by_reconstructor"):
            setattr(self, name, dict(getattr(self, name) or {}))
            for k, v in getattr(self, name).items():
                if k not in ("lenet", "resnet") or not _is_number(v) or v <= 0:
                    raise ConfigError(f"directions.{name}: {k}: {v} (lenet|resnet: a positive number)")

    def lr_for(self, reconstructor: str) -> float:
        return float(self.lr_by_reconstructor.get(reconstructor, self.lr))

    def width_for(self, reconstructor: str) -> float:
        return float(self.width_by_reconstructor.get(reconstructor, self.recon_width))

    def steps_for(self, generator: str, reconstructor: str, K: int, deformator: str = "proj") -> int:
        want = {"generator": generator, "reconstructor": reconstructor, "deformator": deformator, "K": K}
        for r in self.iterations:
            if all(r.get(k, v) == v for k, v in want.items()):
                return int(r["steps"])
        raise ConfigError(f"directions.iterations: no rule matches {generator}/{reconstructor}/{deformator}/K={K}")

    def trials(self) -> list:
        """Every Tune trial (a `Trial`), learned cells first, then each generator's reference."""
        from raylatent.discovery.methods import reference
        from raylatent.discovery.records import Trial

        cells = []
        for g in self.generators:
            cells += [(g, rec, d["deformator"], d["K"]) for rec in self.reconstructors for d in self.deformators]
            if self.random_baseline:
                cells.append((g, self.reconstructors[0], reference(), self.deformators[-1]["K"]))
        cells = [c for c in cells if not self.excluded(*c)]
        return [Trial(g, rec, defo, K, seed, self.steps_for(g, rec, K, defo))
                for seed in self.seeds for g in self.generators for (g2, rec, defo, K) in cells if g2 == g]

    def excluded(self, generator: str, reconstructor: str, deformator: str, K: int) -> bool:
        cell = {"generator": generator, "reconstructor": reconstructor, "deformator": deformator, "K": K}
        return any(all(cell[k] == v for k, v in r.items()) for r in self.exclude)


# seed-to-seed spread at smoke scale: the median over the 12 learned cells of the range of held-out
# RCA and Ls over seeds 0-2 on one pair of generators (benchmarks/seed-spread-smoke.json; max 0.11 / 0.15)
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
    explorer_directions: int = 32
    # with one seed per cell, a claim's difference smaller than this is "not resolved": the
    # seed-to-seed range measured on the smoke generators (README); with several seeds the cells'
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


# --------------------------------------------------------------------------- monitoring
# the optional packages behind each tracker, and the extra that installs them
MONITOR_EXTRAS = {"mlflow": ("mlflow", "mlflow"), "wandb_project": ("wandb", "wandb")}
WANDB_MODES = ("offline", "online", "disabled")


def _mlflow_uri(uri: str) -> str:
    """An MLflow tracking URI with any local path made absolute: Tune logs from the driver but
    Train from its controller actor, whose working directory may differ, so `file:./mlruns`
    must name the same folder in both."""
    from urllib.parse import urlparse

    scheme = urlparse(uri).scheme
    if scheme in ("http", "https", "sqlite", "databricks", "postgresql", "mysql"):
        return uri
    if scheme == "file":
        path = urlparse(uri).path or "."
    elif scheme and len(scheme) > 1:  # a Windows drive letter parses as a one-letter scheme
        raise ConfigError(f"monitor.mlflow {uri!r}: a file: URI or a folder (offline), sqlite:///FILE, or an "
                          f"http(s):// tracking server")
    else:
        path = uri
    return Path(path).expanduser().resolve().as_uri()


@dataclass
class MonitorConfig:
    """Where a run reports besides its own files: TensorBoard always (under RUN_DIR, one command
    shows every stage); MLflow and Weights & Biases only when asked, through Ray's own Tune
    callbacks and a Train callback. Nothing here changes what a stage computes, so no stage key
    holds it."""

    mlflow: str = ""             # tracking URI (file:./mlruns works offline); empty = off
    experiment: str = ""         # MLflow experiment / W&B group prefix; empty = the grid's name
    wandb_project: str = ""      # empty = off
    wandb_mode: str = "offline"  # offline never touches the network (`wandb sync` uploads later)
    sweep_directions: int = 4    # directions per TensorBoard sweep image of a Tune trial (0 = none)
    sweep_latents: int = 1       # latents per sweep (one image each)

    def __post_init__(self) -> None:
        import importlib.util

        if self.wandb_mode not in WANDB_MODES:
            raise ConfigError(f"monitor.wandb_mode {self.wandb_mode!r}: one of {', '.join(WANDB_MODES)} "
                              f"(offline never uses the network)")
        _check_ranges(self, "monitor", {"sweep_directions": (0, 64), "sweep_latents": (1, 16)})
        for name, (module, extra) in MONITOR_EXTRAS.items():
            if getattr(self, name) and importlib.util.find_spec(module) is None:
                raise ConfigError(f"monitor.{name}: the {module} package is not installed; "
                                  f"pip install 'raylatent[{extra}]' (or leave monitor.{name} empty)")
        if self.mlflow:
            self.mlflow = _mlflow_uri(self.mlflow)

    @property
    def trackers(self) -> list[str]:
        return [n for n, on in (("mlflow", self.mlflow), ("wandb", self.wandb_project)) if on]


GRID_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass
class Grid:
    name: str = "smoke"
    data: DataConfig = field(default_factory=DataConfig)
    generators: GeneratorsConfig = field(default_factory=GeneratorsConfig)
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
        return dataclasses.replace(self, generators=g, directions=d)


def replicated_kinds(kinds) -> tuple:
    """The kinds a new replicate trains anew: the trainable ones (models/registry.py)."""
    from raylatent.models.registry import kind_of

    return tuple(k for k in kinds if kind_of(k).trainable)
