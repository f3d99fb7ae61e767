"""Hostile or careless ingest inputs (issue 14): nothing identifying leaks, nothing we did not
write is deleted, odd files are skipped with a reason, and no shard holds NaN or inf."""
import json
import os
import warnings

import numpy as np
import pydicom
import pytest

from dicom_samples import sample
from raylatent.config import IngestConfig
from raylatent.data.dicom import SkipFile, hu_to_model, read_ct
from raylatent.data.shards import load_split
from raylatent.ingest import main as ingest_main


def _ct(**changes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(sample("CT_small.dcm"))
        for k, v in changes.items():
            if v is None:
                delattr(ds, k)
            else:
                setattr(ds, k, v)
    return ds


def _save(ds, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path)
    return path


@pytest.mark.parametrize("changes,reason", [
    ({"RescaleSlope": "NaN"}, "invalid rescale (slope nan"),
    ({"RescaleIntercept": "inf"}, "invalid rescale"),
    ({"RescaleSlope": 0}, "invalid rescale (slope 0.0"),
    ({"RescaleSlope": None, "RescaleIntercept": None}, "no RescaleSlope/RescaleIntercept"),
    ({"Rows": 1, "Columns": 1, "PixelData": b"\0\0"}, "image too small (1x1"),
    ({"BitsAllocated": 32}, "truncated or short pixel data"),
    ({"BitsAllocated": 8, "BitsStored": 8, "HighBit": 7}, "pixel data longer than the header says"),
    ({"ImageOrientationPatient": [0, 1, 0, 0, 0, -1]}, "not an axial slice"),
    # issue 27: frames and sizes bounded before anything is decoded
    ({"NumberOfFrames": -5}, "NumberOfFrames -5 (must be 1 to"),
    ({"NumberOfFrames": 1_000_000}, "NumberOfFrames 1000000"),
    ({"Rows": 60000, "Columns": 60000}, "image too large (60000x60000"),
    ({"PixelSpacing": [0.5, 5.0]}, "PixelSpacing 0.5 x 5 mm"),
])
def test_implausible_ct_is_skipped_with_its_reason(tmp_path, changes, reason):
    path = _save(_ct(**changes), tmp_path / "x.dcm")
    with pytest.raises(SkipFile, match=reason.replace("(", r"\(")):
        read_ct(path)


def test_non_square_images_are_padded_with_air_not_squashed(tmp_path):
    ds = _ct()
    half = np.ascontiguousarray(ds.pixel_array[:, 32:96])
    ds.PixelData, ds.Columns = half.tobytes(), 64
    (fr,) = read_ct(_save(ds, tmp_path / "half.dcm"))
    assert fr.hu.shape == (128, 64)
    x = hu_to_model(fr.hu, 32)
    padded = np.full((128, 128), -1000.0, np.float32)
    padded[:, 32:96] = fr.hu  # centred in air: the slice keeps its aspect
    np.testing.assert_array_equal(x, hu_to_model(padded, 32))
    assert np.all(x[:, :4] == -1.0) and np.all(x[:, -4:] == -1.0) and x[:, 10:22].max() > -0.5


@pytest.fixture
def hostile_tree(tmp_path):
    src = tmp_path / "src"
    for i in range(3):  # one good patient
        ds = _ct(PatientID="GOOD-1", SOPInstanceUID=pydicom.uid.generate_uid(), ImagePositionPatient=[0, 0, -5.0 * i])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        _save(ds, src / "GOOD-1" / f"{i}.dcm")
    for i in range(2):  # a second, so there is a test split
        ds = _ct(PatientID="GOOD-2", SOPInstanceUID=pydicom.uid.generate_uid(), ImagePositionPatient=[0, 0, -5.0 * i])
        _save(ds, src / "GOOD-2" / f"{i}.dcm")
    (src / "DOE^JOHN_MRN12345").mkdir()
    (src / "DOE^JOHN_MRN12345" / "x.dcm").write_text("not dicom")
    _save(_ct(PatientID="SMITH^ANN_MRN777", RescaleSlope="NaN"), src / "SMITH^ANN_MRN777" / "slice.dcm")
    os.mkfifo(src / "pipe-MRN555")
    os.symlink(src / "nowhere-MRN999", src / "dangling-MRN999")
    return src


def test_hostile_tree_is_ingested_safely(hostile_tree, tmp_path, ray_session):
    from raylatent.data.ingest import ingest

    out = tmp_path / "out"
    m = ingest(IngestConfig(src=str(hostile_tree), out=str(out), size=32, test_frac=0.5), log=lambda *_: None)
    assert m["counts"]["train"] + m["counts"]["test"] == 5
    reasons = sorted(e["reason"].split(" (")[0] for e in m["skipped"])
    assert reasons == ["dangling symbolic link", "invalid rescale", "not DICOM", "not a regular file"]
    blob = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    for ident in (b"DOE", b"JOHN", b"MRN12345", b"SMITH", b"MRN777", b"MRN555", b"MRN999", b"GOOD-1"):
        assert ident not in blob, ident
    for split in ("train", "test"):
        assert np.isfinite(load_split(out, split).images.numpy()).all()
    # the pseudonym maps back to the real file, with the same salt, on the console only
    doe = next(e["path"] for e in m["skipped"] if e["reason"] == "not DICOM")
    assert ingest_main(["--src", str(hostile_tree), "--out", str(out), "--locate", doe]) == 0


def test_output_folder_safety(hostile_tree, tmp_path, capsys, ray_session):
    user = tmp_path / "mine"
    (user / "train").mkdir(parents=True)
    (user / "train" / "thesis.tex").write_text("years of work")
    rc = ingest_main(["--src", str(hostile_tree), "--out", str(user), "--size", "32"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "not empty and not a raylatent ingest output" in err
    assert (user / "train" / "thesis.tex").read_text() == "years of work"
    # a manifest anyone could write is no proof the folder is ours: only our marker is
    (user / "manifest.json").write_text(json.dumps({"version": "ingest-v99"}))
    rc = ingest_main(["--src", str(hostile_tree), "--out", str(user), "--size", "32"])
    assert rc == 2 and "not a raylatent ingest output" in capsys.readouterr().err
    assert (user / "train" / "thesis.tex").read_text() == "years of work"
    # --src X/train --out X: the source lies inside the output
    rc = ingest_main(["--src", str(hostile_tree / "GOOD-1"), "--out", str(hostile_tree), "--size", "32"])
    assert rc == 2 and "must lie outside --src" in capsys.readouterr().err
    assert len(list((hostile_tree / "GOOD-1").glob("*.dcm"))) == 3
    afile = tmp_path / "afile"
    afile.write_text("x")
    rc = ingest_main(["--src", str(hostile_tree), "--out", str(afile), "--size", "32"])
    assert rc == 2 and "is a file" in capsys.readouterr().err
    # our own output is reused, and a killed run's staging folder is cleaned up
    out = tmp_path / "out"
    assert ingest_main(["--src", str(hostile_tree), "--out", str(out), "--size", "32", "--test-frac", "0.5"]) == 0
    (out / ".staging-dead").mkdir()
    (out / ".staging-dead" / "half.parquet").write_text("x")
    assert ingest_main(["--src", str(hostile_tree), "--out", str(out), "--size", "32", "--test-frac", "0.5"]) == 0
    assert not (out / ".staging-dead").exists() and json.loads((out / "manifest.json").read_text())["counts"]
    # a tampered manifest (its fingerprint kept, its counts a string) is not trusted: ingested again
    m = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**m, "counts": "lots"}))
    assert ingest_main(["--src", str(hostile_tree), "--out", str(out), "--size", "32", "--test-frac", "0.5"]) == 0
    assert json.loads((out / "manifest.json").read_text())["counts"] == m["counts"]


def test_non_square_pixels_are_resampled_not_squashed(tmp_path):
    """PixelSpacing 1.0 (rows) x 0.5 (columns) mm: a 128 x 128 image covers 128 x 64 mm, so it
    becomes 256 x 128 pixels of 0.5 mm, and a disc stays a disc."""
    ds = _ct(PixelSpacing=[1.0, 0.5])
    (fr,) = read_ct(_save(ds, tmp_path / "aniso.dcm"))
    assert fr.hu.shape == (256, 128)
    (sq,) = read_ct(_save(_ct(PixelSpacing=[0.7, 0.7]), tmp_path / "square.dcm"))
    assert sq.hu.shape == (128, 128)


def test_a_deflated_file_that_inflates_past_the_bound_is_skipped_without_inflating_it(tmp_path, monkeypatch):
    import zlib

    from raylatent.data import dicom as D

    ds = _ct()
    path = tmp_path / "deflated.dcm"
    ds.file_meta.TransferSyntaxUID = D.DEFLATED
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=True)
    (fr,) = read_ct(path)  # a sane deflated file still reads
    monkeypatch.setattr(D, "MAX_INFLATED_BYTES", 10_000)
    calls = []
    monkeypatch.setattr(D.pydicom, "dcmread", lambda *a, **k: calls.append(1))
    with pytest.raises(SkipFile, match="deflated dataset inflates past 10000 bytes"):
        read_ct(path)
    assert not calls and zlib  # refused before pydicom inflated anything


def test_unreadable_folders_linked_folders_and_odd_names_are_all_accounted_for(tmp_path, monkeypatch):
    """A patient folder that is a link is read (once, even in a loop); a folder that cannot be
    listed and a file whose name is not UTF-8 are listed as skipped with their reason."""
    from raylatent.data import dicom as D

    src = tmp_path / "src"
    _save(_ct(PatientID="A"), src / "A" / "1.dcm")
    elsewhere = tmp_path / "store" / "B"
    _save(_ct(PatientID="B", SOPInstanceUID=pydicom.uid.generate_uid()), elsewhere / "1.dcm")
    os.symlink(elsewhere, src / "B")
    os.symlink(src, src / "A" / "loop")  # a link back up: walked once, not forever
    (src / "locked").mkdir()
    (src / "locked" / "1.dcm").write_text("x")
    name = os.fsdecode(b"caf\xe9.dcm")  # Latin-1 bytes: not UTF-8
    (src / name).write_bytes(b"x")
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)
    monkeypatch.setattr(os, "scandir", scandir)
    odd = []
    files = D.find_files(src, odd)
    assert files == [os.path.join("A", "1.dcm"), os.path.join("B", "1.dcm")]
    reasons = {e["path"]: e["reason"] for e in odd}
    assert reasons["locked"].startswith("unreadable folder") and "not UTF-8" in reasons["caf\ufffd.dcm"]
    assert any("link loop" in r for r in reasons.values())


def test_two_patients_sharing_a_series_uid_stay_two_series(tmp_path, ray_session):
    """An export that reused one SeriesInstanceUID for two patients: each patient's slices are
    numbered within their own series (z order from 0), not merged into one series spanning both."""
    import pyarrow.dataset as pads

    from raylatent.data.ingest import ingest

    src, shared = tmp_path / "src", pydicom.uid.generate_uid()
    for pid in ("P1", "P2", "P3", "P4"):
        for i in range(3):
            ds = _ct(PatientID=pid, SeriesInstanceUID=shared, SOPInstanceUID=pydicom.uid.generate_uid(),
                     ImagePositionPatient=[0, 0, -5.0 * i - (100 if pid == "P2" else 0)])
            _save(ds, src / pid / f"{i}.dcm")
    out = tmp_path / "out"
    m = ingest(IngestConfig(src=str(src), out=str(out), size=32, test_frac=0.25), log=lambda *_: None)
    assert m["counts"]["train"] + m["counts"]["test"] == 12
    rows = pads.dataset([str(p) for p in out.rglob("*.parquet")], format="parquet").to_table(
        columns=["patient_key", "series_key", "slice_index"]).to_pylist()
    series = {}
    for r in rows:
        series.setdefault(r["series_key"], set()).add(r["patient_key"])
        assert 0 <= r["slice_index"] <= 2
    assert len(series) == 4 and all(len(p) == 1 for p in series.values())
