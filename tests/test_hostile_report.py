"""A run directory from someone else: the reporter escapes its text, stays inside it, and
answers a malformed file with one line naming it (issue 14)."""
import json

import pytest

from fake_run import fake_run
from raylatent.report.__main__ import main as report_main

pytestmark = pytest.mark.slow  # fabricated runs whose report images are rendered (seconds each)

EVIL = {"script": "<script>alert(1)</script>", "img": "<img src=x onerror=alert(1)>",
        "link": "[click](javascript:alert(1))", "pipe": "a | b | c"}


@pytest.fixture
def run(tmp_path):
    return fake_run(tmp_path / "run", seeds=(0,), K100=8, fid_network=EVIL["img"])


def _edit(path, fn):
    obj = json.loads(path.read_text())
    fn(obj)
    path.write_text(json.dumps(obj))


def _report(run, tmp_path, capsys):
    rc = report_main([str(run), "--out", str(tmp_path / "rep")])
    return rc, capsys.readouterr().err.strip()


def test_text_from_run_files_is_escaped(run, tmp_path, capsys):
    def latest(info):
        info["grid"], info["data_source"], info["hardware"] = EVIL["pipe"], EVIL["script"], EVIL["link"]
    _edit(run / "latest.json", latest)

    def results(recs):
        recs[0]["trial"] = EVIL["script"] + "/../../x"  # rebuilt from its fields, not trusted
    _edit(run / "directions" / "t" / "results.json", results)
    rc, err = _report(run, tmp_path, capsys)
    assert rc == 0, err
    text = (tmp_path / "rep" / "REPORT.md").read_text()
    for bad in ("<script", "<img", "](javascript:", "a | b"):
        assert bad not in text, bad
    assert "&lt;script&gt;" in text and "&lt;img src=x onerror=alert\\(1\\)&gt;" in text
    assert not (tmp_path / "x").exists() and all(p.parent.name == "assets" for p in (tmp_path / "rep").rglob("*.png"))


@pytest.mark.parametrize("stage,target", [("directions", "../../elsewhere"), ("generators", "/etc")])
def test_latest_json_paths_cannot_leave_the_run(run, tmp_path, capsys, stage, target):
    _edit(run / "latest.json", lambda info: info["stages"].__setitem__(stage, target))
    rc, err = _report(run, tmp_path, capsys)
    assert rc == 2 and err.count("\n") == 0 and "points outside" in err and f"stages.{stage}" in err


@pytest.mark.parametrize("edit,msg", [
    (lambda r: r[0].pop("rca"), "a trained trial without rca"),
    (lambda r: r[0].__setitem__("rca", "0.9"), "rca '0.9' (expected a finite number or null)"),
    (lambda r: r[0].__setitem__("K", "32"), "K '32' (expected a whole number)"),
    (lambda r: r[0].__setitem__("directions", "../../../../etc/passwd"), "directions '../../../../etc/passwd'"),
    (lambda r: r[0]["factors"]["z"].__setitem__("rho", "high"), "factors.z"),
])
def test_malformed_results_are_one_line_errors(run, tmp_path, capsys, edit, msg):
    _edit(run / "directions" / "t" / "results.json", edit)
    rc, err = _report(run, tmp_path, capsys)
    assert rc == 2 and err.count("\n") == 0 and "results.json: record 0" in err and msg in err, err
    assert not (tmp_path / "rep" / "REPORT.md").exists()


def test_results_json_that_is_not_json(run, tmp_path, capsys):
    (run / "directions" / "t" / "results.json").write_text("{not json")
    rc, err = _report(run, tmp_path, capsys)
    assert rc == 2 and "results.json: not readable as JSON" in err


def test_a_checkpoint_asking_for_an_absurd_network_is_refused_before_allocating(run, tmp_path, capsys):
    import torch

    path = run / "generators" / "g" / "vae" / "generator.pt"
    rec = torch.load(path, weights_only=True)
    cfg = json.loads(rec["config"])
    cfg.update(size=1024, vae_width=1024)
    rec["config"] = json.dumps(cfg)
    torch.save(rec, path)
    from raylatent.config import ConfigError
    from raylatent.tune.stage import render_for_report

    with pytest.raises(ConfigError) as e:  # the directions stage reads generators (the report no longer does)
        render_for_report(run / "generators" / "g", run / "directions" / "t", run / "data" / "d", [-1.0, 1.0])
    assert "\n" not in str(e.value) and str(path) in str(e.value) and "parameters (limit" in str(e.value)


def test_a_train_split_smaller_than_a_batch_is_one_line(run, tmp_path):
    from raylatent.config import ConfigError, GeneratorsConfig
    from raylatent.train.stage import train_generator

    cfg = GeneratorsConfig(size=32, batch_size=4, num_workers=2, epochs=1, keep_last=1, fid_network="fallback")
    with pytest.raises(ConfigError, match=r"the train split has 6 slices, fewer than batch_size x num_workers \(4 x 2\)"):
        train_generator("gan", run / "data" / "d", cfg, tmp_path / "gens")


PWN = "<img src=x onerror=\"document.title='pwned'\">"


def test_markup_in_every_field_a_page_shows_stays_text_and_no_browser_runs_it(run, tmp_path, capsys):
    """Rendered-file fields, the data source and a trial's name carry markup: REPORT.md and
    REPORT.html show it as text, REPORT.html refuses scripts by policy, and a headless browser
    opening both pages runs nothing (the page title is what a script would change)."""
    from pathlib import Path

    def renders(man):
        for e in man["random_vs_discovered"].values():
            e["discovered"] = PWN
        if man.get("z_position"):
            man["z_position"]["trial"] = PWN
    (ren,) = (run / "directions" / "t").rglob("renders.json")
    _edit(ren, renders)
    _edit(run / "latest.json", lambda info: info.__setitem__("data_source", PWN))
    rc, err = _report(run, tmp_path, capsys)
    assert rc == 0, err
    rep = tmp_path / "rep"
    md, page = (rep / "REPORT.md").read_text(), (rep / "REPORT.html").read_text()
    assert "<img src=x" not in md and "<img src=x" not in page and "&lt;img src=x" in page
    assert "Content-Security-Policy" in page and "script-src" not in page.split("Content-Security-Policy")[1][:200]
    chromium = Path("/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if not (chromium.exists() and sync_playwright is not None):
        import os

        if os.environ.get("RAYLATENT_REQUIRE_BROWSER"):  # CI installs both: a skip would hide a broken install
            pytest.fail("chromium or playwright missing")
    else:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium), headless=True,
                                        args=["--no-sandbox", "--disable-gpu"])
            try:
                for name in ("REPORT.html", "explorer.html"):
                    if (rep / name).exists():
                        pg = browser.new_page()
                        pg.goto((rep / name).resolve().as_uri())
                        pg.wait_for_timeout(300)
                        assert pg.title() != "pwned", name
            finally:
                browser.close()


@pytest.mark.parametrize("edit,msg", [
    (lambda r: r[0]["factors"].__setitem__(PWN, r[0]["factors"]["z"]), "factor"),
    (lambda r: r[0].__setitem__("labels", [PWN] * len(r[0]["labels"])), "labels must be a list of"),
])
def test_names_from_results_are_only_the_known_factors_and_labels(run, tmp_path, capsys, edit, msg):
    _edit(run / "directions" / "t" / "results.json", edit)
    rc, err = _report(run, tmp_path, capsys)
    assert rc == 2 and err.count("\n") == 0 and msg in err and "<img" not in err, err


@pytest.mark.parametrize("name,content,msg", [
    ("stage_times.json", {PWN: 1.0}, "stage_times.json: damaged"),
    ("stage_times.json", {"ingest": "fast"}, "stage_times.json: damaged"),
])
def test_tampered_run_files_are_one_line(run, tmp_path, capsys, name, content, msg):
    (run / name).write_text(json.dumps(content))
    rc, err = _report(run, tmp_path, capsys)
    assert rc == 2 and err.count("\n") == 0 and msg in err, err


@pytest.mark.parametrize("field,value", [("shifts", ["<b>x</b>"]), ("random_vs_discovered", {PWN: {"file": "a"}})])
def test_a_tampered_renders_file_is_one_line(run, tmp_path, capsys, field, value):
    (ren,) = (run / "directions" / "t").rglob("renders.json")
    _edit(ren, lambda man: man.__setitem__(field, value))
    rc, err = _report(run, tmp_path, capsys)
    assert rc == 2 and err.count("\n") == 0 and f"damaged field {field}" in err, err


def test_links_out_of_the_run_are_not_followed(run, tmp_path, capsys):
    """A trials/ folder or a labels.json that links outside the run: the reporter refuses it in one
    line, and nothing from outside reaches the report or the explorer."""
    import shutil

    outside = tmp_path / "outside"
    ddir = run / "directions" / "t"
    shutil.copytree(ddir / "trials", outside)
    for lab in outside.rglob("labels.json"):
        lab.write_text(lab.read_text().replace('"none"', '"SECRET-none"'))
    shutil.rmtree(ddir / "trials")
    (ddir / "trials").symlink_to(outside)
    rc, err = _report(run, tmp_path, capsys)
    assert rc == 2 and "points outside" in err and err.count("\n") == 0, err
    written = b"".join(p.read_bytes() for p in (tmp_path / "rep").rglob("*") if p.is_file()) \
        if (tmp_path / "rep").exists() else b""
    assert b"SECRET" not in written and "SECRET" not in err


@pytest.mark.parametrize("target,edit,msg", [
    ("latest.json", lambda o: o.__setitem__("report", {"colour": "red"}), "report settings"),
    ("latest.json", lambda o: o.__setitem__("report", "lung"), "report settings"),
])
def test_tampered_latest_json_is_one_line(run, tmp_path, capsys, target, edit, msg):
    _edit(run / target, edit)
    rc, err = _report(run, tmp_path, capsys)
    assert rc == 2 and err.count("\n") == 0 and msg in err, err


def test_a_tampered_curve_is_one_line(run, tmp_path, capsys):
    (curve,) = list((run / "directions" / "t" / "trials").glob("*/curve.json"))[:1] or [None]
    if curve is None:  # the fake run writes none: give one trial a damaged curve
        trial = next((run / "directions" / "t" / "trials").iterdir())
        curve = trial / "curve.json"
    curve.write_text(json.dumps([{"step": "ten", "rca": 0.5, "ls": 0.1}]))
    rc, err = _report(run, tmp_path, capsys)
    assert rc == 2 and err.count("\n") == 0 and "damaged curve" in err, err
