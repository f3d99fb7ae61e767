"""A directions trial's identity, its files and its results.json record.

`Trial` is one configuration of the grid (its name is its folder, its TensorBoard run and its
row in results.json); `TrialRecord` is what a finished trial (or a closed-form method) reports.
A trial keeps its state in `trials/<name>/` and writes `record.json` last, so a record's presence
means the trial finished; results.json is assembled from these files alone.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

LABELS = "labels.json"
DIRECTIONS = "directions.npz"
CURVE = "curve.json"
RECORD = "record.json"  # written last by a trial: its presence means the trial finished
RESULTS = "results.json"
NO_RECONSTRUCTOR = "none"  # closed-form methods: no reconstructor, no RCA


@dataclass(frozen=True)
class Trial:
    generator: str
    reconstructor: str
    deformator: str
    K: int
    seed: int
    steps: int = 0

    @property
    def name(self) -> str:
        return f"{self.generator}-{self.reconstructor}-{self.deformator}-K{self.K}-s{self.seed}"

    @property
    def directions_file(self) -> str:
        """Relative to the directions stage's folder (results.json stores it so)."""
        return f"trials/{self.name}/{DIRECTIONS}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Trial":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


@dataclass(frozen=True)
class TrialRecord:
    """One row of results.json (the keys in this order). `rca`, `ls`, `shift_mae` are held-out
    (None for closed-form methods); `labels`/`factors`/`factors_found` come from the labeller."""
    trial: str
    generator: str
    reconstructor: str
    deformator: str
    K: int
    seed: int
    iterations: int | None
    rca: float | None
    ls: float | None
    shift_mae: float | None
    gamma: float | None
    wall_s: float | None
    node_id: str | None
    directions: str
    labels: list | None = None
    factors: dict | None = None
    factors_found: int | None = None
    truth: dict | None = None   # scores against the true directions, where the generator knows them
    found_by_K: dict | None = None  # a control: the factors found at each grid K's threshold ("32": [names])

    def to_dict(self) -> dict:
        """The JSON row; the labeller's and the truth's fields only where they exist."""
        d = asdict(self)
        for k in ("labels", "factors", "factors_found", "truth", "found_by_K"):
            if d[k] is None:
                del d[k]
        return d


FIELDS = tuple(f.name for f in fields(TrialRecord))


def label_summary(labels: dict, chance: dict | None = None) -> dict:
    """What results.json keeps of a trial's labels.json; with `chance` (factor -> the score the
    best of K random directions reaches), a factor is found only where it beats that."""
    factors = labels["factors"]
    if chance is not None:
        from raylatent.interpret.chance import calibrate

        factors = calibrate(factors, labels["directions"], chance)
    return {"labels": [r["label"] for r in labels["directions"]],
            "factors": {k: {"direction": v["direction"], "rho": round(v["rho"], 3), "purity": round(v["purity"], 3),
                            "found": v["found"], **({k2: v[k2] for k2 in ("score", "chance") if k2 in v})}
                        for k, v in factors.items()},
            "factors_found": sum(v["found"] for v in factors.values())}


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def write_json(path: Path, obj, indent: int | None = None) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=indent))
    os.replace(tmp, path)


def folder_of(out: Path, trial: Trial) -> Path:
    return Path(out) / "trials" / trial.name


def finished(out: Path, trial: Trial) -> bool:
    return read_json(folder_of(out, trial) / RECORD) is not None


def record_of(out: Path, trial: Trial, gamma: float, chance: dict | None = None) -> TrialRecord:
    """A finished trial's record, from its own files (factors found against `chance`, if given)."""
    folder = folder_of(out, trial)
    m = read_json(folder / RECORD, {})
    labels = read_json(folder / LABELS)
    summary = label_summary(labels, chance) if labels else {}
    return TrialRecord(trial=trial.name, generator=trial.generator, reconstructor=trial.reconstructor,
                       deformator=trial.deformator, K=trial.K, seed=trial.seed, iterations=m.get("step"),
                       rca=m.get("rca"), ls=m.get("ls"), shift_mae=m.get("shift_mae"), gamma=gamma,
                       wall_s=m.get("trial_wall_s"), node_id=m.get("node_id"), directions=trial.directions_file,
                       truth=(labels or {}).get("truth"), **summary)


def best_learned(rows: list[dict]) -> dict | None:
    """The learned configuration that found the most factors against chance; ties go to the most
    evidence over chance (the sum over factors of score minus threshold), then to RCA. One rule
    for the report's front panel, its verdicts and `Run.best`, so they name the same trial."""
    from raylatent.discovery.methods import method_of

    learned = [r for r in rows if method_of(r["deformator"]).role == "learned"]
    if not learned:
        return None
    return max(learned, key=lambda r: (r.get("factors_found", 0),
                                       sum((f.get("score") or 0) - (f.get("chance") or 0)
                                           for f in (r.get("factors") or {}).values()),
                                       r.get("rca") or 0.0, r["trial"]))
