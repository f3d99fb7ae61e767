"""A synthetic thorax CT cohort whose anatomy is driven by known factors.

Why: LIDC-IDRI is not everywhere (CI, a laptop), and the paper could judge its directions only by
eye. Each patient here has the eight factors the paper names (width, height, size, rotation,
y-position, fat thickness, breast size; z per slice) as ground truth, so discovered directions
can be scored. Shapes are analytic (super-ellipses in a body frame), HU values are textbook, and
the cohort is written as real CT DICOM that any reader accepts.

Geometry: 500 mm field of view, rows run anterior (top) to posterior (bottom) as CT is displayed,
the table under the patient. z in [0, 1] runs from the lung apex to the upper abdomen.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from raylatent.data.config import PHANTOM_LIMITS

FOV_MM = 500.0
SCAN_RADIUS_MM = 245.0
PADDING_STORED = -2000
INTERCEPT = -1024.0
PHANTOM_VERSION = "phantom-v2"
FACTOR_NAMES = ("factor_width", "factor_height", "factor_size", "factor_rotation", "factor_y",
                "factor_thickness", "factor_breast")
# Each image attribute's ground truth per slice: the physical quantity it estimates, taken from the
# phantom's geometry (see slice_truth). The generative factors above are relative scales and
# interact (body width = 300 mm x width x size; breasts add to height and area), so an attribute
# is validated against these columns, not against one generative knob.
ATTRIBUTE_TRUTH = {"width": "factor_width_mm", "height": "factor_height_mm", "size": "factor_size_cm2",
                   "rotation": "factor_rotation", "y": "factor_y_mm", "thickness": "factor_thickness",
                   "breast": "factor_breast_cm2", "z": "factor_z"}

HU = dict(air=-1000.0, lung=-850.0, fat=-100.0, muscle=45.0, blood=50.0, liver=60.0,
          bowel=25.0, cancellous=300.0, cortical=1100.0, rib=700.0, table=150.0, gland=30.0)


@dataclass(frozen=True)
class PatientFactors:
    width: float = 1.0       # lateral scale of the body (1 = 300 mm across)
    height: float = 1.0      # antero-posterior scale (1 = 200 mm)
    size: float = 1.0        # overall scale, applied on top of width and height
    rotation: float = 0.0    # in-plane rotation, degrees (positive = counter-clockwise on screen)
    y: float = 0.0           # vertical position of patient and table, mm (positive = lower)
    thickness: float = 15.0  # subcutaneous fat, mm
    breast: float = 0.0      # 0 = none, 1 = large

    def as_row(self) -> dict[str, float]:
        return {f"factor_{k}": float(v) for k, v in asdict(self).items()}


def sample_factors(rng: np.random.Generator) -> PatientFactors:
    """Independent draws: every factor varies on its own across the cohort."""
    return PatientFactors(
        width=float(rng.uniform(0.85, 1.15)), height=float(rng.uniform(0.85, 1.15)),
        size=float(rng.uniform(0.88, 1.12)), rotation=float(rng.uniform(-12, 12)),
        y=float(rng.uniform(-30, 30)), thickness=float(rng.uniform(6, 32)),
        breast=float(rng.uniform(0.3, 1.0)) if rng.random() < 0.5 else 0.0)


def _superellipse(u, v, cu, cv, a, b, p=2.0):
    return (np.abs((u - cu) / a) ** p + np.abs((v - cv) / b) ** p) <= 1.0


def _lung_scale(z: float) -> float:
    """Small at the apex, largest mid-thorax, gone below the diaphragm."""
    if z < 0.5:
        return 0.35 + 0.65 * math.sin(0.5 * math.pi * z / 0.5)
    return max(0.0, 1.0 - ((z - 0.5) / 0.38) ** 1.6)


def _breast_scale(f: PatientFactors, z: float) -> float:
    """Breasts over the upper and mid thorax, tapering off below z = 0.45, gone from z = 0.7."""
    if f.breast <= 0 or z >= 0.7:
        return 0.0
    return f.breast * (1.0 - max(0.0, z - 0.45) / 0.25 if z > 0.45 else 1.0)


def _breast_outline(u, v, a: float, b: float, br: float, side: int):
    return _superellipse(u, v, side * 0.42 * a, -b + 5, 55 * br + 1e-3, 42 * br + 1e-3)


def slice_truth(f: PatientFactors, z: float, res_mm: float = 1.0) -> dict[str, float]:
    """What each attribute measures, from the geometry alone (no blur, noise or pixels of a scan):
    the patient's outline (body super-ellipse plus breasts) on a fine grid in the body frame.
    Width/height: its extents across/along the anterior-posterior axis (mm); size: its area (cm^2);
    y: its centroid's vertical position in the image (mm); breast: tissue beyond the body (cm^2)."""
    a, b = 150.0 * f.width * f.size, 100.0 * f.height * f.size
    br = _breast_scale(f, z)
    u, v = np.meshgrid(np.arange(-a - 2, a + 2, res_mm), np.arange(-b - 110, b + 2, res_mm))
    body = _superellipse(u, v, 0, 0, a, b, 2.3)
    breast = np.zeros_like(body)
    if br > 0:
        for side in (-1, 1):
            breast |= _breast_outline(u, v, a, b, br, side)
        breast &= ~body
    tissue = body | breast
    uu, vv = u[tissue], v[tissue]
    th = math.radians(f.rotation)
    px = res_mm * res_mm / 100.0
    return {"factor_width_mm": float(uu.max() - uu.min() + res_mm),
            "factor_height_mm": float(vv.max() - vv.min() + res_mm),
            "factor_size_cm2": float(tissue.sum() * px),
            "factor_y_mm": float(f.y - math.sin(th) * uu.mean() + math.cos(th) * vv.mean()),
            "factor_breast_cm2": float(breast.sum() * px)}


def slice_factors(f: PatientFactors, z: float) -> dict[str, float]:
    """Every factor_* column of one slice: the generative factors, z and the physical truth."""
    return {**f.as_row(), "factor_z": z, **slice_truth(f, z)}


def render_slice(f: PatientFactors, z: float, matrix: int = 256, seed: int = 0,
                 noise_hu: float = 12.0) -> np.ndarray:
    """One axial slice in HU (float32, matrix x matrix) for factors f at height z."""
    sp = FOV_MM / matrix
    c = (np.arange(matrix) + 0.5) * sp - FOV_MM / 2
    x, y = np.meshgrid(c, c)
    rng = np.random.default_rng(seed)
    a = 150.0 * f.width * f.size
    b = 100.0 * f.height * f.size
    y0 = f.y
    th = math.radians(f.rotation)
    dx, dy = x, y - y0
    # body frame: u lateral (patient's right on screen left), v anterior(-) to posterior(+)
    u = math.cos(th) * dx - math.sin(th) * dy
    v = math.sin(th) * dx + math.cos(th) * dy
    img = np.full_like(x, HU["air"])
    body = _superellipse(u, v, 0, 0, a, b, 2.3)
    img[body] = HU["fat"]
    t = f.thickness
    ai, bi = a - t, b - t
    inner = _superellipse(u, v, 0, 0.06 * t, ai, bi, 2.3)
    img[inner] = HU["muscle"]
    # breasts: anterior soft tissue beyond the chest wall, only over the upper and mid thorax
    br = _breast_scale(f, z)
    if br > 0:
        for side in (-1, 1):
            m = _breast_outline(u, v, a, b, br, side)
            img[m & (img < HU["fat"] + 1)] = HU["fat"]
            gland = _superellipse(u, v, side * 0.42 * a, -b - 14 * br, 28 * br + 1e-3, 16 * br + 1e-3)
            img[gland] = HU["gland"]
    # ribs: bone segments on a ring inside the muscle wall, obliquely placed so they move with z
    if z < 0.9:
        for k in range(14):
            ang = 2 * math.pi * (k + 0.5 * math.sin(7 * z)) / 14
            if abs(math.sin(ang)) > 0.95:
                continue  # sternum in front, spine behind
            ru, rv = 0.9 * ai * math.cos(ang), 0.9 * bi * math.sin(ang)
            img[_superellipse(u, v, ru, rv, 6.0, 6.0)] = HU["rib"]
    # lungs, then mediastinum and abdomen drawn over them
    ls = _lung_scale(z)
    if ls > 0.02:
        for side in (-1, 1):
            lung = _superellipse(u, v, side * 0.43 * ai, -0.02 * bi, 0.4 * ai * ls, 0.78 * bi * ls, 2.2)
            img[lung] = HU["lung"]
        n_vessels = int(60 * ls)
        vu = rng.uniform(-0.8 * ai, 0.8 * ai, n_vessels)
        vv = rng.uniform(-0.8 * bi, 0.8 * bi, n_vessels)
        vr = rng.uniform(1.0, 3.5, n_vessels)
        # vessels: disks in the body frame, each tested only inside its own bounding box
        cu, cv = np.cos(th), np.sin(th)
        for pu, pv, pr in zip(vu, vv, vr):
            px, py = cu * pu + cv * pv, -cv * pu + cu * pv + y0  # body frame -> image mm
            j0, i0 = int((px + FOV_MM / 2) / sp), int((py + FOV_MM / 2) / sp)
            h = int(pr / sp) + 2
            sl = (slice(max(i0 - h, 0), i0 + h + 1), slice(max(j0 - h, 0), j0 + h + 1))
            m = _superellipse(u[sl], v[sl], pu, pv, pr, pr) & (img[sl] == HU["lung"])
            img[sl][m] = HU["blood"] - 10
    # liver (patient's right = screen left) and abdomen rising from below
    if z > 0.55:
        lv = min(1.0, (z - 0.55) / 0.3)
        img[_superellipse(u, v, -0.3 * ai, 0.05 * bi, 0.55 * ai * lv + 1, 0.7 * bi * lv + 1, 2.2)] = HU["liver"]
        if z > 0.75:
            ab = min(1.0, (z - 0.75) / 0.2)
            img[_superellipse(u, v, 0.35 * ai, 0.0, 0.45 * ai * ab + 1, 0.6 * bi * ab + 1)] = HU["bowel"]
            img[_superellipse(u, v, 0.35 * ai, -0.25 * bi, 0.2 * ai * ab + 1, 0.15 * bi * ab + 1)] = HU["air"] + 100
    # trachea (top), splitting into the main bronchi
    if z < 0.3:
        img[_superellipse(u, v, 0, -0.35 * bi, 9, 8)] = HU["air"]
    elif z < 0.42:
        s = (z - 0.3) / 0.12
        for side in (-1, 1):
            img[_superellipse(u, v, side * (6 + 30 * s), -0.3 * bi + 10 * s, 6, 6)] = HU["air"]
    # heart (left-anterior) and aorta
    if 0.3 < z < 0.8:
        hs = math.sin(math.pi * (z - 0.3) / 0.5)
        img[_superellipse(u, v, 0.15 * ai, -0.2 * bi, 0.35 * ai * hs + 1, 0.45 * bi * hs + 1)] = HU["blood"]
    if z < 0.3:  # arch region: great vessels
        img[_superellipse(u, v, -12, -0.15 * bi, 9, 9)] = HU["blood"]
    elif z < 0.45:
        img[_superellipse(u, v, 0.05 * ai, -0.25 * bi, 15, 15)] = HU["blood"]
    img[_superellipse(u, v, 22, 0.45 * bi, 12, 12)] = HU["blood"]  # descending aorta
    # spine: vertebral body with cortical rim, canal, posterior elements; sternum in front
    vb_v = 0.55 * bi
    img[_superellipse(u, v, 0, vb_v, 22, 19)] = HU["cortical"]
    img[_superellipse(u, v, 0, vb_v, 18, 15)] = HU["cancellous"]
    sp_v = max(vb_v + 24, bi - 10)  # spinous process stays inside the muscle wall
    img[_superellipse(u, v, 0, (vb_v + sp_v) / 2 + 4, 7, 7)] = HU["muscle"] - 20
    img[_superellipse(u, v, 0, sp_v, 5, 8)] = HU["cortical"]
    if z < 0.7:
        img[_superellipse(u, v, 0, -0.93 * bi, 14, 6)] = HU["cortical"] - 300
    # the table: does not rotate with the patient, follows the patient's height
    table_top = y0 + b + 8.0
    table = (np.abs(x) < 220) & (y > table_top) & (y < table_top + 12) & (x ** 2 + y ** 2 < SCAN_RADIUS_MM ** 2)
    img[table] = HU["table"]
    # acquisition: blur (system PSF), then noise, then the circular field of view
    img = ndimage.gaussian_filter(img, sigma=0.6 * matrix / 256)  # ~1.2 mm PSF
    img = img + rng.normal(0.0, noise_hu, img.shape)
    return img.astype(np.float32)


def scan_mask(matrix: int) -> np.ndarray:
    sp = FOV_MM / matrix
    c = (np.arange(matrix) + 0.5) * sp - FOV_MM / 2
    x, y = np.meshgrid(c, c)
    return x ** 2 + y ** 2 <= SCAN_RADIUS_MM ** 2


@dataclass(frozen=True)
class PhantomParams:
    patients: int = 16
    slices: int = 32
    matrix: int = 256
    seed: int = 0

    def key(self) -> str:
        blob = json.dumps({"v": PHANTOM_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _uid(*parts) -> str:
    from pydicom.uid import generate_uid

    # one joined source: pydicom concatenates sources, so ("1", "23") and ("12", "3") would collide
    return generate_uid(entropy_srcs=["|".join([PHANTOM_VERSION, *map(str, parts)])])


def _dataset(hu: np.ndarray, matrix: int, pid: str, name: str, study: str, series: str,
             sop: str, index: int, z_mm: float):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = _uid("implementation")
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
    ds.Modality = "CT"
    ds.Manufacturer = "raylatent synthetic phantom"
    ds.PatientName, ds.PatientID = name, pid
    ds.PatientBirthDate, ds.PatientSex = "", "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.StudyDate = ds.SeriesDate = "20000101"
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, index + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.KVP = 120
    ds.SliceThickness = 2.5
    ds.PixelSpacing = [FOV_MM / matrix, FOV_MM / matrix]
    ds.ImagePositionPatient = [-FOV_MM / 2, -FOV_MM / 2, z_mm]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceLocation = z_mm
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = matrix
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = INTERCEPT, 1, "HU"
    ds.PixelPaddingValue = PADDING_STORED
    ds.WindowCenter, ds.WindowWidth = 40, 400
    stored = np.clip(np.rint(hu - INTERCEPT), -1024, 32767).astype(np.int16)
    stored[~scan_mask(matrix)] = PADDING_STORED
    ds.PixelData = stored.tobytes()
    return ds


MARKER = ".raylatent-phantom"  # this folder is ours: a cohort written by generate(), replaceable as a whole
LIMITS = PHANTOM_LIMITS


def check_params(params: PhantomParams) -> None:
    """Refuse a cohort size outside LIMITS before any work (one line naming the bound)."""
    from raylatent.errors import ConfigError

    for name, (lo, hi) in LIMITS.items():
        v = getattr(params, name)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ConfigError(f"--{name} {v!r}: must be a whole number in [{lo}, {hi}]")


def _ours(folder: Path) -> bool:
    """A folder generate() wrote, holding nothing else: our marker, phantom.json, factors.csv and
    the patient folders phantom.json lists (nothing a user added would be deleted with it)."""
    try:
        if not (folder / MARKER).is_file():
            return False
        info = json.loads((folder / "phantom.json").read_text())
        mine = {MARKER, "phantom.json", "factors.csv",
                *(f"PHANTOM-{int(info['seed']):03d}-{p:04d}" for p in range(int(info["patients"])))}
        return all(e.name in mine for e in folder.iterdir())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def claim_folder(out: Path) -> None:
    """Refuse an --out that holds anything but a cohort of ours (nothing in it is touched)."""
    from raylatent.errors import ConfigError

    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ConfigError(f"--out {out}: exists and is not a folder; give a new or empty folder")
    if out.is_dir() and any(out.iterdir()) and not _ours(out):
        raise ConfigError(f"--out {out}: not empty and not a phantom cohort written by raylatent (or files were "
                          f"added to one); give a new or empty folder (nothing in it was touched)")


def generate(out: str | os.PathLike, params: PhantomParams, log=print) -> Path:
    """Write the cohort to `out`: built beside it, then renamed in; skipped if done. An existing
    `out` is replaced only when it is an earlier cohort of ours and holds nothing else."""
    check_params(params)
    out = Path(os.path.abspath(out))
    stamp = out / "phantom.json"
    if stamp.is_file():  # nothing is written or deleted on this path
        try:
            if json.loads(stamp.read_text()).get("key") == params.key():
                log(f"phantom: {out} is up to date; nothing to do")
                return out
        except (OSError, ValueError, AttributeError):
            pass  # damaged: written again below, if the folder is ours
    claim_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    rng = np.random.default_rng(params.seed)
    rows = []
    try:
        for p in range(params.patients):
            f = sample_factors(rng)
            pid = f"PHANTOM-{params.seed:03d}-{p:04d}"
            name = f"Phantom^Synthetic{p:04d}"
            study, series = _uid(params.key(), p, "study"), _uid(params.key(), p, "series")
            sdir = tmp / pid / "study-1" / "series-1"
            sdir.mkdir(parents=True)
            for s in range(params.slices):
                z = s / max(params.slices - 1, 1)
                z_mm = -300.0 * z  # apex at the top of the range, abdomen below
                hu = render_slice(f, z, params.matrix, seed=params.seed * 1_000_003 + p * 1009 + s)
                sop = _uid(params.key(), p, s)
                _dataset(hu, params.matrix, pid, name, study, series, sop, s, z_mm).save_as(
                    sdir / f"{s:04d}.dcm", enforce_file_format=True)
                rows.append({"sop_instance_uid": sop, "patient": pid, "slice": s, **slice_factors(f, z)})
        with open(tmp / "factors.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        (tmp / "phantom.json").write_text(json.dumps({"key": params.key(), "version": PHANTOM_VERSION,
                                                     **asdict(params)}, indent=1, sort_keys=True))
        (tmp / MARKER).touch()
        claim_folder(out)  # again: nothing may have been added while the cohort was written
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        if out.is_dir() and any(out.iterdir()):
            os.replace(out, old)  # ours (claimed above): moved aside, removed once the new one is in
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"phantom: {params.patients} patients x {params.slices} slices at {params.matrix}^2 -> {out}")
    return out


def cached(cache_root: str | os.PathLike, params: PhantomParams, log=print) -> Path:
    """The cohort for `params` under cache_root, generated once per parameter set."""
    return generate(Path(cache_root) / f"phantom-{params.key()}", params, log=log)


def preview(src: str | os.PathLike, png: str | os.PathLike, max_patients: int = 8,
            max_cols: int = 8, window=(-1000.0, 600.0)) -> None:
    """A grid of slices: one row per patient, columns across z, in a fixed HU window."""
    import pydicom
    from PIL import Image

    src = Path(src)
    patients = sorted(p for p in src.iterdir() if p.is_dir())[:max_patients]
    tiles = []
    for p in patients:
        files = sorted(p.rglob("*.dcm"))
        pick = [files[round(i * (len(files) - 1) / max(max_cols - 1, 1))] for i in range(min(max_cols, len(files)))]
        row = []
        for f in pick:
            ds = pydicom.dcmread(f)
            hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            hu[ds.pixel_array == ds.PixelPaddingValue] = -1000
            row.append(np.clip((hu - window[0]) / (window[1] - window[0]), 0, 1))
        tiles.append(np.concatenate(row, axis=1))
    width = max(t.shape[1] for t in tiles)
    grid = np.concatenate([np.pad(t, ((0, 0), (0, width - t.shape[1]))) for t in tiles], axis=0)
    Image.fromarray((grid * 255).astype(np.uint8)).save(png)
