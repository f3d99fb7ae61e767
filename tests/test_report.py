"""The report from a fabricated run directory: exact Table 1 values, claims, assets, links."""
import re

import pytest
from PIL import Image

from fake_run import fake_run
from raylatent.report.build import build_report
from raylatent.report.tables import PAPER


def good(g, r, d, k, s):
    """Metrics under which every claim of the paper holds; seeds differ by 0.01."""
    rca = 0.9 + (0.05 if g == "vae" else 0) + (0.02 if d == "unit" else 0) + (0.01 if r == "resnet" else 0)
    ls = 0.3 - (0.1 if g == "vae" else 0) - (0.05 if (r == "lenet" and k == 100) else 0)
    return rca + 0.01 * s, ls + 0.01 * s


def bad(g, r, d, k, s):
    rca, ls = good(g, r, d, k, s)
    return 1.9 - rca, 0.6 - ls  # every comparison reversed


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    out = {}
    for name, fn in (("good", good), ("bad", bad)):
        run = fake_run(root / f"run-{name}", fn)
        out[name] = build_report(run, root / f"report-{name}")
    return out


def test_table1_holds_exactly_the_run_values(reports):
    text = reports["good"].read_text()
    # VAE LeNet, unit K=32, seeds 0 and 1: RCA mean 0.97+0.005, sd 0.00707
    rca = [good("vae", "lenet", "unit", 32, s)[0] for s in (0, 1)]
    mean = sum(rca) / 2
    row = next(line for line in text.splitlines() if line.startswith("| VAE LeNet (ours)"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3].startswith(f"{mean:.4f} ± 0.0071")
    assert f"({mean - PAPER[('vae', 'lenet')][1][0]:+.3f})" in cells[3]
    paper_row = next(line for line in text.splitlines() if line.startswith("| VAE LeNet (paper)"))
    assert "0.9895" in paper_row and "0.0962" in paper_row


def test_flipping_the_metrics_flips_the_claims(reports):
    def marks(p):
        return re.findall(r"^- ([✓✗–]) ", p.read_text(), re.M)

    assert marks(reports["good"]) == ["✓"] * 5
    assert marks(reports["bad"]) == ["✗"] * 5


def test_every_linked_asset_exists_with_the_expected_size(reports):
    md = reports["good"]
    links = re.findall(r"\]\((assets/[^)]+)\)", md.read_text())
    assert len(links) > 20
    for link in links:
        p = md.parent / link
        assert p.exists(), link
        im = Image.open(p)
        assert im.size[0] > 0 and im.size[1] > 0
        if "chart-" in link:  # rows = directions (16 per page), 7 shifts, 64-pixel tiles + 2 gap
            rows = 16 if "-K32-" in link or "p1" in link else None
            if rows:
                assert im.size == (110 + 7 * 66, rows * 66)
        if link.endswith(".gif"):  # one 64-pixel tile per direction; a sweep of up to 16 frames
            first, last = map(int, re.search(r"-(\d{3})-(\d{3})\.gif$", link).groups())
            assert im.size == ((last - first + 1) * 64, 64)
            assert 2 <= im.n_frames <= 16  # Pillow merges identical consecutive frames
    # K=100 stand-ins have 40 directions: three chart pages, four GIFs, none silently dropped
    assert sum("chart-gan-lenet-unit-K100-s0" in x for x in links) == 3
    assert sum("anim-gan-lenet-unit-K100-s0" in x for x in links) == 4


def test_report_is_deterministic(tmp_path, reports):
    run = fake_run(tmp_path / "run", good)
    again = build_report(run, tmp_path / "rep")
    assert again.read_text() == reports["good"].read_text()
    for p in (reports["good"].parent / "assets").iterdir():
        if p.suffix == ".png" and not p.name.startswith(("curve", "fid", "losses")):
            assert (again.parent / "assets" / p.name).read_bytes() == p.read_bytes(), p.name


def test_directions_found_table_and_labelled_chart_rows(reports):
    text = reports["good"].read_text()
    assert "## Directions found" in text
    row = next(x for x in text.splitlines() if x.startswith("| gan-lenet-unit-K32-s0 "))
    assert "0.90 / 0.70 ✓" in row and row.rstrip("| ").endswith("1")
    row = next(x for x in text.splitlines() if x.startswith("| gan-lenet-ortho-K32-s0 "))
    assert "✓" not in row


@pytest.mark.parametrize("damage,msg", [("missing", "no generator checkpoint"),
                                        ("truncated", "unreadable generator checkpoint")])
def test_a_missing_or_damaged_generator_is_a_one_line_error_naming_the_file(tmp_path, capsys, damage, msg):
    from raylatent.report.__main__ import main as report_main

    run = fake_run(tmp_path / "run", good, seeds=(0,))
    weights = run / "generators" / "g" / "vae" / "generator.pt"
    data = weights.read_bytes()
    weights.unlink()
    if damage == "truncated":
        weights.write_bytes(data[: len(data) // 3])
    assert report_main([str(run), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(weights) in err and msg in err
    assert not (tmp_path / "rep" / "REPORT.md").exists()
