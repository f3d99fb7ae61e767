"""`python -m raylatent.ingest --src DIR --out DIR`: DICOM tree -> Parquet shards."""
from __future__ import annotations

import argparse
import sys

from raylatent.config import ConfigError, IngestConfig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m raylatent.ingest", description=__doc__)
    ap.add_argument("--src", required=True, help="folder of CT DICOM files (any depth, any layout)")
    ap.add_argument("--out", required=True, help="output folder for train/, test/ and manifest.json")
    ap.add_argument("--size", type=int, default=128, help="output image size in pixels (default 128)")
    ap.add_argument("--test-frac", type=float, default=0.1, help="share of patients held out")
    ap.add_argument("--seed", type=int, default=0, help="seed of the patient split")
    ap.add_argument("--strict", action="store_true", help="exit non-zero when any file is skipped")
    ap.add_argument("--salt", default=None, help="pseudonym salt (default: $RAYLATENT_SALT or "
                    "~/.config/raylatent/salt)")
    ap.add_argument("--locate", metavar="PSEUDONYM", default=None,
                    help="print the real path of a pseudonymised path from the manifest's skipped list; "
                         "ingests nothing")
    args = ap.parse_args(argv)
    if args.locate:
        from raylatent.config import resolve_salt
        from raylatent.data.ingest import locate

        hits = locate(args.src, args.locate, resolve_salt(args.salt), args.out)
        print("\n".join(hits) if hits else f"raylatent.ingest: no file under {args.src} has pseudonym {args.locate}")
        return 0 if hits else 1
    try:
        cfg = IngestConfig(src=args.src, out=args.out, size=args.size, test_frac=args.test_frac,
                           seed=args.seed, strict=args.strict, salt=args.salt or "")
        from raylatent.data.ingest import ingest

        manifest = ingest(cfg)
    except ConfigError as e:
        print(f"raylatent.ingest: error: {e}", file=sys.stderr)
        return 2
    if cfg.strict and manifest["skipped"]:
        first = manifest["skipped"][0]
        print(f"raylatent.ingest: --strict: {len(manifest['skipped'])} files skipped, first "
              f"{first['path']}: {first['reason']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
