"""Grids: loading, overrides and one-line errors; cluster.yaml against Ray's own schema."""
import json
from pathlib import Path

import pytest
import yaml

from raylatent.ablate import main as ablate_main
from raylatent.config import ConfigError
from raylatent.gridfile import load_grid

ROOT = Path(__file__).resolve().parent.parent


def test_full_grid_is_the_papers_study():
    g = load_grid("full")
    trials = [t for t in g.directions.trials() if t.deformator != "random"]
    d = g.directions
    assert len(trials) == len(d.generators) * len(d.reconstructors) * len(d.deformators) * len(d.seeds)
    # the paper's three columns, with the authors' deformators; our unit-norm columns as an extra ablation
    assert [(x["deformator"], x["K"]) for x in d.deformators][:3] == [("ortho", 32), ("proj", 32), ("proj", 100)]
    steps = {(t.generator, t.reconstructor, t.deformator, t.K): t.steps for t in trials}
    assert steps[("gan", "lenet", "proj", 32)] == 25000 and steps[("vae", "resnet", "ortho", 32)] == 3000
    assert steps[("vae", "lenet", "proj", 100)] == 75000 and steps[("vae", "resnet", "proj", 100)] == 4000
    assert steps[("gan", "lenet", "proj", 100)] == 250000 and steps[("gan", "resnet", "proj", 100)] == 10000
    assert steps[("gan", "lenet", "unit", 32)] == steps[("gan", "lenet", "proj", 32)]
    assert (d.batch, d.gamma, d.lr, d.shift_scale, d.min_shift) == (128, 0.25, 1e-4, 6.0, 0.5)
    assert (g.generators.size, g.generators.gan_width, g.generators.epochs, g.generators.keep_last) == (128, 128, 50, 5)
    assert g.generators.latent_dim == 32


def test_learning_rate_and_width_per_reconstructor():
    d = load_grid("smoke", ["directions.lr_by_reconstructor={resnet: 0.0005}"]).directions
    assert d.lr_for("resnet") == 0.0005 and d.lr_for("lenet") == d.lr == 0.001
    smoke = load_grid("smoke").directions
    assert smoke.width_for("resnet") == 0.25 and smoke.width_for("lenet") == 1.0
    full = load_grid("full").directions  # the paper: one lr, full-width networks
    assert full.lr_for("resnet") == 1e-4 and full.width_for("resnet") == full.width_for("lenet") == 1.0
    with pytest.raises(ConfigError, match="width_by_reconstructor"):
        load_grid("smoke", ["directions.width_by_reconstructor={vgg: 0.5}"])


def test_seeds_axis_and_overrides():
    one = load_grid("smoke").directions
    g = load_grid("smoke", ["directions.seeds=[0,1,2]", "generators.epochs=4", "data.size=64"])
    cells = [(gen, r, d["deformator"], d["K"]) for gen in one.generators for r in one.reconstructors
             for d in one.deformators]
    cells += [(gen, one.reconstructors[0], "random", one.deformators[-1]["K"]) for gen in one.generators] \
        if one.random_baseline else []
    per_seed = len([c for c in cells if not one.excluded(*c)])
    assert one.exclude and per_seed < len(cells)  # the smoke grid runs the phantom generator on a subset of cells
    assert len(one.trials()) == per_seed and len(g.directions.trials()) == 3 * per_seed
    assert {t.seed for t in g.directions.trials()} == {0, 1, 2}
    assert g.generators.epochs == 4 and g.generators.size == 64  # generators follow data.size


def test_exclude_rules_remove_exactly_the_matching_cells():
    base = load_grid("smoke", ["directions.exclude=[]"]).directions
    d = load_grid("smoke", ["directions.exclude=[{generator: gan, reconstructor: resnet}, {K: 100}]"]).directions
    want = [t for t in base.trials() if not ((t.generator, t.reconstructor) == ("gan", "resnet") or t.K == 100)]
    assert d.trials() == want and len(want) < len(base.trials())
    with pytest.raises(ConfigError, match="directions.exclude"):
        load_grid("smoke", ["directions.exclude=[{seed: 0}]"])


@pytest.mark.parametrize("text,override,msg", [
    ("data: {size: [32\n", [], "not valid YAML"),
    ("directions: {batchsize: 32}\n", [], "directions.batchsize: unknown key"),
    ("generators: {epochs: many}\n", [], "generators.epochs: expected a number"),
    ("data: {}\n", ["directions.reconstructors=[vgg]"], "directions.reconstructors"),
    ("data: {}\n", ["data.path=/no/such/dir"], "data.path /no/such/dir: no such folder"),
    ("nonsense: 1\n", [], "unknown section 'nonsense'"),
    ("generators: {epochs: 2, keep_last: 5}\n", [], "keep_last"),
    ("directions: {lr_by_reconstructor: {vgg: 0.1}}\n", [], "lr_by_reconstructor"),
    ("directions: {batch: 1}\n", [], "directions.batch: 1"),
    ("data: {}\n", ["directions.iterations=5"], "directions.iterations: expected a list, got 5"),
    ("data: {}\n", ["directions.iterations=[500]"], "directions.iterations: 500 is not a mapping"),
    ("directions: {lr_by_reconstructor: 0.1}\n", [], "directions.lr_by_reconstructor: expected a mapping"),
    ("report: {windows: [{name: lung, center: -600}]}\n", [], "report.windows: {'name': 'lung'"),
    # issue 14: values that used to be tracebacks, hangs or silently wrong output
    ("data: {}\n", ["directions.deformators=[{deformator: proj, K: 0}]"], "K 0 in"),
    ("data: {}\n", ["directions.deformators=[{deformator: proj, K: 2.5}]"], "K 2.5 in"),
    ("data: {}\n", ["directions.deformators=[{deformator: proj, K: 100000}]"], "K 100000 in"),
    ("data: {}\n", ["directions.deformators=[{deformator: ortho, K: 16}]"], "ortho with K=16"),
    ("data: {}\n", ["directions.seeds=[]"], "directions.seeds: []"),
    ("data: {}\n", ["directions.iterations=[{steps: 0}]"], "steps 0 in"),
    ("data: {}\n", ["directions.lr=.nan"], "directions.lr: nan"),
    ("data: {}\n", ["directions.lr=-0.001"], "directions.lr: -0.001"),
    ("data: {}\n", ["data.test_frac=0"], "data.test_frac: 0"),
    ("data: {}\n", ["data.test_frac=1.5"], "data.test_frac: 1.5"),
    ("data: {}\n", ["data.patients=0"], "data.patients: 0"),
    ("data: {}\n", ["generators.gan_width=100000"], "generators.gan_width: 100000"),
    ("data: {}\n", ["name=../../x"], "name '../../x': a grid name is one folder name"),
    ("data: {}\n", ["name=/tmp/abs"], "name '/tmp/abs'"),
    # issue 27: silently wrong, or hangs and bombs
    ("generators: {epochs: 2}\ngenerators: {epochs: 3}\n", [], "key 'generators' given twice"),
    ("name: null\n", [], "name None: expected a text name"),
    ("data: {}\n", ["directions.seeds=[0,0]"], "directions.seeds: [0, 0]"),
    ("data: {}\n", ["data.phantom_seed=-1"], "data.phantom_seed"),
    ("data: {}\n", ["report.shifts=3"], "report.shifts: expected a list, got 3"),
    ("data: {}\n", ["report.shifts=[0, .inf]"], "report.shifts"),
    ("data: {}\n", ["report.windows=lung"], "report.windows: expected a list, got 'lung'"),
    ("data: {}\n", ["report.windows=[]"], "report.windows: []"),
    ("data: {}\n", ["report.z_direction=z"], "report.z_direction: expected a number, got 'z'"),
    ("data: {}\n", ["report.max_chart_rows=many"], "report.max_chart_rows: expected a number"),
    ("data: {}\n", ["directions.lr_by_reconstructor=[0.1]"], "directions.lr_by_reconstructor: expected a mapping"),
    ("data: {}\n", ["directions.lr_by_reconstructor={lenet: .inf}"], "directions.lr_by_reconstructor: lenet: inf"),
    ("data: {}\n", ["directions.width_by_reconstructor={lenet: 1000}"], "width_by_reconstructor: lenet: 1000"),
    ("a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
     "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\ndata: {path: *e}\n", [],
     "values once its aliases are expanded"),
])
def test_bad_grids_give_one_line_errors(tmp_path, capsys, text, override, msg):
    p = tmp_path / "g.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=msg.replace("[", r"\[").replace("(", r"\(")):
        load_grid(str(p), override)
    args = ["--grid", str(p), "--dry-run"] + [a for o in override for a in ("--set", o)]
    assert ablate_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("raylatent.ablate: error:")


def test_unknown_grid_name_lists_the_known_ones(capsys):
    assert ablate_main(["--grid", "smok"]) == 2
    err = capsys.readouterr().err
    assert "known: full, " in err and ", smoke," in err  # every shipped grid, sorted (search grids too)


def test_cluster_yaml_validates_with_rays_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(prepare_config(cfg))
    assert cfg["provider"]["type"] != "local" and cfg["available_node_types"]["gpu_worker"]["max_workers"] >= 1
    starts = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in starts  # the dashboard is reached by port-forwarding only
    bad = dict(cfg, head_node_type="nope")
    with pytest.raises(Exception):
        validate_config(prepare_config(bad))


def test_worker_hooks_quiet_rays_per_epoch_chatter_by_the_loggers_real_names():
    import logging

    from ray.train.v2._internal.execution import context
    from ray.train.v2._internal.execution.controller import placement_group_cleaner

    from raylatent.ablate import _quiet_workers, _quiet_workers_without_state_api

    loggers = [logging.getLogger("ray.data"), context.logger, placement_group_cleaner.logger]
    before = [lg.level for lg in loggers]
    try:
        _quiet_workers()
        assert [lg.isEnabledFor(logging.INFO) for lg in loggers[:2]] == [False, False]
        assert context.logger.isEnabledFor(logging.WARNING) and placement_group_cleaner.logger.isEnabledFor(
            logging.WARNING)  # the cleaner only where there is no State API
        _quiet_workers_without_state_api()
        assert not placement_group_cleaner.logger.isEnabledFor(logging.WARNING)
        assert logging.getLogger("ray.train").level != logging.ERROR  # nothing wider
    finally:
        for lg, lvl in zip(loggers, before):
            lg.setLevel(lvl)


def test_an_out_that_is_a_file_and_a_data_path_without_ct_are_one_line(tmp_path, capsys, ray_session):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert ablate_main(["--grid", "smoke", "--out", str(afile)]) == 2
    assert f"--out {afile}: is a file" in capsys.readouterr().err
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("no DICOM here")
    rc = ablate_main(["--grid", "smoke", "--out", str(tmp_path / "run"), "--no-dashboard",
                      "--set", f"data.path={notes}"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "no usable CT slices (1 files seen, 1 skipped: not DICOM)" in err


def test_grids_ship_inside_the_package(tmp_path):
    """A non-editable install finds --grid smoke: the wheel carries the grids; ablations/ links to them."""
    import subprocess
    import sys
    import zipfile

    for name in ("smoke", "full"):
        link = ROOT / "ablations" / f"{name}.yaml"
        assert link.resolve() == (ROOT / "raylatent" / "grids" / f"{name}.yaml").resolve()
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-1000:]
    (wheel,) = tmp_path.glob("raylatent-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"raylatent/grids/smoke.yaml", "raylatent/grids/full.yaml"} <= set(names)


def test_print_config_is_the_resolved_grid_and_loads_back_as_the_same_grid(tmp_path, capsys):
    import json

    import yaml

    from raylatent.ablate import main as ablate_main

    sets = ["directions.seeds=[0, 1]", "generators.epochs=3", "generators.keep_last=2"]
    assert ablate_main(["--grid", "smoke", "--print-config", *[a for s in sets for a in ("--set", s)]]) == 0
    printed = capsys.readouterr().out
    want = json.loads(json.dumps(load_grid("smoke", sets).to_dict(), default=list))
    assert yaml.safe_load(printed) == want
    (tmp_path / "resolved.yaml").write_text(printed)
    again = json.loads(json.dumps(load_grid(str(tmp_path / "resolved.yaml")).to_dict(), default=list))
    assert again == want and want["directions"]["seeds"] == [0, 1] and want["generators"]["epochs"] == 3


@pytest.mark.parametrize("path", sorted((ROOT / "raylatent" / "grids").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_grid_loads_and_plans(path, tmp_path):
    """Each grid in the package (and its ablations/ link) loads by name and plans: its trials (or a
    search's cells), its replicates' grids and stage folders, without running anything."""
    from raylatent.ablate import Plan
    from raylatent.gridfile import load_grid

    assert (ROOT / "ablations" / path.name).resolve() == path.resolve()
    grid = load_grid(path.stem)
    assert grid.name == path.stem
    plan = Plan(grid, tmp_path / "run", tmp_path / "report")
    if grid.search is not None:
        from raylatent.search.space import cells

        assert cells(grid), f"{path.name}: a search with no cells"
        return
    trials = grid.directions.trials()
    d = grid.directions
    # every learned cell not excluded, and one random baseline per generator (first reconstructor, last K)
    learned = [(g, r, x["deformator"], x["K"]) for g in d.generators for r in d.reconstructors for x in d.deformators]
    baselines = [(g, d.reconstructors[0], "random", d.deformators[-1]["K"]) for g in d.generators] * d.random_baseline
    expect = sum(not d.excluded(*c) for c in learned + baselines) * len(d.seeds)
    assert len(trials) == expect and len({t.name for t in trials}) == len(trials)
    for r in range(grid.generators.replicates):
        sub = plan.replicate(r)
        assert sub.grid.generators.seed == grid.generators.seed + r and sub.data == plan.data


@pytest.mark.parametrize("inside", ["out", "report"])
def test_an_out_inside_the_data_source_is_refused_before_anything_is_written(tmp_path, capsys, inside):
    src = tmp_path / "dicom"
    (src / "P1").mkdir(parents=True)
    (src / "P1" / "1.dcm").write_bytes(b"\0" * 200)
    before = sorted(p.relative_to(src) for p in src.rglob("*"))
    out = src / "run" if inside == "out" else tmp_path / "run"
    rep = src / "rep" if inside == "report" else tmp_path / "rep"
    rc = ablate_main(["--grid", "smoke", "--out", str(out), "--report-dir", str(rep), "--set", f"data.path={src}"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "overlaps data.path" in err and len(err.splitlines()) == 1
    assert sorted(p.relative_to(src) for p in src.rglob("*")) == before  # no console.log, no grid.json


def test_the_directions_and_search_keys_change_with_the_data_even_when_the_weights_do_not(tmp_path):
    """The phantom generator's weights come from a seed, not the data; its directions, z regressor,
    coverage and held-out renders all read the data, so other data means another folder."""
    from raylatent.ablate import Plan

    grid = load_grid("smoke", ["directions.generators=[phantom]"])
    folders = []
    for fp in ("data-A", "data-B"):
        plan = Plan(grid, tmp_path / "run", tmp_path / "rep")
        plan.fingerprint, plan.digests = fp, {"phantom": "same-weights"}
        plan.generators = tmp_path / "gens"
        folders.append(plan.resolve_directions(log=lambda *_: None))
    assert folders[0] != folders[1]
    from raylatent.search.run import search_key_inputs

    sgrid = load_grid(str(Path(__file__).parents[1] / "ablations" / "search-smoke.yaml"))
    assert not sgrid.search.trains_generators  # the case the data did not reach the key before
    assert search_key_inputs(sgrid, {"g": "w"}, "data-A") != search_key_inputs(sgrid, {"g": "w"}, "data-B")


def test_a_grid_that_is_a_fifo_or_too_large_is_refused_without_reading_it(tmp_path, capsys):
    import os

    fifo = tmp_path / "g.yaml"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes: forever
    assert ablate_main(["--grid", str(fifo), "--dry-run"]) == 2
    assert "not a regular file" in capsys.readouterr().err
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 200_000)
    assert ablate_main(["--grid", str(big), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "over the 1048576 a grid file may have" in err and err.count("\n") == 1


@pytest.mark.parametrize("kw,says", [
    ({"shifts": 3}, "report.shifts: 3"), ({"windows": "lung"}, "report.windows: 'lung'"),
    ({"z_direction": "z"}, "report.z_direction: 'z'"), ({"max_chart_rows": "many"}, "report.max_chart_rows: 'many'"),
    ({"shifts": [float("nan")]}, "report.shifts"), ({"windows": []}, "report.windows: []"),
])
def test_report_settings_read_back_from_a_run_are_checked_too(kw, says):
    """latest.json carries the report section as a plain mapping (no grid file's type checks)."""
    from raylatent.report.config import ReportConfig

    with pytest.raises(ConfigError, match=says.replace("[", r"\[")):
        ReportConfig(**kw)


def test_the_data_folder_name_never_reaches_a_run_file(tmp_path, monkeypatch):
    """data.path's folder names (often a patient's name or record number) are pseudonymised in
    latest.json (the report's "Data:" line) and grid.json, like every other path component."""
    from raylatent import ablate as A

    monkeypatch.setenv("RAYLATENT_SALT", "test-salt")
    src = tmp_path / "DOE^JOHN_MRN12345"
    src.mkdir()
    grid = load_grid("smoke", [f"data.path={src}"])
    plan = A.Plan(grid, tmp_path / "run", tmp_path / "rep")
    for k in ("generators", "directions", "renders"):
        setattr(plan, k, plan.run_dir / k)
    plan.run_dir.mkdir()
    A._write_latest(plan)
    latest = (plan.run_dir / "latest.json").read_text()
    public = json.dumps(A._public_grid(grid))
    for text in (latest, public):
        assert "DOE" not in text and "MRN12345" not in text and "DICOM folder /x-" in text
    assert A._public_grid(grid)["data"]["path"] == json.loads(latest)["data_source"]


def test_yaml_merge_keys_still_work_and_odd_keys_are_one_line(tmp_path):
    p = tmp_path / "g.yaml"
    p.write_text("name: 2024\ngenerators: &g {epochs: 6}\ndirections:\n  chance_pool: 40\n")
    grid = load_grid(str(p))
    assert grid.name == "2024" and grid.generators.epochs == 6
    tree = __import__("raylatent.gridfile", fromlist=["read_yaml"]).read_yaml(
        "d: &d {epochs: 3, batch_size: 8}\ngenerators:\n  <<: *d\n  epochs: 5\n")
    assert tree["generators"] == {"epochs": 5, "batch_size": 8}
    p.write_text("? [1, 2]\n: x\n")
    with pytest.raises(ConfigError, match="a key that is not text or a number"):
        load_grid(str(p))
    p.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError):
        load_grid(str(p))
