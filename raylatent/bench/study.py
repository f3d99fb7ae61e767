"""`python -m raylatent.bench study --json FILE`: the study grid from nothing (or `--run DIR`: a
finished run of it), summed up against issue 24's targets. Per replicate and generator: the factors
found by the true axes, the supervised directions, random directions and the best learned
configuration at each K; the factors each generator varies (coverage) and whether it copies its
training slices; and per target whether it was met in every replicate.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

# issue 24's targets, as (what, test on the summary)
PHANTOM_AXES_MIN = 7      # the true axes of the phantom generator, found at every K
SUPERVISED_MIN = 6        # supervised directions on each trained generator, every replicate
GENERATED_MIN = 7         # factors a trained generator varies at spread ratio >= SPREAD_MIN
MARGIN_MIN = {"gan": 3, "vae": 2}  # best learned minus random, every replicate, at some K


def summarise(run: Path) -> dict:
    """The summary of a finished run of a grid with controls (and replicates, if any)."""
    from raylatent.discovery.records import best_learned
    from raylatent.report.controls import _found, _role
    from raylatent.report.records import load_records
    from raylatent.report.replicates import found_counts, read_replicates

    run = Path(run)
    reps = read_replicates(run)
    if reps is None:  # a run of one
        latest = json.loads((run / "latest.json").read_text())
        records = load_records(run / latest["stages"]["directions"] / "results.json")
        reps = [{"replicate": 0, "seed": json.loads((run / "grid.json").read_text())["generators"]["seed"],
                 "run_dir": ".", "records": records, "counts": found_counts(records)}]
    out = []
    for rep in reps:
        sub = (run / rep["run_dir"]).resolve()
        latest = json.loads((sub / "latest.json").read_text())
        ddir = sub / latest["stages"]["directions"]
        cov = json.loads((ddir / "coverage.json").read_text()) if (ddir / "coverage.json").exists() else {}
        z_found = {}
        for gen in rep["counts"]:
            learned = [r for r in rep["records"] if r["generator"] == gen and _role(r) == "learned"]
            z_found[gen] = any("z" in _found(r) for r in learned)
            best = best_learned(learned)
            rep["counts"][gen]["best_learned_trial"] = best["trial"] if best else None
        times = json.loads((sub / "stage_times.json").read_text()) if (sub / "stage_times.json").exists() else {}
        out.append({"replicate": rep["replicate"], "seed": rep["seed"], "stage_times_s": times,
                    "found": {g: {row: {str(k): v for k, v in byK.items()} if isinstance(byK, dict) else byK
                                  for row, byK in rows.items()} for g, rows in rep["counts"].items()},
                    "z_found_by_a_learned_cell": z_found,
                    "coverage": {g: {"generated": c["generated"],
                                     "spread_ratio": {f: v["spread_ratio"] for f, v in c["factors"].items()},
                                     "memorised": c["memorisation"]["memorised"],
                                     "median_ratio": c["memorisation"]["median_ratio"]} for g, c in cov.items()}})
    return {"replicates": out, "targets": targets(out)}


def targets(reps: list[dict]) -> dict:
    """Each of issue 24's targets: met (in every replicate that has the generator) and the numbers."""
    def rows(gen, row):
        return [r["found"][gen][row] for r in reps if gen in r["found"] and row in r["found"][gen]]

    out = {}
    axes = rows("phantom", "axes")
    out["phantom true axes >= 7 of 8 at every K"] = {
        "met": bool(axes) and all(min(a.values()) >= PHANTOM_AXES_MIN for a in axes), "found": axes}
    for gen in ("gan", "vae"):
        sup = rows(gen, "supervised")
        out[f"{gen} supervised >= 6 of 8 (at some K, every replicate)"] = {
            "met": bool(sup) and all(max(s.values()) >= SUPERVISED_MIN for s in sup), "found": sup}
        gen_n = [r["coverage"][gen]["generated"] for r in reps if gen in r.get("coverage", {})]
        out[f"{gen} varies >= 7 of 8 factors"] = {"met": bool(gen_n) and min(gen_n) >= GENERATED_MIN,
                                                  "generated": gen_n}
        margin = rows(gen, "margin")
        out[f"{gen} best learned >= random + {MARGIN_MIN[gen]}"] = {
            "met": bool(margin) and all(max(m.values()) >= MARGIN_MIN[gen] for m in margin), "margin": margin}
        z = [r["z_found_by_a_learned_cell"].get(gen) for r in reps if gen in r["z_found_by_a_learned_cell"]]
        out[f"{gen} z-position found by a learned cell"] = {"met": bool(z) and all(z), "per_replicate": z}
    return out


def bench_study(args) -> dict:
    if args.run:
        run, wall = Path(args.run), args.wall_s
    else:
        run = Path(args.work) / "run"
        if run.exists():
            raise SystemExit(f"{run}: exists; the study is measured from nothing (give another --work)")
        t0 = time.time()
        rc = subprocess.call([sys.executable, "-m", "raylatent.ablate", "--grid", args.grid, "--out", str(run),
                              "--report-dir", str(Path(args.work) / "report"), "-q"])
        wall = round(time.time() - t0, 1)
        if rc:
            raise SystemExit(f"raylatent.ablate --grid {args.grid} failed ({rc})")
    return {"grid": args.grid, "run": str(run), "wall_s": wall, **summarise(run)}


def add_parser(sub) -> None:
    p = sub.add_parser("study", help="the study grid from nothing, summed up against issue 24's targets")
    p.add_argument("--json", required=True)
    p.add_argument("--grid", default="study")
    p.add_argument("--work", default="runs/bench-study", help="where the run from nothing goes")
    p.add_argument("--run", default=None, help="sum up this finished run instead of running the grid")
    p.add_argument("--wall-s", type=float, default=None, help="with --run: its measured wall-clock seconds")
