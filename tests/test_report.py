"""The report from a fabricated run directory: exact Table 1 values, claims, assets, links."""
import json
import re

import pytest
from PIL import Image

from fake_run import fake_run
from raylatent.config import ReportConfig
from raylatent.interpret.labels import SEMANTIC
from raylatent.report.build import build_report
from raylatent.report.figures import HEADER, TILE
from raylatent.report.tables import CLAIMS, PAPER, check_claim, table1

pytestmark = pytest.mark.slow  # fabricated runs whose report images are rendered (seconds each)


def good(g, r, d, k, s):
    """Metrics under which every claim of the paper holds by 0.04 or more (beyond the 95% interval
    of two seeds 0.01 apart: 0.030); seeds differ by 0.01."""
    rca = 0.8 + (0.1 if g == "vae" else 0) + (0.05 if d == "proj" and k == 32 else 0) + (0.04 if r == "resnet" else 0)
    ls = (0.5 - (0.15 if g == "vae" else 0) - (0.05 if d == "proj" and k == 32 else 0)
          - (0.1 if (r == "lenet" and k == 100) else 0) - (0.05 if (r == "resnet" and k == 32) else 0))
    return rca + 0.01 * s, ls + 0.01 * s


def bad(g, r, d, k, s):
    rca, ls = good(g, r, d, k, s)
    return 1.8 - rca, 0.6 - ls  # every comparison reversed


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
    # VAE LeNet, unit length (proj) K=32, seeds 0 and 1: sd 0.00707
    rca = [good("vae", "lenet", "proj", 32, s)[0] for s in (0, 1)]
    mean = sum(rca) / 2
    row = next(line for line in text.splitlines() if line.startswith("| VAE LeNet (ours)"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # mean ± std, then the 95% t interval of the mean (t_0.975 with 1 df = 12.7062), then n
    half = 12.7062 * abs(rca[0] - rca[1]) / 2  # sd = |a - b| / sqrt(2); half-width = t sd / sqrt(2)
    assert cells[3].startswith(f"{mean:.4f} ± 0.0071 [{mean - half:.3f}, {mean + half:.3f}] (n=2)"), cells[3]
    assert f"({mean - PAPER[('vae', 'lenet')][1][0]:+.3f})" in cells[3]
    paper_row = next(line for line in text.splitlines() if line.startswith("| VAE LeNet (paper)"))
    assert "0.9895" in paper_row and "0.0962" in paper_row


def test_flipping_the_metrics_flips_the_claims(reports):
    def marks(p):
        return re.findall(r"^- ([✓✗–]) ", p.read_text(), re.M)

    assert marks(reports["good"]) == ["✓"] * len(CLAIMS)
    assert marks(reports["bad"]) == ["✗"] * len(CLAIMS)


def test_every_linked_asset_exists_with_the_expected_size(reports):
    md = reports["good"]
    links = re.findall(r"\]\((assets/[^)]+)\)", md.read_text())
    assert len(links) > 20
    for link in links:
        p = md.parent / link
        assert p.exists(), link
        im = Image.open(p)
        cell, shifts = TILE + 2, len(ReportConfig().shifts)  # a tile and its gap; the report's shift columns
        if "chart-" in link:  # rows = directions (16 per page), a label column, a column per shift
            k = 32 if "-K32-" in link else 40
            page = int(re.search(r"-p(\d+)\.png$", link).group(1))
            rows = min(16, k - 16 * (page - 1))
            assert im.size == (110 + shifts * cell, HEADER + rows * cell), link  # shift values on top
        elif "random-vs-discovered" in link:  # 5 directions; random, a gap column, discovered
            assert im.size == (110 + (2 * shifts + 1) * cell, HEADER + 5 * cell)
        elif link.endswith("z-position.png"):  # 24 latents (labelled), a column per shift
            assert im.size == (110 + shifts * cell, HEADER + 24 * cell)  # latents labelled, shifts on top
        elif "interpolation-" in link:  # original, 8 steps, original
            assert im.size == (10 * cell, HEADER + cell)
        elif "found-" in link:  # What we found: a row per factor (its best direction), a column per shift
            assert im.size == (150 + shifts * cell, HEADER + len(SEMANTIC) * cell), link
        elif link.endswith(".png"):  # matplotlib curves: 7 x 3.6 inches at 100 dpi
            assert im.size == (700, 360), link
        if link.endswith(".gif"):  # one 64-pixel tile per direction; a sweep of up to 16 frames
            first, last = map(int, re.search(r"-(\d{3})-(\d{3})\.gif$", link).groups())
            assert im.size == ((last - first + 1) * 64, 64)
            assert 2 <= im.n_frames <= 16  # Pillow merges identical consecutive frames
    # K=100 stand-ins have 40 directions: three chart pages, four GIFs, none silently dropped
    assert sum("chart-gan-lenet-proj-K100-s0" in x for x in links) == -(-40 // 16)
    assert sum("anim-gan-lenet-proj-K100-s0" in x for x in links) == -(-40 // 10)


def test_the_report_opens_with_what_was_found_and_folds_every_direction_into_an_appendix(reports):
    """First the Fig-2-style panel per generator (the configuration with the most factors found,
    one row per factor), then the summary; the per-configuration charts only in a folded
    appendix; the same report as self-contained-enough HTML (its images all exist)."""
    md = reports["good"]
    text = md.read_text()
    heads = [line for line in text.splitlines() if line.startswith("## ")]
    assert heads[0] == "## What we found" and heads[1] == "## Run summary" and heads[-1].startswith("## Appendix")
    for gen in ("GAN", "VAE"):  # the fake run: proj trials find rotation (1 factor), others 0
        head = next(x for x in text.splitlines() if x.startswith(f"### {gen}: "))
        assert "-proj-" in head and "finds 1 of 8 factors" in head and "(random directions: 0)" in head
        block = re.split(r"\n#{2,3} ", text.split(head)[1])[0]  # up to the next heading
        rows = [x for x in block.splitlines() if x.startswith("| ") and not x.startswith("| factor")]
        assert [r.split("|")[1].strip() for r in rows] == list(SEMANTIC)
        assert sum(r.rstrip().endswith("✓ |") for r in rows) == 1
        # the panel and the verdict under "Directions found" name the same configuration
        trial = head.split(": ")[1].split(" finds")[0]
        assert f"- {gen}: the best learned configuration ({trial}) finds" in text
    appendix = text.split("## Appendix")[1]
    assert "<details" in appendix and "</details>" in appendix and "![" in appendix
    assert not any("chart-" in x for x in text.split("## Appendix")[0].splitlines())  # charts only there
    html = (md.parent / "REPORT.html").read_text()
    assert "<table>" in html and "<h2>What we found</h2>" in html
    srcs = re.findall(r'src="([^"]+)"', html)
    assert len(srcs) == len(re.findall(r"!\[[^\]]*\]\((assets/[^)]+\.(?:png|gif))\)", text))
    assert all((md.parent / src).is_file() for src in srcs)


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
    row = next(x for x in text.splitlines() if x.startswith("| gan-lenet-proj-K32-s0 "))
    assert "0.90 / 0.70 · 0.63 vs 0.50 ✓" in row and row.rstrip("| ").endswith("1")  # fake_run: chance 0.5
    row = next(x for x in text.splitlines() if x.startswith("| gan-lenet-ortho-K32-s0 "))
    assert "✓" not in row


def test_the_report_reads_files_only_and_needs_no_generator(tmp_path):
    """The directions stage renders the report's images; the reporter never loads a generator
    (a copied run directory without weights still reports, and as fast as reading files)."""
    from raylatent.report.__main__ import main as report_main

    run = fake_run(tmp_path / "run", good, seeds=(0,))
    for weights in (run / "generators" / "g").glob("*/generator.pt"):
        weights.unlink()
    assert report_main([str(run), "--out", str(tmp_path / "rep")]) == 0
    text = (tmp_path / "rep" / "REPORT.md").read_text()
    assert "![interpolation vae](assets/interpolation-vae.png)" in text
    assert (tmp_path / "rep" / "assets" / "z-position.png").stat().st_size > 1000


@pytest.mark.parametrize("damage", ["manifest", "file"])
def test_missing_renders_are_a_one_line_error_naming_the_file(tmp_path, capsys, damage):
    from raylatent.report.__main__ import main as report_main

    run = fake_run(tmp_path / "run", good, seeds=(0,))
    rendered = run / json.loads((run / "latest.json").read_text())["stages"]["renders"]
    victim = rendered / "renders.json" if damage == "manifest" else next(rendered.glob("chart-*.npz"))
    victim.unlink()
    assert report_main([str(run), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(victim) in err
    assert not (tmp_path / "rep" / "REPORT.md").exists()


@pytest.mark.parametrize("damage,msg", [("missing", "no generator checkpoint"),
                                        ("truncated", "unreadable generator checkpoint")])
def test_rendering_with_a_missing_or_damaged_generator_is_a_one_line_error(tmp_path, damage, msg):
    from raylatent.config import ConfigError
    from raylatent.tune.stage import render_for_report

    run = fake_run(tmp_path / "run", good, seeds=(0,))
    weights = run / "generators" / "g" / "vae" / "generator.pt"
    data = weights.read_bytes()
    weights.unlink()
    if damage == "truncated":
        weights.write_bytes(data[: len(data) // 3])
    with pytest.raises(ConfigError) as e:  # other shifts: a new render folder, so the generators are read
        render_for_report(run / "generators" / "g", run / "directions" / "t", run / "data" / "d", [-1.0, 0.0, 1.0])
    assert "\n" not in str(e.value) and str(weights) in str(e.value) and msg in str(e.value)


def _cells(metrics, steps=lambda g, r, d, k: 800, seeds=(0,)):
    recs = [{"generator": g, "reconstructor": r, "deformator": d, "K": k, "seed": s, "iterations": steps(g, r, d, k),
             "rca": metrics(g, r, d, k, s)[0], "ls": metrics(g, r, d, k, s)[1]}
            for g in ("gan", "vae") for r in ("lenet", "resnet") for d, k in (("ortho", 32), ("proj", 32), ("proj", 100))
            for s in seeds]
    return table1(recs)[1]


SPREAD = {"rca": 0.02, "ls": 0.01}


def test_a_claim_is_checked_cell_by_cell_not_on_the_average():
    """VAE beats GAN on average here, but not in one cell: "always" fails."""
    def m(g, r, d, k, s):
        rca, ls = good(g, r, d, k, s)
        return (0.6 if (g, r, d, k) == ("vae", "lenet", "ortho", 32) else rca), ls
    verdict, ev = check_claim(CLAIMS[0], _cells(m), SPREAD)
    assert verdict == "✗" and ev.count("✗") == 1 and ev.count("✓") == len(CLAIMS[0].pairs) - 1


def test_all_but_one_allows_exactly_one_exception():
    claim = next(c for c in CLAIMS if "all but one" in c.text)

    def m(flip):
        def f(g, r, d, k, s):
            rca, ls = good(g, r, d, k, s)
            if d == "proj" and k == 32 and (g, r) in flip:
                ls += 0.2  # unit length now worse than orthonormal on Ls in this row
            return rca, ls
        return f
    assert check_claim(claim, _cells(m({("vae", "resnet")})), SPREAD)[0] == "✓"  # as in the paper
    assert check_claim(claim, _cells(m({("vae", "resnet"), ("gan", "lenet")})), SPREAD)[0] == "✗"


def test_differences_within_the_seed_spread_are_not_resolved():
    def m(g, r, d, k, s):
        rca, ls = good(g, r, d, k, s)
        return (rca - 0.045 if r == "resnet" else rca), ls  # ResNet ahead by 0.04 - 0.045 < 0: tiny
    verdict, ev = check_claim(CLAIMS[4], _cells(m), {"rca": 0.02, "ls": 0.01})
    assert verdict == "not resolved" and "not resolved (|Δ| 0.005 ≤ 0.020)" in ev
    assert check_claim(CLAIMS[4], _cells(m), {"rca": 0.001, "ls": 0.01})[0] == "✗"


def test_cells_with_different_step_counts_are_confounded():
    steps = lambda g, r, d, k: 3000 if r == "resnet" else 25000  # noqa: E731  (the paper's K=32 counts)
    verdict, ev = check_claim(CLAIMS[4], _cells(good, steps), SPREAD)
    assert verdict == "confounded" and "confounded: [3000] vs [25000] steps" in ev
    assert check_claim(CLAIMS[0], _cells(good, steps), SPREAD)[0] == "✓"  # GAN and VAE cells share steps


def test_table_has_chance_random_baseline_and_fid_reference(reports, tmp_path):
    text = reports["good"].read_text()
    chance = next(x for x in text.splitlines() if x.startswith("| chance (1/K)"))
    assert [c.strip() for c in chance.strip("|").split("|")][1:6:2] == ["0.0312", "0.0312", "0.0100"]
    rnd = next(x for x in text.splitlines() if x.startswith("| GAN random directions (A fixed)"))
    m, half = good('gan', 'lenet', 'random', 100, 0)[0] + 0.005, 12.7062 * 0.01 / 2  # seeds 0.01 apart
    assert f"{m:.4f} ± 0.0071 [{m - half:.3f}, {m + half:.3f}] (n=2) (lenet)" in rnd
    assert "γ · mean |ε − ε̂| with γ = 0.25" in text
    assert "the paper's 33.4 is not comparable: this FID comes from the offline fallback" in text
    run = fake_run(tmp_path / "run", good, seeds=(0,), fid_network="inception-v3 (pytorch-fid, pool3 2048)")
    inc = build_report(run, tmp_path / "rep").read_text()
    assert "paper: 33.4 (Inception" in inc and "paper: 93.9 (Inception" in inc


def test_our_unit_norm_ablation_is_its_own_column_without_paper_values():
    from raylatent.report.tables import columns

    recs = [{"generator": "gan", "reconstructor": "lenet", "deformator": d, "K": k, "seed": 0, "iterations": 800,
             "rca": 0.5, "ls": 0.2} for d, k in (("ortho", 32), ("proj", 32), ("proj", 100), ("unit", 32))]
    cols = columns(recs)
    assert [(d, k) for d, k, _ in cols] == [("ortho", 32), ("proj", 32), ("proj", 100), ("unit", 32)]
    assert cols[3][2] == "Unit-norm columns (ours, not the paper's) K=32"
    text, cells = table1(recs)
    header = text.splitlines()[0]
    assert "Unit-norm columns (ours, not the paper's) K=32 RCA" in header and cells[("gan", "lenet", "unit", 32)]["rca"] == 0.5
    paper_row = next(x for x in text.splitlines() if x.startswith("| GAN LeNet (paper)"))
    assert [c.strip() for c in paper_row.strip("|").split("|")][-2:] == ["", ""]


def test_curves_use_a_distinct_style_per_series(tmp_path):
    from raylatent.report.figures import curves_png, line_styles

    series = {f"trial-{i:02d}": [(10, 0.1 * (i % 7)), (20, 0.2)] for i in range(24)}  # a smoke run has 16+
    styles = curves_png(series, tmp_path / "c.png", "RCA", "iteration", "RCA", hlines={"chance 1/32": 1 / 32})
    assert len(set(styles)) == len(series) == len(styles) and styles == line_styles(24)
    assert Image.open(tmp_path / "c.png").size == (700, 360)


def test_best_learned_breaks_ties_by_evidence_over_chance_then_rca():
    from raylatent.discovery.records import best_learned

    def row(name, found, margin, rca, deformator="proj"):
        return {"trial": name, "deformator": deformator, "factors_found": found, "rca": rca,
                "factors": {"size": {"score": 0.5 + margin, "chance": 0.5}}}

    rows = [row("a", 1, 0.05, 0.9), row("b", 1, 0.20, 0.1), row("c", 0, 0.9, 0.99),
            row("r", 5, 0.9, 0.9, deformator="random")]  # the random baseline is never the best learned
    assert best_learned(rows)["trial"] == "b"
    assert best_learned([row("a", 1, 0.1, 0.5), row("b", 1, 0.1, 0.7)])["trial"] == "b"
    assert best_learned([rows[-1]]) is None


def test_controls_and_coverage_stand_beside_table1_and_in_every_verdict(tmp_path):
    """fake_run(controls=True): a supervised control per generator (6 found at K=32, 4 at K=100),
    a VAE that does not generate breast and a GAN that copies its training slices."""
    run = fake_run(tmp_path / "run", good, seeds=(0,), controls=True)
    text = build_report(run, tmp_path / "report").read_text()
    lines = text.splitlines()
    assert text.index("## Does each generator vary the factors?") < text.index("## Table 1")
    assert text.index("## Table 1") < text.index("## Positive controls") < text.index("## Directions found")
    vae_cov = next(x for x in lines if x.startswith("| VAE ") and "not generated" in x)
    assert vae_cov.count("not generated") == 1 and vae_cov.rstrip("| ").endswith("7/8")
    assert any("GAN: generated slices" in x and "copies its training slices" in x for x in lines)
    assert any("VAE: generated slices" in x and "no sign of copying" in x for x in lines)
    sup = next(x for x in lines if x.startswith("| GAN ") and "supervised (control)" in x)
    assert "6/8: width, height, size, rotation, y, thickness" in sup and "4/8: width, height, size, rotation" in sup
    # the best learned configuration (proj finds rotation) read against the supervised control at its K
    assert any(x.startswith("- GAN: ") and "finds 1 of 8 factors (1 of the 6 supervised directions find, at K = 32)"
               in x for x in lines)
    row = next(x for x in lines if x.startswith("| vae-lenet-proj-K32-s0 "))
    assert "(not generated)" in row
    assert any("not found and not generated by this generator: breast" in x for x in lines if x.startswith("- VAE:"))
    found = next(x for x in lines if x.startswith("### GAN: "))
    assert "supervised control: 6" in found
    page = (tmp_path / "report" / "explorer.html").read_text()
    assert page.count('"role":"control"') == 2 and "gan-none-supervised-K8-s0" in page  # one per generator


def test_a_damaged_coverage_file_is_a_one_line_error(tmp_path):
    from raylatent.config import ConfigError

    run = fake_run(tmp_path / "run", good, seeds=(0,), controls=True)
    (run / "directions" / "t" / "coverage.json").write_text('{"gan": {"factors": 3}}')
    with pytest.raises(ConfigError, match="coverage.json: damaged coverage"):
        build_report(run, tmp_path / "report")


def test_a_rebuild_killed_midway_leaves_the_previous_report_whole(tmp_path, monkeypatch):
    """The report is built beside its folder and swapped in: a build that dies while the explorer
    is rewritten keeps the old REPORT.md with every page and image it links; a user's file and a
    replicate's report inside the folder survive a finished rebuild."""
    import raylatent.report.build as B

    run = fake_run(tmp_path / "run", good)
    rep = tmp_path / "rep"
    md = build_report(run, rep)
    before = {p.relative_to(rep): p.read_bytes() for p in rep.rglob("*") if p.is_file()}
    links = re.findall(r"\]\(((?:assets/|explorer)[^)]+)\)", md.read_text())
    assert links and any(x.startswith("explorer") for x in links)

    def die(records, ddir, rendered, man, cfg, out, **k):
        (out / "explorer.html").unlink(missing_ok=True)  # what the explorer's writer does first ...
        raise KeyboardInterrupt  # ... and a kill right then
    monkeypatch.setattr(B, "write_explorer", die)
    with pytest.raises(KeyboardInterrupt):
        build_report(run, rep)
    assert {p.relative_to(rep): p.read_bytes() for p in rep.rglob("*") if p.is_file()} == before
    assert all((rep / x).is_file() for x in links)
    assert [p.name for p in rep.iterdir() if p.name.startswith(".") and p.name != B.MARKER] == []  # no staging left
    monkeypatch.undo()
    (rep / "my-notes.txt").write_text("mine")
    (rep / "replicate-2").mkdir()
    (rep / "replicate-2" / "REPORT.md").write_text("# replicate 2")
    build_report(run, rep)
    assert (rep / "my-notes.txt").read_text() == "mine" and (rep / "replicate-2" / "REPORT.md").is_file()
    # the swap itself failing halfway (a full disk, a read-only file): one line, a whole report, the
    # user's files untouched
    import os

    real, calls = os.replace, []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(src, dst)
    monkeypatch.setattr(B.os, "replace", flaky)
    with pytest.raises(B.ConfigError, match="the report could not be written"):
        build_report(run, rep)
    monkeypatch.undo()
    assert (rep / "my-notes.txt").read_text() == "mine" and (rep / "replicate-2" / "REPORT.md").is_file()
    assert all((rep / x).is_file() for x in links) and (rep / "REPORT.md").is_file()
