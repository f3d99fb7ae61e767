"""The ingest stage end to end on a TCIA-like tree of real CT files with bad files mixed in."""
import glob
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dicom_samples import build_tree
from raylatent.config import ConfigError, IngestConfig
from raylatent.data.dicom import hu_to_model, read_ct
from raylatent.data.shards import images_from_arrow, load_split
from raylatent.ingest import main as ingest_main

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, ray_session):
    from raylatent.data.ingest import ingest

    root = tmp_path_factory.mktemp("ingest")
    src, out = root / "src", root / "out"
    info = build_tree(src, n_patients=5, slices=3)
    logs = []
    manifest = ingest(IngestConfig(src=str(src), out=str(out), size=32, test_frac=0.2, seed=3),
                      log=logs.append)
    return dict(src=src, out=out, manifest=manifest, logs=logs, **info)


def test_good_slices_land_and_bad_files_are_skipped_with_reasons(ingested):
    m = ingested["manifest"]
    assert m["counts"] == {"train": 12, "test": 3}
    reasons = sorted(e["reason"].split(" (")[0] for e in m["skipped"])
    assert reasons == ["duplicate SOP instance", "no pixel data", "not CT", "not DICOM",
                       "truncated or short pixel data"]
    assert all(p["slices"] == 3 for p in m["patients"].values())  # incl. the damaged series
    assert "5 patients" in ingested["logs"][-1] and "5 files skipped" in ingested["logs"][-1]


def test_split_is_patient_level(ingested):
    train, test = load_split(ingested["out"], "train"), load_split(ingested["out"], "test")
    assert set(train.columns["patient_key"]).isdisjoint(test.columns["patient_key"])
    assert len(set(test.columns["patient_key"])) == 1
    assert set(train.columns["split"]) == {"train"} and set(test.columns["split"]) == {"test"}


def test_parquet_round_trip_with_plain_pyarrow(ingested):
    files = sorted(glob.glob(str(ingested["out"] / "*" / "*.parquet")))
    images = np.concatenate([images_from_arrow(pq.read_table(f).column("image")) for f in files])
    assert images.shape == (15, 32, 32) and images.dtype == np.float32
    # every written image is exactly the preprocessing of one of the source slices
    expected = [hu_to_model(fr.hu, 32) for f in sorted(ingested["src"].rglob("*.dcm"))
                if "-copy" not in f.name for fr in _frames(f)]
    for img in images:
        assert min(np.abs(img - e).max() for e in expected) == 0.0


def _frames(path):
    try:
        return read_ct(path)
    except Exception:
        return []


def test_slices_ordered_by_z_within_series(ingested):
    tr = load_split(ingested["out"], "train")
    for key in set(tr.columns["series_key"]):
        sel = tr.columns["series_key"] == key
        order = np.argsort(tr.columns["slice_index"][sel])
        z = tr.columns["z_mm"][sel][order]
        assert np.all(np.diff(z) < 0)  # superior first
        np.testing.assert_allclose(tr.columns["slice_frac"][sel][order], [0, 0.5, 1])


def test_no_identifier_in_any_output_byte(ingested):
    idents = set(ingested["identifiers"]) | {"TESTPAT-0000"}
    for f in Path(ingested["out"]).rglob("*"):
        if not f.is_file():
            continue
        raw = f.read_bytes()
        text = raw.decode("latin-1")
        if f.suffix == ".parquet":
            text += json.dumps(pq.read_table(f).drop(["image"]).to_pylist(), default=str)
        for ident in idents:
            assert ident not in text, f"{ident} leaked into {f}"


def test_rerun_is_a_no_op(ingested, ray_session):
    from raylatent.data.ingest import ingest

    before = {p: p.stat().st_mtime_ns for p in Path(ingested["out"]).rglob("*")}
    logs = []
    m = ingest(IngestConfig(src=str(ingested["src"]), out=str(ingested["out"]), size=32,
                            test_frac=0.2, seed=3), log=logs.append)
    assert m["skipped_run"] and "nothing to do" in logs[0]
    assert {p: p.stat().st_mtime_ns for p in Path(ingested["out"]).rglob("*")} == before


def test_strict_exits_nonzero_and_bad_src_is_one_line(ingested, capsys, tmp_path):
    rc = ingest_main(["--src", str(ingested["src"]), "--out", str(ingested["out"]),
                      "--size", "32", "--test-frac", "0.2", "--seed", "3", "--strict"])
    assert rc == 1
    assert "--strict: 5 files skipped" in capsys.readouterr().err
    rc = ingest_main(["--src", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "nope" in err and "no such folder" in err


def test_config_rejects_bad_settings(tmp_path):
    with pytest.raises(ConfigError, match="--test-frac"):
        IngestConfig(src=str(tmp_path), out=str(tmp_path / "o"), test_frac=1.5)
    with pytest.raises(ConfigError, match="must lie outside --src"):
        IngestConfig(src=str(tmp_path), out=str(tmp_path))


def test_phantom_factors_are_carried_through(tmp_path, ray_session):
    import csv

    from raylatent.data.ingest import ingest
    from raylatent.data.phantom import PhantomParams, generate

    src = generate(tmp_path / "ph", PhantomParams(patients=3, slices=4, matrix=64, seed=1),
                   log=lambda *_: None)
    m = ingest(IngestConfig(src=str(src), out=str(tmp_path / "out"), size=32, test_frac=0.34),
               log=lambda *_: None)
    assert m["skipped"] == [] and m["counts"] == {"train": 8, "test": 4}
    rows = list(csv.DictReader(open(src / "factors.csv")))
    both = [load_split(tmp_path / "out", s) for s in ("train", "test")]
    got = sorted(tuple(round(float(sp.columns[f"factor_{k}"][i]), 4) for k in ("width", "breast", "z"))
                 for sp in both for i in range(len(sp)))
    want = sorted(tuple(round(float(r[f"factor_{k}"]), 4) for k in ("width", "breast", "z")) for r in rows)
    assert got == want
    # the phantom's own z order and the header's z order agree: factor_z == slice_frac
    for sp in both:
        np.testing.assert_allclose(sp.columns["factor_z"], sp.columns["slice_frac"], atol=1e-6)


def test_the_salt_file_is_private_from_its_first_byte(tmp_path, monkeypatch):
    """Created with mode 600 (no moment in which another user could read it, so no chmod after)."""
    import os
    import stat

    from raylatent.data.config import resolve_salt

    monkeypatch.delenv("RAYLATENT_SALT", raising=False)
    monkeypatch.setenv("RAYLATENT_HOME", str(tmp_path / "home"))
    seen = []
    real_replace = os.replace

    def replace(src, dst):  # the moment the salt is complete, before it is in place
        seen.append(stat.S_IMODE(os.stat(src).st_mode))
        return real_replace(src, dst)

    def chmod(*a, **k):
        raise AssertionError("the salt was written with wider permissions, then narrowed")
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "chmod", chmod)
    old = os.umask(0o022)
    try:
        salt = resolve_salt()
    finally:
        os.umask(old)
    assert len(salt) == 32 and seen == [0o600]
    assert stat.S_IMODE((tmp_path / "home" / "salt").stat().st_mode) == 0o600
    assert resolve_salt() == salt


def test_a_factors_table_that_is_a_fifo_or_damaged_is_one_line(tmp_path):
    import os

    from raylatent.data.ingest import read_factors

    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "factors.csv")  # reading it would wait for a writer forever
    with pytest.raises(ConfigError, match="not a regular file"):
        read_factors(str(src), "salt")
    (src / "factors.csv").unlink()
    (src / "factors.csv").write_text("sop_instance_uid,factor_width\n1.2.3,wide\n")
    with pytest.raises(ConfigError, match="damaged"):
        read_factors(str(src), "salt")
