"""Read CT DICOM into Hounsfield units and the model's [-1, 1] range.

Pure functions without Ray, so the exact numerics are unit-tested on real third-party files and
reused by the Ray Data pipeline (`ingest.py`), the serial benchmark baseline and the phantom tests.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.errors import InvalidDicomError

HU_MIN = -1000.0
HU_MAX = 2000.0
AIR_HU = -1000.0


class SkipFile(Exception):
    """A file that cannot become training slices; the message is the manifest's reason."""


@dataclass
class CTFrame:
    """One axial image in HU with the header facts later stages need (identifiers still raw:
    the caller hashes them before anything is written)."""

    hu: np.ndarray  # float32, rows x cols
    patient_id: str
    series_uid: str
    sop_uid: str
    frame: int
    z_mm: float  # NaN when the header has no position
    instance_number: int


def find_files(root: str | os.PathLike) -> list[str]:
    """Every regular file below root, any depth, as sorted paths relative to root.

    DICOM files need not end in .dcm (TCIA's do, many PACS exports do not), so nothing is
    filtered by name; hidden files and folders are skipped."""
    root = Path(root)
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            out.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(out)


def salted_key(salt: str, value: str) -> str:
    """Stable pseudonym for an identifier: never reversible without the salt."""
    return hashlib.sha256(f"{salt}\0{value}".encode()).hexdigest()[:20]


def _item(ds, seq_name: str, attr: str, frame_groups) -> object | None:
    """Look an attribute up the enhanced-DICOM way: per-frame group, then shared group."""
    for groups in frame_groups:
        if groups is None:
            continue
        seq = groups.get(seq_name)
        if seq:
            value = seq[0].get(attr)
            if value is not None:
                return value
    return None


def _rescale_and_z(ds, frame: int, n_frames: int) -> tuple[float, float, float]:
    per = ds.get("PerFrameFunctionalGroupsSequence")
    shared = ds.get("SharedFunctionalGroupsSequence")
    groups = [per[frame] if per is not None and frame < len(per) else None,
              shared[0] if shared else None]
    slope = _item(ds, "PixelValueTransformationSequence", "RescaleSlope", groups)
    intercept = _item(ds, "PixelValueTransformationSequence", "RescaleIntercept", groups)
    if slope is None:
        slope = ds.get("RescaleSlope", 1.0)
    if intercept is None:
        intercept = ds.get("RescaleIntercept", 0.0)
    pos = _item(ds, "PlanePositionSequence", "ImagePositionPatient", groups)
    if pos is None:
        pos = ds.get("ImagePositionPatient")
    if pos is not None and len(pos) == 3:
        z = float(pos[2])
    elif ds.get("SliceLocation") is not None and n_frames == 1:
        z = float(ds.SliceLocation)
    else:
        z = float("nan")
    return float(slope), float(intercept), z


def _padding_mask(ds, stored: np.ndarray) -> np.ndarray | None:
    """Pixels the scanner marked as outside the scan (PixelPaddingValue, optionally a range).

    Compared on stored values, before rescale, as the standard defines them."""
    pad = ds.get("PixelPaddingValue")
    if pad is None:
        return None
    lim = ds.get("PixelPaddingRangeLimit")
    if isinstance(pad, bytes):  # US or SS read as raw bytes when VR is ambiguous
        pad = int.from_bytes(pad[:2], "little", signed=bool(ds.get("PixelRepresentation", 0)))
    lo, hi = (pad, pad) if lim is None else (min(pad, lim), max(pad, lim))
    return (stored >= lo) & (stored <= hi)


def read_ct(source: str | os.PathLike | bytes) -> list[CTFrame]:
    """Decode one file to HU frames or raise SkipFile with a manifest-ready reason.

    pydicom's warnings about odd-but-readable values are silenced: a 246k-file run would print
    thousands, and what matters (the skip reason) lands in the manifest."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read_ct(source)


@dataclass
class CTHeader:
    """What a file promises before its pixels are decoded (identifiers still raw)."""

    patient_id: str
    series_uid: str
    sop_uid: str
    instance_number: int
    z_mm: list[float]  # one per frame (NaN when unknown)


def _open(source, **kw):
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        ds = pydicom.dcmread(fp, **kw)
    except InvalidDicomError:
        raise SkipFile("not DICOM") from None
    except (EOFError, OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise SkipFile(f"truncated or corrupt header ({type(e).__name__})") from None
    if len(ds) == 0:  # pydicom stops quietly at a cut-off element and keeps only file meta
        raise SkipFile("truncated or corrupt (no readable data elements)")
    return ds


def _header(ds) -> CTHeader:
    """The header-level checks shared by the scan and the full read."""
    modality = str(ds.get("Modality", "") or "")
    if modality != "CT":
        raise SkipFile(f"not CT (modality {modality or 'missing'})")
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise SkipFile("no pixel data")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise SkipFile("not a grayscale image (SamplesPerPixel != 1)")
    sop_uid = str(ds.get("SOPInstanceUID", "") or "")
    if not sop_uid:
        raise SkipFile("no SOPInstanceUID")
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    return CTHeader(str(ds.get("PatientID", "") or ""), str(ds.get("SeriesInstanceUID", "") or ""),
                    sop_uid, int(ds.get("InstanceNumber", 0) or 0),
                    [_rescale_and_z(ds, f, n_frames)[2] for f in range(n_frames)])


def scan_header(source: str | os.PathLike | bytes) -> CTHeader:
    """Header only (pixel data deferred, not decoded): the ingest's cheap planning pass."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _header(_open(source, defer_size="4 KB"))


def _read_ct(source: str | os.PathLike | bytes) -> list[CTFrame]:
    ds = _open(source)
    head = _header(ds)
    try:
        pixels = ds.pixel_array
    except (NotImplementedError, RuntimeError) as e:
        ts = ds.file_meta.get("TransferSyntaxUID")
        name = getattr(ts, "name", str(ts))
        msg = str(e)
        if "decod" in msg.lower() and ("plugin" in msg.lower() or "available" in msg.lower()):
            raise SkipFile(f"undecodable transfer syntax ({name})") from None
        raise SkipFile(f"pixel data failed to decode ({name})") from None
    except (ValueError, EOFError, OSError, AttributeError, KeyError) as e:
        raise SkipFile(f"truncated pixel data ({type(e).__name__})") from None
    n_frames = len(head.z_mm)
    if n_frames == 1 and pixels.ndim == 2:
        pixels = pixels[None]
    if pixels.ndim != 3:
        raise SkipFile(f"unexpected pixel array shape {pixels.shape}")
    frames = []
    for f in range(pixels.shape[0]):
        stored = pixels[f]
        slope, intercept, z = _rescale_and_z(ds, f, n_frames)
        hu = stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)
        mask = _padding_mask(ds, stored)
        if mask is not None:
            hu[mask] = AIR_HU
        frames.append(CTFrame(hu, head.patient_id, head.series_uid, head.sop_uid, f, z, head.instance_number))
    return frames


def hu_to_model(hu: np.ndarray, size: int) -> np.ndarray:
    """HU image -> size x size float32 in [-1, 1], as the paper preprocesses.

    Clip to [HU_MIN, HU_MAX] first (so -3024 HU padding cannot ring through the filter), resize
    with Pillow's anti-aliased Lanczos (the paper's filter), clip the Lanczos overshoot, then
    min-max scale with the *window's* bounds, not the image's: a fixed affine map keeps HU
    recoverable (`model_to_hu`) for the attribute extractors and fixed-window figures."""
    x = np.clip(np.asarray(hu, dtype=np.float32), HU_MIN, HU_MAX)
    if x.shape != (size, size):
        x = np.asarray(Image.fromarray(x, mode="F").resize((size, size), Image.Resampling.LANCZOS),
                       dtype=np.float32)
        x = np.clip(x, HU_MIN, HU_MAX)
    return ((x - HU_MIN) / (HU_MAX - HU_MIN) * 2.0 - 1.0).astype(np.float32)


def model_to_hu(x):
    """Inverse of the scaling in `hu_to_model` (works on numpy arrays and torch tensors)."""
    return (x + 1.0) * 0.5 * (HU_MAX - HU_MIN) + HU_MIN
