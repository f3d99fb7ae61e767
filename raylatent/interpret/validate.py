"""`python -m raylatent.interpret.validate --json FILE`: how well each image attribute tracks the
phantom's ground truth, at the image sizes the generators use.

A cohort with every factor varying at once (as in the smoke grid's data), each slice at a random
z; every attribute is compared with its truth column (phantom.ATTRIBUTE_TRUTH: the physical
quantity it estimates) by Spearman rho. Breast tissue is absent from most slices (no breasts, or
below z = 0.7), so its rho over all slices mostly ranks noise among ties at zero; it is reported
over the slices that have breast tissue, beside the no-breast slices' mean and spread.
z comes from the regressor, trained on other patients' slices (their slice_frac) as in a run.

z leakage: what the regressor reads into z that is not z. Slices at fixed z (LEAK_Z, LEAK_PATIENTS
patients each, every other factor varying): `spread` is the std of the predicted z about its mean
at each z (z units, z spans 0..1: the whole error at a fixed z; `spread_robust` 1.48 x its median
absolute deviation, which a few badly read patients do not dominate), `explained` the std of its
linear fit on the outline, fat and position factors (NUISANCE, each standardised within a z: the
part of the spread those factors cause; from the adjusted R^2, as a fit on k factors explains
about k/n of pure noise), `rho` the Spearman rho of the centred prediction with
each of them; `brightness_global` / `brightness_body` the mean |change| of the predicted z when
the whole image / the body alone is brightened by BRIGHT (model units; 75 HU). Reported for the
regressor as used (`z_leakage`) and for the same one on raw HU (`z_leakage_raw`, the regressor
before its input's brightness was undone).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from scipy.stats import spearmanr

from raylatent.data.dicom import hu_to_model, model_to_hu
from raylatent.data.phantom import ATTRIBUTE_TRUTH, render_slice, sample_factors, slice_factors
from scipy import ndimage

from raylatent.interpret.attributes import body_mask, measure_batch
from raylatent.interpret.zposition import ZRegressor

LEAK_Z = (0.2, 0.45, 0.7)
LEAK_PATIENTS = 40
NUISANCE = ("factor_width_mm", "factor_height_mm", "factor_size_cm2", "factor_thickness", "factor_rotation",
            "factor_y_mm")
BRIGHT = 0.05


def _slices(patients: int, per_patient: int, sizes, seed: int, random_z: bool, matrix: int = 256,
            fixed_z=None):
    """Rendered slices per size and their truth columns: per patient, `per_patient` slices at
    random z, evenly over 0..1, or (fixed_z) one at each of those z."""
    rng = np.random.default_rng(seed)
    images, truth = {s: [] for s in sizes}, []
    zs = None if fixed_z is None else list(fixed_z)
    per_patient = per_patient if zs is None else len(zs)
    for p in range(patients):
        f = sample_factors(rng)
        for i in range(per_patient):
            z = zs[i] if zs else float(rng.uniform(0, 1)) if random_z else i / max(per_patient - 1, 1)
            hu = render_slice(f, z, matrix, seed=seed * 100_003 + p * 101 + i)
            for s in sizes:
                images[s].append(hu_to_model(hu, s))
            truth.append(slice_factors(f, z))
    cols = {k: np.array([t[k] for t in truth]) for k in truth[0]}
    return {s: np.stack(v) for s, v in images.items()}, cols


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(spearmanr(a[ok], b[ok]).statistic) if ok.sum() > 3 else float("nan")


def _standardised_within(v: np.ndarray, group: np.ndarray) -> np.ndarray:
    out = np.zeros(len(v))
    for g in np.unique(group):
        m = group == g
        out[m] = (v[m] - v[m].mean()) / (v[m].std() + 1e-12)
    return out


def z_leakage(reg: ZRegressor, images: np.ndarray, truth: dict) -> dict:
    """How much the regressor's z moves with the outline, fat and brightness at a fixed z (see the
    module docstring)."""
    pred, g = reg.predict(images), truth["factor_z"]
    e = pred.copy()
    for z in np.unique(g):
        e[g == z] -= pred[g == z].mean()
    X = np.stack([_standardised_within(truth[c], g) for c in NUISANCE], 1)
    beta = np.linalg.lstsq(X, e, rcond=None)[0]
    n, k = X.shape
    r2 = 1.0 - float(((e - X @ beta) ** 2).sum()) / max(float((e ** 2).sum()), 1e-12)
    r2_adj = max(0.0, 1.0 - (1.0 - r2) * (n - 1) / max(n - k - 1, 1))  # noise alone fits k/n of it
    sub = images[::4]
    body = np.stack([ndimage.binary_dilation(body_mask(model_to_hu(x)), iterations=1) for x in sub])
    return {"spread": float(e.std()), "spread_robust": float(1.4826 * np.median(np.abs(e - np.median(e)))),
            "explained": float(e.std() * np.sqrt(r2_adj)),
            "rho": {c[len("factor_"):]: _rho(e, X[:, i]) for i, c in enumerate(NUISANCE)},
            "brightness_global": float(np.abs(reg.predict(sub + BRIGHT) - pred[::4]).mean()),
            "brightness_body": float(np.abs(reg.predict(sub + BRIGHT * body) - pred[::4]).mean())}


def validate(sizes=(32, 64, 128), patients: int = 40, per_patient: int = 2, z_train: int = 16,
             z_test: int = 8, slices: int = 32, seed: int = 0, leak_patients: int = LEAK_PATIENTS,
             z_raw: bool = True) -> dict:
    """{size: {attribute: rho, ...}} plus the breast and z details (see the module docstring);
    z_raw=False skips the raw-HU regressor's leakage (a second fit per size)."""
    images, truth = _slices(patients, per_patient, sizes, seed, random_z=True)
    tr_images, tr_truth = _slices(z_train, slices, sizes, seed + 1, random_z=False)
    te_images, te_truth = _slices(z_test, slices // 2, sizes, seed + 2, random_z=False)
    lk_images, lk_truth = _slices(leak_patients, 0, sizes, seed + 3, random_z=False, fixed_z=LEAK_Z)
    out = {"slices": len(truth["factor_z"]), "z_train_slices": len(tr_truth["factor_z"]),
           "z_test_slices": len(te_truth["factor_z"]), "z_leak_slices": len(lk_truth["factor_z"]),
           "sizes": {}}
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
        row["intensity_hu"] = [float(np.nanmean(m["intensity"])), float(np.nanstd(m["intensity"]))]
        row["z_leakage"] = z_leakage(reg, lk_images[s], lk_truth)
        if z_raw:
            raw = ZRegressor.fit(tr_images[s], tr_truth["factor_z"], normalise=False)
            row["z_raw"] = _rho(raw.predict(te_images[s]), te_truth["factor_z"])
            row["z_leakage_raw"] = z_leakage(raw, lk_images[s], lk_truth)
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
    for s, row in res["sizes"].items():
        for key in ("z_leakage", "z_leakage_raw"):
            if key in row:
                lk = row[key]
                print(f"{s:>4}  {key:14s} spread {lk['spread']:.3f} (robust {lk['spread_robust']:.3f}) "
                      f"explained {lk['explained']:.3f} rho "
                      + " ".join(f"{k} {v:+.2f}" for k, v in lk["rho"].items())
                      + f"  brightness: image {lk['brightness_global']:.3f} body {lk['brightness_body']:.3f}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
