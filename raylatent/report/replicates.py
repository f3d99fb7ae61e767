"""Replicates side by side: a grid with `generators.replicates` > 1 trains every generator several
times (seeds seed, seed + 1, ...) and runs the directions stage on each; the main report shows,
per generator and K, how many factors the controls, random directions and the best learned
configuration find in every replicate, so a claim ("learned beats random by 3") has its range."""
from __future__ import annotations

import re
from pathlib import Path

from tabulate import tabulate

from raylatent.errors import ConfigError
from raylatent.discovery.records import best_learned
from raylatent.report.controls import _found, _role, control_found
from raylatent.report.records import esc, inside, load_records, read_json_in

SAFE_LINK = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")  # a replicate's report, relative to the main one
REPLICATES = "replicates.json"  # RUN_DIR/replicates.json: each replicate's seed, run folder and report
ROWS = (("axes", "true axes (control)"), ("supervised", "supervised (control)"),
        ("random", "random directions (best seed)"), ("learned", "best learned"),
        ("margin", "best learned − random"))


def found_counts(records: list[dict]) -> dict:
    """{generator: {row: {K: factors found}}} for the rows of ROWS (a row a generator lacks is absent;
    margin: best learned minus random at the same K)."""
    out: dict = {}
    Ks = sorted({int(r["K"]) for r in records if _role(r) in ("learned", "reference")})
    for gen in sorted({r["generator"] for r in records}):
        mine = [r for r in records if r["generator"] == gen and r.get("factors")]
        rows: dict = {}
        for K in Ks:
            for method in ("axes", "supervised"):
                found = control_found(records, gen, method, K)
                if found is not None:
                    rows.setdefault(method, {})[K] = len(found)
            rnd = [len(_found(r)) for r in mine if _role(r) == "reference" and int(r["K"]) == K]
            best = best_learned([r for r in mine if _role(r) == "learned" and int(r["K"]) == K])
            if rnd:
                rows.setdefault("random", {})[K] = max(rnd)
            if best is not None:
                rows.setdefault("learned", {})[K] = len(_found(best))
            if rnd and best is not None:
                rows.setdefault("margin", {})[K] = len(_found(best)) - max(rnd)
        out[gen] = rows
    return out


def _entries(path: Path) -> list[dict]:
    """replicates.json, checked: a list of {replicate, seed: whole numbers, run_dir, report: relative paths}."""
    entries = read_json_in(path, path.parent)
    if not isinstance(entries, list) or not entries:
        raise ValueError("not a list of replicates")
    for e in entries:
        if not (isinstance(e, dict) and all(isinstance(e.get(k), int) and not isinstance(e.get(k), bool)
                                            for k in ("replicate", "seed"))
                and all(isinstance(e.get(k), str) and e.get(k) for k in ("run_dir", "report"))):
            raise ValueError(f"entry {e!r}")
        if not SAFE_LINK.fullmatch(e["report"]) or ".." in Path(e["report"]).parts:
            raise ValueError(f"report {e['report']!r}")
    return entries


def read_replicates(run_dir: Path) -> list[dict] | None:
    """Each replicate's entry of RUN_DIR/replicates.json with its records (None: a run of one).
    Every path it names must stay inside RUN_DIR (a run folder received from someone else)."""
    run_dir = Path(run_dir)
    path = run_dir / REPLICATES
    if not path.exists():
        return None
    try:
        out = []
        for e in _entries(path):
            sub = inside(run_dir, e["run_dir"], "run_dir", path)
            latest = read_json_in(sub / "latest.json", sub)
            ddir = inside(run_dir, str(Path(e["run_dir"]) / latest["stages"]["directions"]), "stages.directions",
                          sub / "latest.json")
            records = load_records(ddir / "results.json", ddir)  # names a bad file itself
            out.append({**e, "records": records, "counts": found_counts(records)})
    except ConfigError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: a replicate's run is missing or damaged ({e.__class__.__name__}); rerun "
                          f"python -m raylatent.ablate with the same grid to finish it") from None
    return out


def summary(reps: list[dict]) -> dict:
    """{generator: {row: {K: [count per replicate]}}} over the replicates that ran the generator."""
    out: dict = {}
    for rep in reps:
        for gen, rows in rep["counts"].items():
            for row, byK in rows.items():
                for K, n in byK.items():
                    out.setdefault(gen, {}).setdefault(row, {}).setdefault(int(K), []).append(n)
    return out


def replicates_section(run_dir: Path) -> list[str]:
    """## Replicates: per generator, direction set and K, the factors found in each replicate."""
    reps = read_replicates(run_dir)
    if not reps:
        return []
    table = summary(reps)
    Ks = sorted({K for rows in table.values() for byK in rows.values() for K in byK})
    lines = []
    for gen, rows in sorted(table.items()):
        for row, title in ROWS:
            if row not in rows:
                continue
            cells = []
            for K in Ks:
                v = rows[row].get(K)
                cells.append("—" if not v else " / ".join(f"{x:+d}" if row == "margin" else str(x) for x in v)
                             + (f" (range {min(v)}–{max(v)})" if len(v) > 1 else ""))
            lines.append([esc(gen.upper()), title, *cells])
    links = ", ".join(f"[replicate {e['replicate'] + 1}]({e['report']}) (seed {e['seed']})" for e in reps)
    return ["## Replicates", "",
            f"Every trained generator trained {len(reps)} times with other seeds (`generators.replicates`), each "
            "with its own directions stage, controls and chance thresholds; factors found per replicate (a "
            "generator fixed by construction runs once). This report is replicate 1; the others: " + links + ".",
            "", tabulate(lines, headers=["generator", "direction set", *[f"K = {K}" for K in Ks]],
                         tablefmt="github", disable_numparse=True), ""]


def replicate_root(run_dir: Path, root, source: Path) -> Path:
    """The folder a run's stage paths must stay inside: the run itself, or, for a replicate
    (latest.json `root`: only '..' steps), the main run whose replicates.json lists this run."""
    run_dir = Path(run_dir).resolve()
    if root is None:
        return run_dir
    if not (isinstance(root, str) and Path(root).parts and all(p == ".." for p in Path(root).parts)):
        raise ConfigError(f"{source}: root {root!r} (expected '..' steps up to the main run folder)")
    base = (run_dir / root).resolve()
    try:
        listed = {(base / e["run_dir"]).resolve() for e in _entries(base / REPLICATES)}
    except (OSError, ValueError, KeyError, TypeError):
        listed = set()
    if run_dir not in listed:
        raise ConfigError(f"{source}: root {root!r}: {base / REPLICATES} does not list {run_dir} (not a replicate "
                          f"of that run)")
    return base
