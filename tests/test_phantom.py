"""The synthetic thorax: valid CT DICOM, realistic HU, and each factor driving its own measurement."""
import csv
import json
import hashlib

import numpy as np
import pydicom
import pytest

from raylatent.data.dicom import read_ct
from raylatent.data.phantom import PatientFactors, PhantomParams, generate, preview, render_slice
from raylatent.interpret.attributes import measure


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("ph") / "cohort"
    generate(out, PhantomParams(patients=3, slices=4, matrix=64, seed=5), log=lambda *_: None)
    return out


def test_files_are_valid_ct_dicom(cohort):
    files = sorted(cohort.rglob("*.dcm"))
    assert len(files) == 12
    uids = set()
    for f in files:
        assert f.relative_to(cohort).parts[1:3] == ("study-1", "series-1")
        ds = pydicom.dcmread(f)  # no force: a real preamble and file meta
        assert ds.SOPClassUID == pydicom.uid.CTImageStorage and ds.Modality == "CT"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.pixel_array.dtype == np.int16 and ds.RescaleIntercept == -1024
        assert ds.PixelPaddingValue == -2000 and (ds.pixel_array == -2000).any()
        assert "Phantom" in str(ds.PatientName)
        pydicom.uid.UID(ds.SOPInstanceUID).is_valid
        uids.add(ds.SOPInstanceUID)
    assert len(uids) == 12  # UIDs never collide
    z = [float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in sorted((cohort / "PHANTOM-005-0000").rglob("*.dcm"))]
    assert np.all(np.diff(z) < 0)


def test_factors_csv_keys_every_slice(cohort):
    rows = list(csv.DictReader(open(cohort / "factors.csv")))
    assert len(rows) == 12
    assert {k for k in rows[0] if k.startswith("factor_")} == {
        "factor_width", "factor_height", "factor_size", "factor_rotation", "factor_y",
        "factor_thickness", "factor_breast", "factor_z", "factor_width_mm", "factor_height_mm",
        "factor_size_cm2", "factor_y_mm", "factor_breast_cm2"}
    sops = {str(pydicom.dcmread(f).SOPInstanceUID) for f in cohort.rglob("*.dcm")}
    assert {r["sop_instance_uid"] for r in rows} == sops
    assert sorted({float(r["factor_z"]) for r in rows}) == pytest.approx([0, 1 / 3, 2 / 3, 1])


def test_hu_histogram_has_tissue_modes():
    hu = np.concatenate([render_slice(PatientFactors(breast=0.8), z, 256, seed=1).ravel()
                         for z in (0.3, 0.5, 0.8)])
    hist, edges = np.histogram(hu, bins=np.arange(-1100, 1600, 25))
    centres = (edges[:-1] + edges[1:]) / 2

    def peak_in(lo, hi):
        sel = (centres > lo) & (centres < hi)
        return hist[sel].max()

    for lo, hi in [(-900, -800), (-150, -50), (20, 80)]:  # lung, fat, soft tissue
        assert peak_in(lo, hi) > 5 * np.median(hist[hist > 0])
    assert (hu > 400).sum() > 500 and (hu > 900).sum() > 100  # bone, cancellous and cortical


FACTOR_TO_MEASURE = {"width": "width", "height": "height", "size": "size", "rotation": "rotation",
                     "y": "y", "thickness": "thickness", "breast": "breast"}


@pytest.mark.parametrize("factor,lo,hi", [("width", 0.88, 1.12), ("height", 0.88, 1.12),
                                          ("size", 0.9, 1.1), ("rotation", -10, 10), ("y", -25, 25),
                                          ("thickness", 8, 28), ("breast", 0.4, 1.0)])
def test_each_factor_drives_its_measurement(factor, lo, hi):
    rng = np.random.default_rng(0)
    for trial in range(3):  # several random backgrounds of the *other* factors, held fixed
        others = dict(width=rng.uniform(0.9, 1.1), height=rng.uniform(0.9, 1.1),
                      size=rng.uniform(0.95, 1.05), rotation=rng.uniform(-5, 5),
                      y=rng.uniform(-10, 10), thickness=rng.uniform(10, 20),
                      breast=rng.choice([0.0, 0.6]))
        z = 0.3 if factor == "breast" else rng.uniform(0.1, 0.8)
        m = [measure(render_slice(PatientFactors(**{**others, factor: v}), z, 128, seed=trial))
             for v in (lo, (lo + hi) / 2, hi)]
        vals = [x[FACTOR_TO_MEASURE[factor]] for x in m]
        assert vals[0] < vals[1] < vals[2], (factor, vals)


def test_z_drives_lung_area():
    f = PatientFactors()
    area = [measure(render_slice(f, z, 128, seed=0))["lung_area"] for z in np.linspace(0, 1, 9)]
    assert np.argmax(area) in (3, 4, 5)  # largest mid-thorax
    assert area[0] < area[2] < area[4] and area[4] > area[6] > area[8]  # apex small, liver below


def test_same_seed_same_bytes(tmp_path):
    def digest(d):
        return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file())).hexdigest()

    p = PhantomParams(patients=2, slices=2, matrix=48, seed=9)
    a = generate(tmp_path / "a", p, log=lambda *_: None)
    b = generate(tmp_path / "b", p, log=lambda *_: None)
    c = generate(tmp_path / "c", PhantomParams(patients=2, slices=2, matrix=48, seed=10), log=lambda *_: None)
    assert digest(a) == digest(b) != digest(c)
    logs = []
    generate(tmp_path / "a", p, log=logs.append)
    assert "nothing to do" in logs[0]


def test_preview_png(cohort, tmp_path):
    from PIL import Image

    preview(cohort, tmp_path / "p.png", max_cols=4)
    im = Image.open(tmp_path / "p.png")
    assert im.size == (4 * 64, 3 * 64)


def test_reads_back_through_ingest_decoder(cohort):
    frames = read_ct(next(cohort.rglob("0001.dcm")))
    assert frames[0].hu.shape == (64, 64) and frames[0].hu.min() >= -1100


def _cli(argv, capsys):
    from raylatent.phantom import main

    rc = main(argv)
    return rc, capsys.readouterr().err


SMALL = ["--patients", "1", "--slices", "2", "--matrix", "32"]


def test_the_cli_never_deletes_a_folder_it_did_not_write(tmp_path, capsys):
    """--out naming a user's folder is refused with one line and left byte for byte as it was;
    an earlier cohort of ours is replaced, but not once a user added a file to it."""
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("years of work")
    rc, err = _cli(["--out", str(mine), *SMALL], capsys)
    assert rc == 2 and "not empty and not a phantom cohort" in err and err.count("\n") == 1
    assert [p.name for p in mine.iterdir()] == ["chapter1.tex"]
    ours = tmp_path / "cohort"
    assert _cli(["--out", str(ours), *SMALL], capsys)[0] == 0
    assert _cli(["--out", str(ours), *SMALL, "--seed", "1"], capsys)[0] == 0  # ours: replaced by the new cohort
    assert json.loads((ours / "phantom.json").read_text())["seed"] == 1
    (ours / "notes.txt").write_text("mine")
    rc, err = _cli(["--out", str(ours), *SMALL, "--seed", "2"], capsys)
    assert rc == 2 and (ours / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


@pytest.mark.parametrize("argv, says", [
    (["--seed", "-1"], "--seed -1"),
    (["--matrix", "100000"], "--matrix 100000"),
    (["--patients", "0"], "--patients 0"),
    (["--slices", "999999"], "--slices 999999"),
    (["--preview", "/nonexistent-folder/p.png"], "--preview"),
])
def test_the_cli_refuses_bad_arguments_in_one_line_before_any_work(tmp_path, capsys, argv, says):
    base = ["--out", str(tmp_path / "c"), "--patients", "1", "--slices", "2", "--matrix", "32"]
    rc, err = _cli(base + argv, capsys)
    assert rc == 2 and says in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "c").exists()


def test_the_cli_refuses_a_file_or_the_working_folder_as_out(tmp_path, capsys, monkeypatch):
    f = tmp_path / "file.txt"
    f.write_text("x")
    rc, err = _cli(["--out", str(f), *SMALL], capsys)
    assert rc == 2 and "is not a folder" in err and f.read_text() == "x"
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.csv").write_text("a,b")
    monkeypatch.chdir(work)
    rc, err = _cli(["--out", ".", *SMALL], capsys)
    assert rc == 2 and "not empty" in err and (work / "data.csv").read_text() == "a,b"
