"""`raylatent <command> ...`: one entry point for the study's commands (each is also
`python -m raylatent.<command>`).

    raylatent ablate --grid smoke            the whole study (ingest, generators, discovery, report)
    raylatent ingest --src CT/ --out shards  DICOM series -> Parquet shards
    raylatent phantom --out phantom/         the built-in thorax phantom as DICOM
    raylatent report RUN_DIR --out REPORT    rebuild a report
    raylatent bench chance --run RUN_DIR --json out.json
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {"ablate": "raylatent.ablate", "ingest": "raylatent.ingest", "phantom": "raylatent.phantom",
            "report": "raylatent.report.__main__", "bench": "raylatent.bench"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        from raylatent import __version__

        print(f"raylatent {__version__}\n{__doc__}")
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from raylatent import __version__

        print(__version__)
        return 0
    if argv[0] not in COMMANDS:
        print(f"raylatent: unknown command {argv[0]!r} (one of: {', '.join(COMMANDS)}); raylatent --help",
              file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
