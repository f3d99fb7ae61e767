"""`python -m raylatent.phantom --out DIR --patients N --slices M`: write the synthetic thorax cohort."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from raylatent.data.phantom import LIMITS, PhantomParams, generate, preview
from raylatent.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m raylatent.phantom", description=__doc__)
    ap.add_argument("--out", required=True, help="a new or empty folder (or an earlier cohort of ours) to write "
                                                 "patient/study/series/NNNN.dcm into")
    ap.add_argument("--patients", type=int, default=16, help=f"patients, in {list(LIMITS['patients'])}")
    ap.add_argument("--slices", type=int, default=32, help="slices per patient, apex to abdomen, "
                                                           f"in {list(LIMITS['slices'])}")
    ap.add_argument("--matrix", type=int, default=256, help=f"image matrix (pixels per side), in {list(LIMITS['matrix'])}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preview", default=None, help="also write a PNG grid of slices (patients x z); its folder must exist")
    args = ap.parse_args(argv)
    try:
        if args.preview is not None:
            png = Path(args.preview)
            if png.is_dir() or not png.parent.resolve().is_dir():
                raise ConfigError(f"--preview {args.preview}: give a .png file path in an existing folder")
        out = generate(args.out, PhantomParams(args.patients, args.slices, args.matrix, args.seed))
    except ConfigError as e:
        print(f"raylatent.phantom: error: {e}", file=sys.stderr)
        return 2
    if args.preview:
        preview(out, args.preview)
        print(f"phantom: preview -> {args.preview}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
