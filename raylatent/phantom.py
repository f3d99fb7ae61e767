"""`python -m raylatent.phantom --out DIR --patients N --slices M`: write the synthetic thorax cohort."""
from __future__ import annotations

import argparse
import sys

from raylatent.data.phantom import PhantomParams, generate, preview


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m raylatent.phantom", description=__doc__)
    ap.add_argument("--out", required=True, help="folder to write patient/study/series/NNNN.dcm into")
    ap.add_argument("--patients", type=int, default=16)
    ap.add_argument("--slices", type=int, default=32, help="slices per patient, apex to abdomen")
    ap.add_argument("--matrix", type=int, default=256, help="image matrix (pixels per side)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preview", default=None, help="also write a PNG grid of slices (patients x z)")
    args = ap.parse_args(argv)
    for name in ("patients", "slices", "matrix"):
        if getattr(args, name) < (32 if name == "matrix" else 1):
            print(f"raylatent.phantom: error: --{name} {getattr(args, name)} is too small", file=sys.stderr)
            return 2
    out = generate(args.out, PhantomParams(args.patients, args.slices, args.matrix, args.seed))
    if args.preview:
        preview(out, args.preview)
        print(f"phantom: preview -> {args.preview}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
