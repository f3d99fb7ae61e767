"""Real third-party CT files (pydicom's own and the pydicom-data package's), and a small tree of
them laid out like a TCIA download with bad files mixed in, for the ingest tests."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

_PYDICOM_TEST = Path(pydicom.__file__).parent / "data" / "test_files"


def sample(name: str) -> Path:
    """A bundled test file by name, from pydicom or the pydicom-data package (no download)."""
    p = _PYDICOM_TEST / name
    if p.exists():
        return p
    import data_store  # the pydicom-data package

    p = Path(data_store.__file__).parent / "data" / name
    if not p.exists():
        raise FileNotFoundError(name)
    return p


IDENTIFIERS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
               "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def build_tree(root: Path, n_patients: int = 4, slices: int = 3) -> dict:
    """patient/study/series/NNNN.dcm from real CT files, plus junk; returns the identifiers used."""
    with warnings.catch_warnings():  # one of pydicom's own sample files carries an invalid UID
        warnings.simplefilter("ignore", UserWarning)
        return _build_tree(root, n_patients, slices)


def _build_tree(root: Path, n_patients: int, slices: int) -> dict:
    bases = [sample("CT_small.dcm"), sample("693_J2KR.dcm"), sample("bad_sequence.dcm")]
    idents: set[str] = set()
    for p in range(n_patients):
        pid = f"TESTPAT-{p:04d}"
        study, series = generate_uid(), generate_uid()
        sdir = root / pid / f"study-{p}" / f"series-{p}"
        sdir.mkdir(parents=True)
        for s in range(slices):
            ds = pydicom.dcmread(bases[(p + s) % len(bases)])
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
            ds.PatientID = pid
            ds.PatientName = f"Doe^Jane{p:03d}"
            ds.PatientBirthDate = f"1950{p + 1:02d}{s + 1:02d}"
            ds.AccessionNumber = f"ACC{p:05d}{s}"
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.ImagePositionPatient = [0.0, 0.0, -10.0 * s]
            ds.InstanceNumber = s + 1
            ds.save_as(sdir / f"{s:04d}.dcm")
            idents.update(str(ds.get(k)) for k in IDENTIFIERS)
    first = root / "TESTPAT-0000" / "study-0" / "series-0"
    cut = pydicom.dcmread(first / "0000.dcm")
    cut.SOPInstanceUID = cut.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    cut.save_as(first / "0100.dcm")
    raw = (first / "0100.dcm").read_bytes()
    (first / "0100.dcm").write_bytes(raw[: len(raw) // 2])  # truncated inside its pixel data
    (first / "notes.xml").write_text("<LidcReadMessage/>")  # LIDC annotation files sit beside CT
    mr = pydicom.dcmread(sample("MR2_UNCR.dcm"))
    mr.save_as(first / "0200.dcm")  # non-CT
    ds = pydicom.dcmread(first / "0001.dcm")
    del ds.PixelData
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(first / "0300")  # pixel-less, and no suffix
    shutil.copy(first / "0002.dcm", first / "0002-copy.dcm")  # duplicate SOP instance
    return {"identifiers": idents}
