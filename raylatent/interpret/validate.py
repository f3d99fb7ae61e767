"""`python -m raylatent.interpret.validate --json FILE`: how well each image attribute tracks the
phantom's ground truth, at the image sizes the generators use.

A cohort with every factor varying at once (as in the smoke grid's data), each slice at a random
z; every attribute is compared with its truth column (phantom.ATTRIBUTE_TRUTH: the physical
quantity it estimates) by Spearman rho. Breast tissue is absent from most slices (no breasts, or
below z = 0.7), so its rho over all slices mostly ranks noise among ties at zero; it is reported
over the slices that have breast tissue, beside the no-breast slices' mean and spread.
z comes from the regressor, trained on other patients' slices (their slice_frac) as in a run.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from scipy.stats import spearmanr

from raylatent.data.dicom import hu_to_model, model_to_hu
from raylatent.data.phantom import ATTRIBUTE_TRUTH, render_slice, sample_factors, slice_factors
from raylatent.interpret.attributes import measure_batch
from raylatent.interpret.zposition import ZRegressor


def _slices(patients: int, per_patient: int, sizes, seed: int, random_z: bool, matrix: int = 256):
    rng = np.random.default_rng(seed)
    images, truth = {s: [] for s in sizes}, []
    for p in range(patients):
        f = sample_factors(rng)
        for i in range(per_patient):
            z = float(rng.uniform(0, 1)) if random_z else i / max(per_patient - 1, 1)
            hu = render_slice(f, z, matrix, seed=seed * 100_003 + p * 101 + i)
            for s in sizes:
                images[s].append(hu_to_model(hu, s))
            truth.append(slice_factors(f, z))
    cols = {k: np.array([t[k] for t in truth]) for k in truth[0]}
    return {s: np.stack(v) for s, v in images.items()}, cols


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(spearmanr(a[ok], b[ok]).statistic) if ok.sum() > 3 else float("nan")


def validate(sizes=(32, 64, 128), patients: int = 40, per_patient: int = 2, z_train: int = 16,
             z_test: int = 8, slices: int = 32, seed: int = 0) -> dict:
    """{size: {attribute: rho, ...}} plus the breast and z details (see the module docstring)."""
    images, truth = _slices(patients, per_patient, sizes, seed, random_z=True)
    tr_images, tr_truth = _slices(z_train, slices, sizes, seed + 1, random_z=False)
    te_images, te_truth = _slices(z_test, slices // 2, sizes, seed + 2, random_z=False)
    out = {"slices": len(truth["factor_z"]), "z_train_slices": len(tr_truth["factor_z"]),
           "z_test_slices": len(te_truth["factor_z"]), "sizes": {}}
    has_breast = truth["factor_breast_cm2"] > 0
    for s in sizes:
        m = measure_batch(model_to_hu(images[s]))
        row = {a: _rho(m[a], truth[c]) for a, c in ATTRIBUTE_TRUTH.items() if a not in ("breast", "z")}
        row["breast"] = _rho(m["breast"][has_breast], truth["factor_breast_cm2"][has_breast])
        row["breast_all_slices"] = _rho(m["breast"], truth["factor_breast_cm2"])
        row["breast_none_cm2"] = [float(np.nanmean(m["breast"][~has_breast])),
                                  float(np.nanstd(m["breast"][~has_breast]))]
        reg = ZRegressor.fit(tr_images[s], tr_truth["factor_z"])
        row["z"] = _rho(reg.predict(te_images[s]), te_truth["factor_z"])
        out["sizes"][str(s)] = row
    out["breast_slices"] = int(has_breast.sum())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m raylatent.interpret.validate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--sizes", default="32,64,128")
    ap.add_argument("--patients", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    res = validate(tuple(int(x) for x in a.sizes.split(",")), a.patients, seed=a.seed)
    names = [*ATTRIBUTE_TRUTH]
    print("size  " + " ".join(f"{n:>9}" for n in names))
    for s, row in res["sizes"].items():
        print(f"{s:>4}  " + " ".join(f"{row[n]:9.3f}" for n in names)
              + f"   (breast over all slices {row['breast_all_slices']:.3f}; no-breast slices "
                f"{row['breast_none_cm2'][0]:.1f} +- {row['breast_none_cm2'][1]:.1f} cm^2)")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
