"""`python -m raylatent.ablate --grid smoke|full|PATH.yaml`: the whole study, stage by stage.

ingest (Ray Data) -> generators (Ray Train) -> directions (Ray Tune) -> report (files only).
Each stage writes under RUN_DIR/<stage>/<hash of its inputs>/ and is skipped when done, so a
rerun (or `--resume` after an interruption) redoes only what is missing.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from raylatent.config import ConfigError, Grid, IngestConfig
from raylatent.gridfile import load_grid
from raylatent.report.replicates import REPLICATES
from raylatent.discovery import DISCOVERY_VERSION
from raylatent.discovery.config import DirectionsConfig
from raylatent.stages import file_digest, keyed_folder, science, stage_key
from raylatent.train import GENERATORS_VERSION


class Plan:
    """Where each stage of a grid lives under RUN_DIR. The data folder is keyed by the data
    settings (the ingest itself tracks the source files); the generators and directions folders
    by what they consume, known once the stage before them is done (see raylatent.stages)."""

    def __init__(self, grid: Grid, run_dir: Path, report_dir: Path):
        from raylatent.data.ingest import INGEST_VERSION

        self.grid, self.run_dir, self.report_dir = grid, run_dir, report_dir
        self.phantom = run_dir / "phantom"
        self.data = run_dir / "data" / stage_key({"settings": grid.to_dict()["data"], "code": INGEST_VERSION})
        self.generators: Path | None = None
        self.directions: Path | None = None
        self.renders: Path | None = None  # the report's images, inside the directions folder
        self.fingerprint: str | None = None  # the ingest manifest's, once the data stage ran
        self.digests: dict[str, str] = {}  # generator weight digests (hashed once; the exports cite them)
        self.search: Path | None = None   # a grid with a `search:` section: the search stage's folder
        self.root: Path | None = None     # a replicate's plan: the main run folder (which holds its data)

    def resolve_generators(self, manifest: dict, log=print) -> Path:
        self.fingerprint = manifest["fingerprint"]  # the data every later stage reads
        self.generators = keyed_folder(self.run_dir, "generators", {
            "data": manifest["fingerprint"], "settings": science("generators", self.grid.to_dict()["generators"]),
            "code": GENERATORS_VERSION}, log)
        return self.generators

    def _fingerprint(self) -> str | None:
        """The data's fingerprint from the ingest's manifest (a plan built after the data stage ran)."""
        from raylatent.data.ingest import load_manifest

        return (load_manifest(self.data) or {}).get("fingerprint")

    def _digests(self) -> dict[str, str]:
        from raylatent.models.export import WEIGHTS

        if not self.digests:
            self.digests = {k: file_digest(self.generators / k / WEIGHTS) for k in self.read_kinds()}
        return self.digests

    def read_kinds(self) -> list[str]:
        """The generators the later stages read from the generators stage (a search of generator
        fields trains its own in every trial and reads only those fixed by construction)."""
        if self.grid.search is not None:
            from raylatent.search.run import fixed_kinds

            return fixed_kinds(self.grid)
        return sorted(self.grid.directions.generators)

    def resolve_directions(self, log=print) -> Path:
        self._digests()
        # the data too: the stage reads it (z regressor, coverage, held-out renders), and a generator
        # built from a seed (the phantom) has the same weights whatever the data
        self.directions = keyed_folder(self.run_dir, "directions", {
            "data": self.fingerprint or self._fingerprint(), "generators": self.digests,
            "settings": science("directions", DirectionsConfig.key_settings(self.grid.to_dict()["directions"])),
            "code": DISCOVERY_VERSION}, log)
        return self.directions

    def replicate(self, r: int) -> "Plan":
        """Replicate r's plan (grids with generators.replicates > 1): its own run folder under
        RUN_DIR/replicates/ and report under REPORT_DIR/replicate-<r + 1>/, this plan's data; replicate
        0 is this plan with its grid's replicate 0."""
        if r == 0:
            sub = Plan(self.grid.replicate(0), self.run_dir, self.report_dir)
        else:
            sub = Plan(self.grid.replicate(r), self.run_dir / "replicates" / str(r),
                       self.report_dir / f"replicate-{r + 1}")
        sub.data, sub.phantom = self.data, self.phantom
        sub.root = self.run_dir if r else None
        return sub

    def resolve_search(self, fingerprint: str | None = None, log=print) -> Path:
        from raylatent.search.run import search_key_inputs

        fingerprint = fingerprint or self._fingerprint()
        self.search = keyed_folder(self.run_dir, "search", search_key_inputs(self.grid, self._digests(), fingerprint), log)
        return self.search


def _stage(name: str, log=print):
    class _Timer:
        def __enter__(self):
            self.t = time.time()
            log(f"\n== {name} ==")
            return self

        def __exit__(self, *exc):
            self.s = time.time() - self.t
            if not exc[0]:
                log(f"== {name}: {self.s:.1f} s ==")

    return _Timer()


def run_data(plan: Plan, log=print) -> Path:
    from raylatent.data.ingest import ingest
    from raylatent.data.phantom import PhantomParams, cached

    d = plan.grid.data
    if d.path:
        src = Path(d.path).expanduser()
    else:
        src = cached(plan.phantom, PhantomParams(d.patients, d.slices, d.matrix, d.phantom_seed), log=log)
    m = ingest(IngestConfig(src=str(src), out=str(plan.data), size=d.size, test_frac=d.test_frac,
                            seed=d.split_seed), log=log)
    if m["counts"]["train"] == 0:
        reasons = sorted({e["reason"].split(" (")[0] for e in m["skipped"]})
        raise ConfigError(f"data.path {src}: no usable CT slices ({m['files_seen']} files seen, {len(m['skipped'])} "
                          f"skipped{': ' + ', '.join(reasons[:3]) if reasons else ''}); point data.path at a folder "
                          f"of CT DICOM series")
    return plan.data


def monitoring_banner(ctx, plan: Plan, log=print) -> None:
    url = getattr(ctx, "dashboard_url", None)
    if url:
        log(f"Ray dashboard: http://{url}  (token auth is on: `ray get-auth-token` prints the token "
            f"to paste at the login page; on a cluster use `ray dashboard cluster.yaml` to port-forward)")
    log(f"TensorBoard:   tensorboard --logdir {plan.run_dir}  (generators' epochs and samples, every "
        f"trial's curve and direction sweeps)")
    m = plan.grid.monitor
    if m.mlflow:
        log(f"MLflow:        mlflow ui --backend-store-uri {m.mlflow}  (experiments {m.experiment}-<stage>)")
    if m.wandb_project:
        log(f"W&B:           project {m.wandb_project}, mode {m.wandb_mode}"
            + (f"; offline runs land in wandb/offline-run-* folders under {plan.run_dir} (`wandb sync` "
               f"uploads them)" if m.wandb_mode == "offline" else ""))


def main(argv: list[str] | None = None) -> int:
    class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
        pass

    ap = argparse.ArgumentParser(prog="python -m raylatent.ablate", description=__doc__, formatter_class=_Help,
                                 epilog="example: python -m raylatent.ablate --grid smoke --set "
                                        "directions.seeds=[0,1,2] --dry-run")
    ap.add_argument("--grid", required=True, help="smoke | full | path/to/grid.yaml")
    ap.add_argument("--out", default=None, help="run directory (default runs/<grid>)")
    ap.add_argument("--report-dir", default=None, help="report directory (default reports/<grid>)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a grid field, e.g. --set directions.seeds=[0,1]")
    ap.add_argument("--resume", action="store_true",
                    help="restore an interrupted directions experiment (finished trials are kept)")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the plan and a wall-clock estimate (calibrated by timing a few steps); run nothing")
    ap.add_argument("--calibrate-on", choices=("local", "cluster"), default="local",
                    help="dry run: time the steps on this machine, or as a Ray task on the --address cluster "
                         "(its accelerators)")
    ap.add_argument("--cpus", type=float, default=None,
                    help="dry run: plan for this many CPUs (default: the --address cluster's, else this machine's)")
    ap.add_argument("--gpus", type=float, default=None, help="dry run: plan for this many GPUs (as --cpus)")
    ap.add_argument("--print-config", action="store_true",
                    help="print the resolved grid (YAML, every default and --set applied); run nothing")
    ap.add_argument("--address", default=None, help="attach to a running Ray cluster (e.g. auto)")
    ap.add_argument("--no-dashboard", action="store_true", help="start the local Ray without its dashboard")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="also Tune's status table, Ray Data's progress bars and Ray's own INFO lines")
    ap.add_argument("-q", "--quiet", action="store_true",
                    help="stage lines, warnings and the final line only (no epoch or trial lines)")
    args = ap.parse_args(argv)
    try:
        grid = load_grid(args.grid, args.set)
        run_dir = Path(args.out or Path("runs") / grid.name).resolve()
        report_dir = Path(args.report_dir or Path("reports") / grid.name).resolve()
        for flag, d in (("--out", run_dir), ("--report-dir", report_dir)):
            if d.exists() and not d.is_dir():
                raise ConfigError(f"{flag} {d}: is a file; give a folder")
        if grid.data.path:  # checked before anything is written: the source is never written
            src = Path(grid.data.path).expanduser().resolve()
            for flag, d in (("--out", run_dir), ("--report-dir", report_dir)):
                if d == src or src in d.parents or d in src.parents:
                    raise ConfigError(f"{flag} {d} overlaps data.path {src} (one inside the other); choose a "
                                      f"folder outside the source tree (nothing was written)")
        plan = Plan(grid, run_dir, report_dir)
        if args.print_config:
            import yaml

            print(yaml.safe_dump(json.loads(json.dumps(grid.to_dict(), default=list)), sort_keys=False), end="")
            return 0
        if args.dry_run:
            if grid.search is not None:  # a search grid: its space, trial count and the scheduler's cost
                from raylatent.dryrun import dry_run_search

                dry_run_search(plan, address=args.address, cpus=args.cpus, gpus=args.gpus)
            else:
                from raylatent.dryrun import dry_run

                dry_run(plan, address=args.address, calibrate_on=args.calibrate_on, cpus=args.cpus, gpus=args.gpus)
            return 0
        return run_all(plan, args)
    except ConfigError as e:
        print(f"raylatent.ablate: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("raylatent.ablate: interrupted; finished stages and trials are kept, rerun with --resume",
              file=sys.stderr)
        return 130


def _quiet_workers() -> None:
    """Ray Train's workers log every `train.report` (a long metrics dict, per worker) and Ray Data
    three lines per dataset split per epoch: 360 of a smoke run's 1,250 console lines, beside the
    one line per epoch the driver prints. Runs in every Ray worker; warnings still pass."""
    import logging

    from ray.train.v2._internal.execution import context

    import warnings

    logging.getLogger(context.__file__).setLevel(logging.WARNING)  # Ray names this logger by its path
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # the driver turned Ray Data's progress bars off (they reach the Train workers with its
    # DataContext), and each worker warned that they are off; and Ray Train's own use of a Ray
    # Data option it deprecated (nothing a user of raylatent can act on)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*exclude_resources.*is deprecated")


def _quiet_workers_without_state_api() -> None:
    """Also: without the dashboard there is no State API, and Ray Train's placement-group cleaner (a
    safety net for a controller that dies ungracefully) warns once a second while a generator
    trains (140 lines a smoke run)."""
    import logging

    _quiet_workers()
    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(
        logging.ERROR)


def run_all(plan: Plan, args) -> int:
    """Every stage, its console also saved with timestamps in RUN_DIR/console.log."""
    from raylatent.console import tee_console
    from raylatent.monitor import check_reachable

    check_reachable(plan.grid.monitor)  # before anything is written or started

    plan.run_dir.mkdir(parents=True, exist_ok=True)
    restore = tee_console(plan.run_dir / "console.log")
    try:
        return _run_all(plan, args)
    finally:
        restore()


def _run_all(plan: Plan, args) -> int:
    import ray

    grid = plan.grid
    verbose = bool(getattr(args, "verbose", False))
    if not verbose:  # Ray Data's per-split progress bars (dozens of lines an epoch in a log file) and
        import logging  # its "Running Dataset" / execution-plan INFO lines on the driver

        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        # ... and its warning that they are off, which we just chose
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    if not ray.is_initialized():
        # worker output reaches the driver (per-epoch lines from the Train controller), Ray's
        # own INFO chatter does not
        ctx = ray.init(address=args.address, include_dashboard=not args.no_dashboard,
                       logging_config=ray.LoggingConfig(encoding="TEXT", log_level="INFO" if verbose else "WARNING"),
                       runtime_env={} if verbose else
                       {"worker_process_setup_hook": _quiet_workers_without_state_api
                        if args.no_dashboard else _quiet_workers})
    else:
        ctx = None
    monitoring_banner(ctx, plan)
    times = {}
    (plan.run_dir / "grid.json").write_text(json.dumps(_public_grid(grid), indent=1))
    with _stage("ingest") as t:
        shards = run_data(plan)
    times["ingest"] = t.s
    n = grid.generators.replicates
    if n == 1:
        (plan.run_dir / REPLICATES).unlink(missing_ok=True)  # an earlier run's replicates are not this run's
        return _run_replicate(plan, args, times, shards)
    write_replicates(plan, [plan.replicate(i) for i in range(n)])
    for r in range(n - 1, -1, -1):  # replicate 0 last: its report (the main one) sums them all up
        sub = plan.replicate(r)
        print(f"\n=== replicate {r + 1} of {n}: generators seeded {sub.grid.generators.seed}"
              + (f" ({', '.join(sub.grid.generators.kinds)}; the others are replicate 1's)" if r else "") + " ===")
        if r:
            sub.run_dir.mkdir(parents=True, exist_ok=True)
            (sub.run_dir / "grid.json").write_text(json.dumps(_public_grid(sub.grid), indent=1))
        rc = _run_replicate(sub, args, times if r == 0 else {}, shards)
        if rc:
            return rc
    return 0


def write_replicates(plan: Plan, subs: list[Plan]) -> None:
    """RUN_DIR/replicates.json: where each replicate's run folder and report are, for the main report."""
    info = [{"replicate": i, "seed": p.grid.generators.seed, "run_dir": os.path.relpath(p.run_dir, plan.run_dir),
             "report": os.path.relpath(p.report_dir / "REPORT.md", plan.report_dir)} for i, p in enumerate(subs)]
    (plan.run_dir / REPLICATES).write_text(json.dumps(info, indent=1))


def _run_replicate(plan: Plan, args, times: dict, shards: Path) -> int:
    """The generators, directions and report stages of one replicate (the whole run when there is one)."""
    from raylatent.tune.stage import RESULTS, render_for_report, run_directions
    from raylatent.train.stage import run_generators

    grid = plan.grid
    verbose, quiet = bool(getattr(args, "verbose", False)), bool(getattr(args, "quiet", False))
    with _stage("generators (Ray Train)") as t:
        from raylatent.data.ingest import load_manifest

        plan.resolve_generators(load_manifest(shards))
        gcfg = grid.generators
        if grid.search is not None and grid.search.trains_generators:
            fixed = plan.read_kinds()
            print("generators: each search trial trains its own (search.generators); "
                  + (f"here only the fixed {', '.join(fixed)}" if fixed else "none here"))
            gcfg = dataclasses.replace(gcfg, kinds=tuple(fixed)) if fixed else None
        if gcfg is not None:
            run_generators(shards, gcfg, plan.generators, epoch_lines=not quiet, monitor=grid.monitor)
    times["generators"] = t.s
    if grid.search is not None:  # a search grid: the search stage and its report instead of the grid's
        return run_search_stage(plan, args, times, shards)
    n_trials = len(grid.directions.trials())
    with _stage(f"directions (Ray Tune, {n_trials} trials)") as t:
        plan.resolve_directions()
        records = run_directions(plan.generators, grid.directions, plan.directions, resume=args.resume,
                                 shards=str(shards), digests=plan.digests, verbose=1 if verbose else 0,
                                 trial_lines=not quiet, monitor=grid.monitor)
        if (plan.directions / RESULTS).exists():
            plan.renders = render_for_report(plan.generators, plan.directions, shards, grid.report.shifts,
                                             grid.report.z_direction,
                                             explorer_directions=grid.report.explorer_directions)
    times["directions"] = t.s
    if not (plan.directions / RESULTS).exists():
        return 1
    _write_latest(plan)
    with _stage("report") as t:
        from raylatent.report.build import build_report

        _record_times(plan, times)
        build_report(plan.run_dir, plan.report_dir, grid_name=grid.name)
    closed = len(records) - n_trials
    print(f"\nreport: {plan.report_dir / 'REPORT.md'}  ({n_trials} trials"
          + (f" and {closed} direction sets computed once per generator: closed-form methods and positive "
             "controls)" if closed > 0 else ")"))
    return 0


def run_search_stage(plan: Plan, args, times: dict, shards: Path) -> int:
    from raylatent.discovery.records import RESULTS
    from raylatent.report.search import build_search_report
    from raylatent.search.run import run_search

    s = plan.grid.search
    with _stage(f"search (Ray Tune, {s.algorithm}, {s.n_trials()} samples + the default, scheduler {s.scheduler})") as t:
        from raylatent.data.ingest import load_manifest

        plan.resolve_search(load_manifest(shards)["fingerprint"])
        run_search(plan.generators, plan.grid, plan.search, resume=args.resume, digests=plan.digests,
                   verbose=1 if getattr(args, "verbose", False) else 0, shards=shards)
    times["search"] = t.s
    if not (plan.search / RESULTS).exists():
        return 1
    with _stage("search report") as t:
        path = build_search_report(plan.search, plan.report_dir, grid_name=plan.grid.name)
        _record_times(plan, times)
    print(f"\nsearch report: {path}")
    return 0


def _public_grid(grid) -> dict:
    """The grid as run files keep it: data.path pseudonymised (a folder name may be a patient's)."""
    d = grid.to_dict()
    if d["data"].get("path"):
        from raylatent.data.config import resolve_salt
        from raylatent.data.dicom import public_source

        d["data"]["path"] = public_source(d["data"]["path"], resolve_salt())
    return d


def _write_latest(plan: Plan) -> None:
    """What the reporter reads: stage folders relative to RUN_DIR (so a copied run still works)."""
    import dataclasses
    import platform

    import torch

    hw = f"{platform.machine()}, {os.cpu_count()} CPUs"
    if torch.cuda.is_available():
        hw += f", {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    info = {"grid": plan.grid.name,
            "stages": {k: os.path.relpath(getattr(plan, k), plan.run_dir)
                       for k in ("data", "generators", "directions", "renders")},
            **({"root": os.path.relpath(plan.root, plan.run_dir)} if plan.root else {}),
            "data_source": _public_grid(plan.grid)["data"]["path"] or "built-in thorax phantom "
                           f"({plan.grid.data.patients} patients x {plan.grid.data.slices} slices)",
            "hardware": hw, "report": dataclasses.asdict(plan.grid.report)}
    (plan.run_dir / "latest.json").write_text(json.dumps(info, indent=1))


def _record_times(plan: Plan, times: dict) -> None:
    path = plan.run_dir / "stage_times.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update({k: round(v, 1) for k, v in times.items()})
    path.write_text(json.dumps(old, indent=1))


if __name__ == "__main__":
    sys.exit(main())
