"""Read CT DICOM into Hounsfield units and the model's [-1, 1] range.

Pure functions without Ray, so the exact numerics are unit-tested on real third-party files and
reused by the Ray Data pipeline (`ingest.py`), the serial benchmark baseline and the phantom tests.
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import re
import stat
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
MIN_SIDE = 16      # pixels: smaller images are not CT slices worth resizing up
MAX_SIDE = 4096    # pixels: larger is no CT slice (and would be a memory bomb)
MAX_FRAMES = 2048  # frames in one file (an enhanced CT volume has hundreds)
MAX_PIXEL_BYTES = 1 << 30  # Rows x Columns x Frames x BitsAllocated / 8, checked before decoding
MAX_INFLATED_BYTES = 1 << 30  # a deflated dataset, inflated (a 512 KB file can claim gigabytes)
DEFLATED = "1.2.840.10008.1.2.1.99"
AXIAL_COS = 0.9    # |cos| between the slice normal and the head-foot axis for an axial slice


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


def find_files(root: str | os.PathLike, odd: list[dict] | None = None) -> list[str]:
    """Every regular file below root, any depth, as sorted paths relative to root.

    DICOM files need not end in .dcm (TCIA's do, many PACS exports do not), so nothing is
    filtered by name; hidden files and folders are skipped. Anything that is not a regular file
    after resolving links (a FIFO would block the reader forever, a dangling link has nothing to
    read) is left out and, when `odd` is given, listed there with its reason."""
    root = Path(root)
    out: list[str] = []

    def note(rel: str, reason: str) -> None:
        if odd is not None:
            odd.append({"path": printable(rel), "reason": reason})

    def unreadable(e: OSError) -> None:  # os.walk drops a folder it cannot list: say so
        note(os.path.relpath(e.filename, root), f"unreadable folder ({e.strerror})")

    visited = {os.path.realpath(root)}  # linked folders are followed once (a link loop ends here)
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):
        keep = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            real = os.path.realpath(os.path.join(dirpath, d))
            if real in visited:
                note(os.path.relpath(os.path.join(dirpath, d), root), "folder already read (a link loop or a "
                                                                    "second link to it)")
                continue
            visited.add(real)
            keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            if name.startswith("."):
                continue
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if printable(rel) != rel:  # bytes that are not UTF-8 cannot travel through Arrow's strings
                note(rel, "file or folder name is not UTF-8 text (rename it)")
                continue
            try:
                mode = os.stat(full).st_mode  # follows links
            except OSError as e:
                note(rel, "dangling symbolic link" if os.path.islink(full) else f"unreadable ({e.strerror})")
                continue
            if not stat.S_ISREG(mode):
                note(rel, f"not a regular file ({_KIND.get(stat.S_IFMT(mode), 'special')})")
                continue
            if not os.access(full, os.R_OK):
                note(rel, "unreadable (permission denied)")
                continue
            out.append(rel)
    return sorted(out)


def public_source(path: str | os.PathLike, salt: str) -> str:
    """A DICOM source folder as outputs may show it: every component of its absolute path
    pseudonymised (the root folder is often a patient's name or record number)."""
    parts = Path(os.path.abspath(os.path.expanduser(path))).parts[1:]
    return "DICOM folder /" + pseudonym_path(salt, os.path.join(*parts)) if parts else "DICOM folder /"


def printable(name: str) -> str:
    """A path as UTF-8 text: bytes that are not UTF-8 (kept by Python as surrogates) shown as U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


_KIND = {stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device",
         stat.S_IFBLK: "block device", stat.S_IFDIR: "folder"}


def pseudonym_path(salt: str, rel: str, patients: set[str] = frozenset()) -> str:
    """A relative path with every component pseudonymised: folder and file names in clinical
    exports carry names and record numbers (DOE^JOHN_MRN12345/x.dcm). A component that is a
    known patient ID becomes patient-<key>; any other becomes x-<salted hash>, keeping a short
    file extension. `python -m raylatent.ingest --locate` maps one back with the same salt."""
    parts = []
    for part in Path(rel).parts:
        key = salted_key(salt, part)
        if key in patients:
            parts.append(f"patient-{key[:12]}")
            continue
        stem, ext = os.path.splitext(part)
        keep = ext if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", ext) else ""
        parts.append(f"x-{salted_key(salt, stem if keep else part)[:12]}{keep}")
    return "/".join(parts)


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
        slope = ds.get("RescaleSlope")
    if intercept is None:
        intercept = ds.get("RescaleIntercept")
    if slope is None and intercept is None:  # Type 1 in the CT Image module: stored values are not HU
        raise SkipFile("no RescaleSlope/RescaleIntercept (stored values are not Hounsfield units)")
    try:
        slope = 1.0 if slope is None else float(slope)
        intercept = 0.0 if intercept is None else float(intercept)
    except (TypeError, ValueError):
        raise SkipFile(f"unreadable rescale ({slope!r}, {intercept!r})") from None
    if not (math.isfinite(slope) and math.isfinite(intercept)) or slope == 0:
        raise SkipFile(f"invalid rescale (slope {slope}, intercept {intercept})")
    orient = _item(ds, "PlaneOrientationSequence", "ImageOrientationPatient", groups)
    if orient is None:
        orient = ds.get("ImageOrientationPatient")
    _check_axial(orient)
    pos = _item(ds, "PlanePositionSequence", "ImagePositionPatient", groups)
    if pos is None:
        pos = ds.get("ImagePositionPatient")
    if pos is not None and len(pos) == 3:
        z = float(pos[2])
    elif ds.get("SliceLocation") is not None and n_frames == 1:
        z = float(ds.SliceLocation)
    else:
        z = float("nan")
    return slope, intercept, z


def _check_axial(orient) -> None:
    """A slice whose normal is not head-foot (a sagittal or coronal image, a localiser inside an
    axial series) would be trained on as if it were axial. Unknown orientation passes."""
    if orient is None or len(orient) != 6:
        return
    try:
        row, col = np.asarray([float(v) for v in orient[:3]]), np.asarray([float(v) for v in orient[3:]])
    except (TypeError, ValueError):
        raise SkipFile("unreadable ImageOrientationPatient") from None
    normal = np.cross(row, col)
    norm = float(np.linalg.norm(normal))
    if not np.isfinite(norm) or norm == 0 or abs(normal[2]) / norm < AXIAL_COS:
        raise SkipFile(f"not an axial slice (ImageOrientationPatient {[round(float(v), 3) for v in orient]})")


def _check_geometry(ds, n_frames: int) -> None:
    """Tiny images, and uncompressed pixel data whose length disagrees with the header's bit
    depth and size (pydicom would read the wrong number of pixels or pad silently)."""
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if min(rows, cols) < MIN_SIDE:
        raise SkipFile(f"image too small ({rows}x{cols}; at least {MIN_SIDE}x{MIN_SIDE})")
    if max(rows, cols) > MAX_SIDE:
        raise SkipFile(f"image too large ({rows}x{cols}; at most {MAX_SIDE}x{MAX_SIDE})")
    bits = int(ds.get("BitsAllocated", 0) or 0)
    if bits not in (8, 16, 32, 64):
        raise SkipFile(f"unsupported BitsAllocated {bits}")
    want = rows * cols * n_frames * bits // 8
    if want > MAX_PIXEL_BYTES:  # compressed or not: the decoded array would be this large
        raise SkipFile(f"pixel data would decode to {want} bytes ({rows}x{cols}x{n_frames} frames x {bits} bits), "
                       f"over the {MAX_PIXEL_BYTES} bound")
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if ts is not None and ts.is_compressed:
        return
    elem = ds.get_item("PixelData")
    if elem is None:
        return
    have = elem.length if getattr(elem, "length", None) not in (None, 0xFFFFFFFF) else len(elem.value or b"")
    if have < want:  # a file cut short, or a header promising more bits or pixels than there are
        raise SkipFile(f"truncated or short pixel data ({have} of {want} bytes for Rows x Columns x Frames x "
                       f"BitsAllocated = {rows}x{cols}x{n_frames}x{bits} bits)")
    if have > want + 1:  # +1: odd lengths are padded to even
        raise SkipFile(f"pixel data longer than the header says ({have} bytes for {rows}x{cols}x{n_frames}x{bits} "
                       f"bits = {want} bytes)")


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


MAX_ANISOTROPY = 4.0  # row / column pixel spacing beyond which a file is no usable CT slice


def _pixel_spacing(ds) -> tuple[float, float] | None:
    """(row spacing, column spacing) in mm from PixelSpacing (or the shared functional groups'),
    None when absent or unreadable (then pixels are taken as square)."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    v = _item(ds, "PixelMeasuresSequence", "PixelSpacing", [shared[0] if shared else None])
    v = ds.get("PixelSpacing") if v is None else v
    try:
        dr, dc = float(v[0]), float(v[1])
    except (TypeError, ValueError, IndexError):
        return None
    if not (math.isfinite(dr) and math.isfinite(dc) and dr > 0 and dc > 0):
        return None
    if max(dr, dc) / min(dr, dc) > MAX_ANISOTROPY:
        raise SkipFile(f"PixelSpacing {dr:g} x {dc:g} mm (rows and columns differ more than {MAX_ANISOTROPY:g}x)")
    return dr, dc


def square_pixels(hu: np.ndarray, spacing: tuple[float, float] | None) -> np.ndarray:
    """Resample an image with non-square pixels to square ones at the finer spacing, so the
    anatomy keeps its shape when it is resized to the model's square grid."""
    if spacing is None or abs(spacing[0] / spacing[1] - 1.0) < 0.01:
        return hu
    from scipy import ndimage

    fine = min(spacing)
    shape = [round(n * s / fine) for n, s in zip(hu.shape, spacing)]
    if max(shape) > MAX_SIDE:  # the bound holds after resampling too
        raise SkipFile(f"image too large once its pixels are made square ({shape[0]}x{shape[1]}; at most "
                       f"{MAX_SIDE}x{MAX_SIDE})")
    return ndimage.zoom(hu, (spacing[0] / fine, spacing[1] / fine), order=1, mode="nearest").astype(np.float32)


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


def _check_deflated(source) -> None:
    """A deflated-dataset file is inflated whole by pydicom: inflate it here first, in bounded
    chunks, and refuse it once it passes MAX_INFLATED_BYTES (nothing large is ever held)."""
    import zlib

    from pydicom.filereader import _read_file_meta_info, read_preamble

    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else None
    try:
        f = fp or open(source, "rb")
    except OSError:
        return  # dcmread says why
    d, total = zlib.decompressobj(-zlib.MAX_WBITS), 0
    try:
        with f:
            try:  # the meta header as pydicom reads it; the deflated dataset starts right after it
                read_preamble(f, False)
                meta = _read_file_meta_info(f)
            except Exception:  # not DICOM with a meta header: dcmread says why
                return
            if str(meta.get("TransferSyntaxUID", "")) != DEFLATED:
                return
            for chunk in iter(lambda: f.read(1 << 16), b""):
                buf = d.decompress(chunk, 1 << 20)
                while True:
                    total += len(buf)
                    if total > MAX_INFLATED_BYTES:
                        raise SkipFile(f"deflated dataset inflates past {MAX_INFLATED_BYTES} bytes")
                    if not d.unconsumed_tail:
                        break
                    buf = d.decompress(d.unconsumed_tail, 1 << 20)
    except zlib.error:
        raise SkipFile("corrupt deflated dataset") from None


def _open(source, **kw):
    _check_deflated(source)
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
    try:
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        raise SkipFile(f"unreadable NumberOfFrames {ds.get('NumberOfFrames')!r}") from None
    if not 1 <= n_frames <= MAX_FRAMES:
        raise SkipFile(f"NumberOfFrames {n_frames} (must be 1 to {MAX_FRAMES})")
    _check_geometry(ds, n_frames)
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
    spacing = _pixel_spacing(ds)
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
        if not np.isfinite(hu).all():
            raise SkipFile(f"non-finite pixel values in frame {f} ({int((~np.isfinite(hu)).sum())} pixels)")
        hu = square_pixels(hu, spacing)
        frames.append(CTFrame(hu, head.patient_id, head.series_uid, head.sop_uid, f, z, head.instance_number))
    return frames


def hu_to_model(hu: np.ndarray, size: int) -> np.ndarray:
    """HU image -> size x size float32 in [-1, 1], as the paper preprocesses.

    Clip to [HU_MIN, HU_MAX] first (so -3024 HU padding cannot ring through the filter), pad a
    non-square image to square with air (centred: no anisotropic squash), resize
    with Pillow's anti-aliased Lanczos (the paper's filter), clip the Lanczos overshoot, then
    min-max scale with the *window's* bounds, not the image's: a fixed affine map keeps HU
    recoverable (`model_to_hu`) for the attribute extractors and fixed-window figures."""
    x = np.clip(np.asarray(hu, dtype=np.float32), HU_MIN, HU_MAX)
    if x.shape[0] != x.shape[1]:  # pad to square with air, centred, so anatomy keeps its aspect
        side = max(x.shape)
        top, left = (side - x.shape[0]) // 2, (side - x.shape[1]) // 2
        sq = np.full((side, side), AIR_HU, np.float32)
        sq[top:top + x.shape[0], left:left + x.shape[1]] = x
        x = sq
    if x.shape != (size, size):
        x = np.asarray(Image.fromarray(x, mode="F").resize((size, size), Image.Resampling.LANCZOS),
                       dtype=np.float32)
        x = np.clip(x, HU_MIN, HU_MAX)
    return ((x - HU_MIN) / (HU_MAX - HU_MIN) * 2.0 - 1.0).astype(np.float32)


def model_to_hu(x):
    """Inverse of the scaling in `hu_to_model` (works on numpy arrays and torch tensors)."""
    return (x + 1.0) * 0.5 * (HU_MAX - HU_MIN) + HU_MIN
