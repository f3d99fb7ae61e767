"""`python -m raylatent.bench devrun --json FILE`: a grid users run on GPUs (default `full`), end to
end on this machine's CPUs with its networks, image size, generators and every cell of its
directions grid as they are, but a tiny cohort and a handful of steps per stage (a `fast_dev_run`):
shapes, memory, checkpoints and the report at paper scale through every stage (42 min on 2 cores:
benchmarks/full-devrun-cpu.json; the report's renders, on the driver's CPU, are most of it).

Recorded: wall time per stage, the largest process's peak memory, every generator checkpoint's
parameters and size, the trials run against the grid's own count, the report's and explorer's
sizes. Only what lets the grid run on a CPU in minutes is changed (`DEVRUN` below); every other field is the
grid's.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

# what a dev run changes: cohort, epochs, steps, batches, the chance pool's size and the labelling
# sweep (6 images a direction instead of 40: at 128^2 drawing them is most of a trial on a CPU), and
# that it runs on the CPU with one worker; never a network's width, the image size or the grid's cells
DEVRUN = ("data.patients=6", "data.slices=4", "data.test_frac=0.34",
          "generators.epochs=1", "generators.keep_last=1", "generators.batch_size=8", "generators.fid_samples=16",
          "generators.num_workers=1", "generators.use_gpu=false", "generators.cpus_per_worker=1",
          "generators.gpus_per_worker=0", "generators.shuffle_buffer=0",
          "directions.iterations=[{steps: 2}]", "directions.batch=8", "directions.eval_every=1",
          "directions.eval_n=8", "directions.cpus_per_trial=1", "directions.gpus_per_trial=0",
          "directions.chance_pool=8", "directions.label_latents=2", "directions.label_steps=3")


def summarise(run: Path, report: Path, grid) -> dict:
    """What a finished dev run produced, beside what the grid says it should."""
    import torch

    latest = json.loads((run / "latest.json").read_text())
    stages = latest["stages"]
    gens = {}
    for ck in sorted((run / stages["generators"]).glob("*/generator.pt")):
        state = torch.load(ck, map_location="cpu", weights_only=True)["model"]
        gens[ck.parent.name] = {"parameters": int(sum(v.numel() for v in state.values() if v.is_floating_point())),
                                "checkpoint_mb": round(ck.stat().st_size / 2**20, 2)}
    records = json.loads((run / stages["directions"] / "results.json").read_text())
    trained = [r for r in records if r.get("rca") is not None]
    explorer = report / "explorer.html"
    return {"stage_times_s": json.loads((run / "stage_times.json").read_text()),
            "generators": gens, "size": grid.generators.size,
            "trials": {"run": len(trained), "grid": len(grid.directions.trials())},
            "records": len(records),
            "report_kb": round((report / "REPORT.md").stat().st_size / 1024, 1),
            "report_files": sum(1 for p in report.rglob("*") if p.is_file()),
            "explorer_mb": round(explorer.stat().st_size / 2**20, 2) if explorer.exists() else None}


def bench_devrun(args) -> dict:
    from raylatent.gridfile import load_grid

    work = Path(args.work)
    run, report = work / "run", work / "report"
    if run.exists():
        raise SystemExit(f"{run}: exists; a dev run is measured from nothing (give another --work)")
    sets = [*DEVRUN, *args.set]
    grid = load_grid(args.grid, sets)  # what the run will use, validated before it starts
    cmd = [sys.executable, "-m", "raylatent.ablate", "--grid", args.grid, "--out", str(run),
           "--report-dir", str(report), "-q", *[a for s in sets for a in ("--set", s)]]
    t0 = time.time()
    rc = subprocess.call(cmd)
    wall = round(time.time() - t0, 1)
    if rc:
        raise SystemExit(f"raylatent.ablate --grid {args.grid} (dev run) failed ({rc}); its log: {run}/console.log")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB on Linux -> GiB
    return {"grid": args.grid, "overrides": sets, "wall_s": wall,
            "largest_process_peak_rss_gib": round(peak, 2), **summarise(run, report, grid)}


def add_parser(sub) -> None:
    p = sub.add_parser("devrun", help="a GPU grid end to end on the CPU: its networks and size, a handful of steps")
    p.add_argument("--json", required=True)
    p.add_argument("--grid", default="full")
    p.add_argument("--work", default="runs/bench-devrun", help="where the run from nothing goes")
    p.add_argument("--set", action="append", default=[], help="a further grid override (as ablate's --set)")
