"""`python -m raylatent.report RUN_DIR --out REPORT_DIR`: rebuild a report from a run directory."""
from __future__ import annotations

import argparse
import sys

from raylatent.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m raylatent.report", description=__doc__)
    ap.add_argument("run_dir")
    ap.add_argument("--out", required=True, help="report directory (REPORT.md and assets/)")
    args = ap.parse_args(argv)
    from raylatent.report.build import build_report

    try:
        path = build_report(args.run_dir, args.out)
    except ConfigError as e:
        print(f"raylatent.report: error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"raylatent.report: error: {e.filename}: missing (is the run complete? rerun "
              f"python -m raylatent.ablate)", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
