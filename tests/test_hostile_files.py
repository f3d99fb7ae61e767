"""Files the project reads back, tampered with: bounded before they are inflated, confined to
the run that names them, and one line naming the file when wrong (issue 27)."""
import json
import zipfile

import numpy as np
import pytest

from raylatent.config import ConfigError
from raylatent.data import npz as npz_mod
from raylatent.report.records import read_json_in


def test_an_npz_member_declaring_more_than_the_bound_is_refused_before_inflating(tmp_path, monkeypatch):
    bomb = tmp_path / "directions.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("A.npy", b"\0" * (32 << 20))  # 32 MB of zeros: ~32 KB on disk
    assert bomb.stat().st_size < 1 << 20

    def never(*a, **k):
        raise AssertionError("np.load was reached")
    monkeypatch.setattr(npz_mod.np, "load", never)
    with pytest.raises(ConfigError, match=r"declare 33554432 bytes, over the 1048576"):
        npz_mod.load_npz(bomb, max_bytes=1 << 20)


def test_a_direction_export_that_is_not_an_npz_is_one_line(tmp_path):
    from raylatent.discovery.export import load_directions, load_shift_arrays

    bad = tmp_path / "directions.npz"
    bad.write_text("not a zip")
    for fn in (load_directions, load_shift_arrays):
        with pytest.raises(ConfigError, match="not an .npz"):
            fn(bad)
    np.savez(tmp_path / "other.npz", B=np.zeros(2))
    with pytest.raises(ConfigError, match="not a direction export"):
        load_directions(tmp_path / "other.npz")


def test_a_run_file_is_read_only_inside_its_run_and_when_it_is_sane(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"password": "hunter2"}))
    (run / "labels.json").symlink_to(secret)
    with pytest.raises(ConfigError, match="points outside"):
        read_json_in(run / "labels.json", run)
    (run / "deep.json").write_text("[" * 100_000 + "]" * 100_000)  # nesting past Python's recursion limit
    with pytest.raises(ConfigError, match="not readable as JSON"):
        read_json_in(run / "deep.json", run)
    import os

    os.mkfifo(run / "fifo.json")
    with pytest.raises(ConfigError, match="not a regular file"):
        read_json_in(run / "fifo.json", run)
    assert read_json_in(run / "absent.json", run, default={}) == {}


def test_load_run_follows_no_link_out_of_the_run(tmp_path):
    import raylatent

    run = tmp_path / "run"
    (run / "directions" / "k").mkdir(parents=True)
    (run / "latest.json").write_text(json.dumps({"stages": {"generators": "generators/g", "directions": "directions/k"}}))
    outside = tmp_path / "elsewhere.json"
    outside.write_text("[]")
    (run / "directions" / "k" / "results.json").symlink_to(outside)
    with pytest.raises(ConfigError, match="points outside"):
        raylatent.load_run(run)
    (run / "latest.json").write_text(json.dumps({"stages": {"generators": "generators/g", "directions": "../.."}}))
    with pytest.raises(ConfigError, match="points outside"):
        raylatent.load_run(run)
    (run / "latest.json").write_text(json.dumps({"stages": "x"}))
    with pytest.raises(ConfigError, match="not a raylatent run record"):
        raylatent.load_run(run)


def test_an_npz_whose_array_header_asks_for_terabytes_is_refused_before_allocating(tmp_path):
    import io

    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "<f8", "fortran_order": False, "shape": (2 ** 40,)})
    bomb = tmp_path / "directions.npz"
    with zipfile.ZipFile(bomb, "w") as z:
        z.writestr("A.npy", hdr.getvalue())  # the header (magic included), and no data behind it
    with pytest.raises(ConfigError, match="headers declare 8796093022208 bytes"):
        npz_mod.load_npz(bomb)
    np.savez(tmp_path / "ok.npz", A=np.zeros((3, 4), np.float32))
    assert npz_mod.load_npz(tmp_path / "ok.npz")["A"].shape == (3, 4)


def test_a_title_with_an_apostrophe_reads_as_written_in_markdown_and_html():
    from raylatent.report.front import markdown_to_html
    from raylatent.report.records import esc

    cell = esc("ours, not the paper's \"x\" <b>")
    assert "#" not in cell and "&#x27;" not in cell  # a numeric entity's # would be escaped and shown
    page = markdown_to_html(f"| a |\n|---|\n| {cell} |\n\n![{cell}](x.png)\n")
    assert "paper&apos;s &quot;x&quot; &lt;b&gt;" in page and "<b>" not in page
