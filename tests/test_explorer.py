"""explorer.html (issue 18 part 5): its embedded data from a fabricated run, and the page itself in a
real headless Chromium (Debian's package), opened as file:// like a reader would."""
import io
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from fake_run import fake_run
from raylatent.config import ConfigError, ReportConfig
from raylatent.discovery.methods import method_of
from raylatent.discovery.renders import EXPLORER_LATENTS, explorer_order
from raylatent.report.build import build_report
from raylatent.report.explorer import PAGE, read_page_data

pytestmark = pytest.mark.slow  # fabricated runs whose report images are rendered (seconds each)

CHROMIUM = "/usr/bin/chromium"
K100 = 40  # the fake run's stand-in for K = 100: above the default cap of 32, so the cap is exercised


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("explorer")
    run = fake_run(root / "run", seeds=(0,), K100=K100)
    return build_report(run, root / "report").parent


def test_the_page_holds_every_configuration_its_frames_and_labels(report):
    data = read_page_data(report / PAGE)
    records = json.loads((report / "results.json").read_text())
    shown = [r for r in records if method_of(r["deformator"]).role != "reference"]  # as the charts
    assert [c["trial"] for c in data["configs"]] == [r["trial"] for r in shown]
    cap = ReportConfig().explorer_directions
    assert len(data["sweep"]) == 9 and data["latents"] == EXPLORER_LATENTS and data["size"] == [32, 32]
    for c, r in zip(data["configs"], shown):
        K = K100 if r["K"] == 100 else r["K"]
        assert c["K"] == K and len(c["directions"]) == min(K, cap), c["trial"]
        assert c["rca"] == r["rca"]
        for d in c["directions"]:
            # one frame per sweep shift (columns), a row per window and latent, at the model's size
            sprite = Image.open(report / d["sprite"])
            assert sprite.size == (len(data["sweep"]) * 32, len(data["windows"]) * EXPLORER_LATENTS * 32)
        by_k = {d["k"]: d for d in c["directions"]}
        assert by_k[5]["label"] == "entangled" and by_k[0]["label"] == "none" and by_k[0]["found"] == []
        if r["deformator"] == "proj":  # fake_run: direction 3 is found for rotation, beating chance
            assert by_k[3] == {**by_k[3], "label": "rotation", "attribute": "rotation", "rho": 0.9, "purity": 0.7,
                               "found": ["rotation"], "score": 0.63, "chance": 0.5}
            assert c["directions"][0]["k"] == 3  # found directions first (they survive the cap)
        else:
            assert by_k[3]["label"] == "none" and by_k[3]["score"] is None
    # the cap is said, and which directions it keeps
    capped = next(c for c in data["configs"] if c["K"] > cap)
    assert len(capped["directions"]) == cap and data["cap"] == cap
    for name in ("REPORT.md", "REPORT.html"):
        assert "Explore the directions interactively" in (report / name).read_text()
        assert 'href="explorer.html"' in (report / name).read_text() or "](explorer.html)" in (report / name).read_text()
    size = sum(p.stat().st_size for p in (report / "assets").glob("explorer-*.png")) + (report / PAGE).stat().st_size
    print(f"explorer for the fake run: {len(list((report / 'assets').glob('explorer-*.png')))} sprites, "
          f"{size / 1e6:.1f} MB with the page")


def test_labelled_directions_come_first_under_the_cap():
    labels = {"directions": [{"label": x} for x in ("none", "entangled", "width", "none", "rotation", "entangled")]}
    record = {"factors": {"rotation": {"direction": 4, "found": True}, "width": {"direction": 2, "found": False}}}
    assert explorer_order(6, labels, record) == [4, 2, 1, 5, 0, 3]
    assert explorer_order(3, None, {}) == [0, 1, 2]  # unlabelled: by index


@pytest.mark.parametrize("bad", [0, -3, True, "8", 2.5])
def test_explorer_directions_is_checked_at_load(bad):
    with pytest.raises(ConfigError) as e:
        ReportConfig(explorer_directions=bad)
    assert "\n" not in str(e.value) and "report.explorer_directions" in str(e.value)


def test_damaged_labels_are_one_line(report, tmp_path):
    from raylatent.report.records import load_labels

    p = tmp_path / "trials" / "x" / "labels.json"
    p.parent.mkdir(parents=True)
    p.write_text("{not json")
    with pytest.raises(ConfigError) as e:
        load_labels(tmp_path, {"directions": "trials/x/directions.npz"})
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_a_damaged_direction_row_is_one_line(report, tmp_path):
    """A labels.json whose rows are not what the labeller writes: one line naming it, no page."""
    path = report.parent / "run" / "directions" / "t" / "trials" / "gan-lenet-proj-K32-s0" / "labels.json"
    good = path.read_text()
    lab = json.loads(good)
    lab["directions"][3]["rho"]["rotation"] = "high"
    path.write_text(json.dumps(lab))
    try:
        with pytest.raises(ConfigError) as e:
            build_report(report.parent / "run", tmp_path / "rep")
    finally:
        path.write_text(good)
    assert "\n" not in str(e.value) and str(path) in str(e.value) and "direction 3" in str(e.value)
    assert not (tmp_path / "rep" / PAGE).exists()


def _browser():
    """Playwright driving Debian's Chromium; skipped (saying which is missing) when either is,
    except where RAYLATENT_REQUIRE_BROWSER is set (CI installs both: there a skip would hide a
    broken install), which makes it a failure."""
    import os

    missing = None if Path(CHROMIUM).exists() else f"{CHROMIUM} missing (apt-get install -y chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = missing or "playwright missing (pip install playwright; no browser download needed)"
    if missing:
        (pytest.fail if os.environ.get("RAYLATENT_REQUIRE_BROWSER") else pytest.skip)(missing)
    return sync_playwright


def test_the_page_in_a_headless_browser(report, tmp_path):
    sync_playwright = _browser()
    errors: list[str] = []
    shot = tmp_path / "explorer.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.goto((report / PAGE).resolve().as_uri())

            def loaded():  # the current direction's sprite has arrived
                page.wait_for_function("() => document.getElementById('view').dataset.loaded === "
                                       "DATA.configs[+document.getElementById('config').value]"
                                       ".directions[+document.getElementById('direction').value].sprite")

            loaded()
            view = page.locator("#view")
            first, frame = view.screenshot(), view.get_attribute("data-frame")
            pixels = Image.open(io.BytesIO(first)).convert("L")
            assert max(pixels.getextrema()) > 100, "the slices are not drawn"
            eps = page.locator("#eps").inner_text()
            # the slider, as a user moves it (keyboard on the focused range input)
            page.locator("#shift").focus()
            page.keyboard.press("End")
            loaded()
            assert view.get_attribute("data-frame") != frame and page.locator("#eps").inner_text() != eps
            assert view.screenshot() != first, "moving the slider did not change the image"
            # another configuration: the direction list follows it
            before = page.locator("#direction option").all_inner_texts()
            trial = "vae-lenet-proj-K100-s0"  # the fake VAE's slices have contrast (the fake GAN's are near white)
            page.select_option("#config", label=next(t for t in page.locator("#config option").all_inner_texts()
                                                     if t.startswith(trial)))
            loaded()
            after = page.locator("#direction option").all_inner_texts()
            assert after != before and after[0].startswith("3: rotation") and "found" in after[0]
            assert len(after) == ReportConfig().explorer_directions
            assert "32 of its 40 directions" in page.locator("#capnote").inner_text()
            info = page.locator("#info").inner_text()
            assert "rotation" in info and "purity 0.70" in info and "found for rotation" in info
            frame = view.get_attribute("data-frame")
            page.select_option("#window", index=1)  # the mediastinal window, then back to the lung one
            loaded()
            assert view.get_attribute("data-frame") != frame
            page.select_option("#window", index=0)
            page.locator("#shift").focus()
            page.keyboard.press("ArrowLeft")
            loaded()
            lo, hi = Image.open(io.BytesIO(view.screenshot())).convert("L").getextrema()
            assert lo < 100 < 150 < hi, "the windowed slices are blank"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert Image.open(shot).size[0] >= 1000
    if os.environ.get("RAYLATENT_TEST_ARTIFACTS"):
        dest = Path(os.environ["RAYLATENT_TEST_ARTIFACTS"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, dest / "explorer.png")
    print(f"explorer screenshot: {shot}")
