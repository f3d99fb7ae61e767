"""The study end to end on a reduced phantom (phantom -> shards -> generators -> Tune -> report),
then resume, retry and a two-node cluster on the same run directory."""
import json
import sys

import pytest

from ablate_helpers import REDUCED
from raylatent.ablate import main as ablate_main
from raylatent.gridfile import load_grid

pytestmark = pytest.mark.ray


def test_results_have_every_configuration(smoke_run):
    root, _, _ = smoke_run
    records = json.loads((root / "report" / "results.json").read_text())
    grid = load_grid("smoke", REDUCED)
    want = {(t.generator, t.reconstructor, t.deformator, t.K, t.seed) for t in grid.directions.trials()}
    trained = [r for r in records if r["reconstructor"] != "none"]
    got = {(r["generator"], r["reconstructor"], r["deformator"], r["K"], r["seed"]) for r in trained}
    assert got == want and len(trained) == len(grid.directions.trials())
    from raylatent.discovery.methods import method_of, names
    from raylatent.interpret.labels import FACTORS
    from raylatent.models import kind_of

    once = [r for r in records if r["reconstructor"] == "none"]
    baselines = sorted((r["generator"], r["deformator"]) for r in once if method_of(r["deformator"]).role == "closed-form")
    assert baselines == sorted((g, m) for g in grid.directions.generators for m in names("closed-form"))
    # positive controls: supervised directions on every generator, true axes where the generator knows them
    controls = sorted((r["generator"], r["deformator"]) for r in once if method_of(r["deformator"]).role == "control")
    assert controls == sorted([(g, "supervised") for g in grid.directions.generators]
                              + [(g, "axes") for g in grid.directions.generators if kind_of(g).truth is not None])
    grid_Ks = sorted({x["K"] for x in grid.directions.deformators})
    chance = json.loads(next((root / "run" / "directions").iterdir()).joinpath("chance.json").read_text())
    for r in records:  # every configuration says what its directions do, held to chance on its generator
        assert len(r["labels"]) == r["K"] and set(r["factors"]) == set(FACTORS)
        control = method_of(r["deformator"]).role == "control"
        if control:  # a direction per factor it could fit, held to every grid K; judged at the largest
            labels = json.loads((next((root / "run" / "directions").iterdir()) / "trials" / r["trial"]
                                 / "labels.json").read_text())
            assert r["K"] <= len(FACTORS) and len(labels["control_factors"]) == r["K"]
            assert sorted(map(int, r["found_by_K"])) == grid_Ks
            assert set(r["found_by_K"][str(grid_Ks[-1])]) == {n for n, f in r["factors"].items() if f["found"]}
        limits = chance[r["generator"]]["K"][str(grid_Ks[-1] if control else r["K"])]  # closed-form ones too
        for name, f in r["factors"].items():  # a failure names the record, the factor and both values
            assert f["chance"] == limits[name], (r["trial"], name, f["chance"], limits[name])
            assert f["found"] <= (f["score"] > f["chance"]), (r["trial"], name, f)
        # scores against the true directions exactly where the generator knows them
        assert ("truth" in r) == (kind_of(r["generator"]).truth is not None)
        if "truth" in r:
            assert set(r["truth"]["matched_cos"]) == set(FACTORS) and 0 <= r["truth"]["axes_recovered"] <= 8
    (ddir,) = (root / "run" / "directions").iterdir()
    # every generator's coverage measured, and every record's factors say whether it generates them
    cov = json.loads((ddir / "coverage.json").read_text())
    assert set(cov) == set(grid.directions.generators)
    for r in records:
        assert all(f["generated"] == cov[r["generator"]]["factors"][n]["generated"] for n, f in r["factors"].items())
    assert json.loads((ddir / "couplings.json").read_text())["size"] == grid.data.size
    d = grid.directions
    for r in trained:
        assert r["iterations"] == d.steps_for(r["generator"], r["reconstructor"], r["K"], r["deformator"])
        assert (ddir / r["directions"]).is_file() and r["wall_s"] > 0
        curve = json.loads((ddir / "trials" / r["trial"] / "curve.json").read_text())
        assert curve[-1]["step"] == r["iterations"] and (curve[-1]["rca"], curve[-1]["ls"]) == (r["rca"], r["ls"])
        assert r["ls"] == pytest.approx(d.gamma * r["shift_mae"])
    # the reported RCA is what the saved trial measures again (same held-out latents): the numbers
    # come from the model that was kept, not from anywhere else
    r = next(x for x in trained if x["reconstructor"] == "lenet" and x["deformator"] == "proj")
    assert _re_evaluate(root, ddir, grid, r) == (r["rca"], pytest.approx(r["ls"], rel=1e-4))  # threads: summation order
    assert (root / "report" / "REPORT.md").exists()
    # TensorBoard event files for every trial
    events = list((root / "run" / "directions").rglob("events.out.tfevents.*"))
    assert len({e.parent.name for e in events}) == len(d.trials())


def _re_evaluate(root, ddir, grid, r):
    from raylatent.discovery.evaluate import evaluate
    from raylatent.discovery.records import Trial
    from raylatent.discovery.runner import load_checkpoint
    from raylatent.discovery.step import Discovery, DiscoveryConfig
    from raylatent.models.export import load_generator

    d = grid.directions
    (gdir,) = (root / "run" / "generators").iterdir()
    G = load_generator(gdir, r["generator"])
    disc = Discovery(G, DiscoveryConfig.for_trial(d, Trial.from_dict(r)))
    assert load_checkpoint(disc, ddir / "trials" / r["trial"]) and disc.step_count == r["iterations"]
    m = evaluate(disc, n=d.eval_n)
    return m["rca"], m["ls"]


def test_rerun_skips_every_stage(smoke_run, capsys):
    root, args, _ = smoke_run
    before = next((root / "run" / "directions").glob("*/results.json")).stat().st_mtime_ns
    assert ablate_main(args) == 0
    out = capsys.readouterr().out
    # every stage skipped, nothing retrained: the same results file, untouched
    assert "nothing to do" in out and "already trained" in out and "exists; skipping" in out
    assert (root / "run" / "directions").glob("*/results.json").__next__().stat().st_mtime_ns == before


def test_a_rerun_without_resume_never_deletes_finished_trials(smoke_run, tmp_path, capsys):
    """A run killed after some trials finished, rerun without --resume: refused in one line naming
    --resume, every finished trial left as it was (they may be hours of GPU work)."""
    import shutil

    root, args, _ = smoke_run
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    (ddir,) = (run / "directions").iterdir()
    (ddir / "results.json").unlink()  # as a kill before the stage's end leaves it
    records = {p: p.stat().st_mtime_ns for p in ddir.glob("trials/*/record.json")}
    assert records
    out_args = [a if a != str(root / "run") else str(run) for a in args]
    assert ablate_main(out_args) == 2
    err = capsys.readouterr().err.strip()
    assert "--resume" in err and "finished" in err and len(err.splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in ddir.glob("trials/*/record.json")} == records


def _by_value(fn):
    """Ray workers cannot import this test module: ship the hook by value."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return fn


@_by_value
def fail_once_at_step_10(marker):
    """A hook that fails the trial at step 10 unless it was restored from a checkpoint, leaving
    `marker` behind when it fires (so a test can tell that the failure happened at all)."""
    def hook(metrics: dict, resumed: bool) -> None:
        if metrics["step"] == 10 and not resumed:
            with open(marker, "a") as f:
                f.write("fired\n")
            raise RuntimeError("injected failure at step 10 (test)")
    return hook


def test_a_failing_trial_is_retried_from_its_checkpoint(smoke_run, tmp_path):
    from raylatent.tune.stage import run_directions

    root, _, _ = smoke_run
    gens = next((root / "run" / "generators").iterdir())
    d = load_grid("smoke", REDUCED + ["directions.generators=[vae]", "directions.reconstructors=[lenet]",
                                      "directions.deformators=[{deformator: unit, K: 8}]",
                                      "directions.random_baseline=false", "directions.baselines=false"]).directions
    marker = tmp_path / "failed"
    records = run_directions(gens, d, tmp_path / "dirs", after_report=fail_once_at_step_10(str(marker)),
                             log=lambda *_: None)
    records = [r for r in records if r["reconstructor"] != "none"]  # the positive controls run beside it
    # it failed exactly once: a restart from step 0 would not count as resumed and fail again
    assert marker.read_text() == "fired\n"
    assert len(records) == 1 and records[0]["iterations"] == 30
    curve = json.loads((tmp_path / "dirs" / "trials" / records[0]["trial"] / "curve.json").read_text())
    assert [c["step"] for c in curve] == [10, 20, 30]  # resumed after step 10, not restarted at 0


def test_moving_to_other_hardware_reuses_every_stage(smoke_run, capsys):
    """Scheduling settings are not part of any stage key: more CPUs, fewer workers, other retries
    reuse the generators and the trials."""
    root, args, _ = smoke_run
    folders = {p for stage in ("generators", "directions") for p in (root / "run" / stage).iterdir()}
    moved = args + ["--set", "directions.cpus_per_trial=0.25", "--set", "generators.cpus_per_worker=0.25",
                    "--set", "generators.num_workers=1", "--set", "directions.max_failures=3"]
    assert ablate_main(moved) == 0
    out = capsys.readouterr().out
    assert "already trained" in out and "exists; skipping" in out and "running again" not in out
    assert {p for stage in ("generators", "directions") for p in (root / "run" / stage).iterdir()} == folders


def test_changing_one_dicom_file_retrains_and_says_why(smoke_run, tmp_path, ray_session):
    """Other data never reuses old generators: one source file changed gives a new ingest
    fingerprint, hence a new generators folder, and one line saying why."""
    import shutil

    import pydicom

    from raylatent.ablate import Plan, run_data
    from raylatent.gridfile import load_grid

    root, _, _ = smoke_run
    run = tmp_path / "run"
    shutil.copytree(root / "run", run, ignore=shutil.ignore_patterns("directions"))
    grid = load_grid("smoke", REDUCED)
    plan = Plan(grid, run, tmp_path / "rep")
    old = plan.resolve_generators(json.loads((run_data(plan, log=lambda *_: None) / "manifest.json").read_text()))
    assert old.exists()  # the copied run's own generators: nothing changed yet
    f = sorted(run.glob("phantom/*/**/*.dcm"))[0]
    ds = pydicom.dcmread(f)
    ds.PixelData = bytes(len(ds.PixelData))  # one slice's pixels changed
    ds.save_as(f)
    logs = []
    manifest = json.loads((run_data(plan, log=logs.append) / "manifest.json").read_text())
    new = plan.resolve_generators(manifest, log=logs.append)
    assert new != old and not new.exists()
    assert any(line.startswith("generators: running again: data changed") for line in logs), logs


def test_the_console_says_one_line_per_trial_and_keeps_a_log(smoke_run):
    """console.log: every trial once as `[start i/N] name` and `[i/N] name done: RCA ...`, N the
    banner's count, no Tune
    status tables (they are -v only), no Ray Data progress bars; the last line counts the same."""
    import re

    root, _, _ = smoke_run
    trials = load_grid("smoke", REDUCED).directions.trials()
    text = (root / "run" / "console.log").read_text()
    assert f"== directions (Ray Tune, {len(trials)} trials) ==" in text
    done = re.findall(r"\[(\d+)/(\d+)\] (\S+) done: RCA \d\.\d{3} \(\d+x chance\), Ls \d\.\d{3}", text)
    assert sorted(int(i) for i, _, _ in done) == list(range(1, len(trials) + 1))
    assert {int(n) for _, n, _ in done} == {len(trials)} and {name for *_, name in done} == {t.name for t in trials}
    starts = re.findall(r"\[start (\d+)/(\d+)\] (\S+)$", text, flags=re.M)
    assert sorted(int(i) for i, _, _ in starts) == list(range(1, len(trials) + 1))  # each trial once, no failure
    assert {name for *_, name in starts} == {t.name for t in trials}
    assert "Trial status:" not in text and "row/s]" not in text
    n_closed = len(json.loads((root / "report" / "results.json").read_text())) - len(trials)
    assert (f"({len(trials)} trials and {n_closed} direction sets computed once per generator: closed-form methods "
            "and positive controls)") in text.splitlines()[-1]
    assert all(re.match(r"^\d\d:\d\d:\d\d ", line) for line in text.splitlines())


def test_the_readme_python_example_runs_on_a_finished_run(smoke_run, capsys):
    """The `raylatent.load_run` example of docs/api.md, as written there, on this run; then the images it
    gives are the generator's own, along the direction."""
    import re
    from pathlib import Path

    import numpy as np
    import torch

    import raylatent
    from raylatent.config import ConfigError

    root, _, _ = smoke_run
    readme = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    code = re.search(r"## Use a run from Python.*?```python\n(.*?)```", readme, re.S).group(1)
    scope: dict = {}
    exec(code.replace('"runs/smoke"', repr(str(root / "run"))), scope)
    run, best, images, hu = scope["run"], scope["best"], scope["images"], scope["hu"]
    assert best["generator"] == "gan" and best["trial"] in capsys.readouterr().out
    assert images.dtype == np.uint8 and images.shape[:2] == (4, 3) and hu.dtype == np.float32
    # a direction moves the image (on the phantom generator: a 30-step GAN may barely respond)
    moved = run.render(run.best("phantom"), 0, shifts=[-6, 0, 6], window=None)
    assert np.abs(moved[:, 0] - moved[:, 2]).max() > 50  # HU
    # the shift-0 column is G(z) for the documented latents, in the lung window
    G = run.generator("gan")
    z = torch.randn(4, G.latent_dim, generator=torch.Generator().manual_seed(0))
    from raylatent.report.figures import window

    with torch.no_grad():  # (a batch of 12 vs 4 through the convolutions: equal up to rounding)
        diff = np.abs(images[:, 1].astype(int) - window(G(z)[:, 0].numpy(), -600.0, 1500.0).astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01
    assert hu.shape == (4, 1, *images.shape[2:]) and -1100 < hu.min() and hu.max() < 2100
    assert raylatent.__version__ and raylatent.__version__ != "0+unknown"
    with pytest.raises(ConfigError, match="not in"):
        run.record("no-such-trial")
    with pytest.raises(ConfigError, match="latest.json"):
        raylatent.load_run(root)


def test_the_console_script_dispatches_to_each_command(capsys):
    from raylatent.cli import COMMANDS, main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"raylatent {c} " in out for c in COMMANDS)
    assert main(["nope"]) == 2 and "unknown command" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # argparse of the command itself answers --help
        main(["report", "--help"])
    assert e.value.code == 0 and "run_dir" in capsys.readouterr().out


def test_a_real_slice_is_edited_along_a_vae_direction_and_saved_as_derived_dicom(smoke_run, tmp_path):
    import numpy as np
    import pydicom

    import raylatent
    from raylatent.config import ConfigError

    root, _, _ = smoke_run
    run = raylatent.load_run(root / "run")
    dcm = sorted((root / "run" / "phantom").rglob("*.dcm"))[0]  # a real file of the run's own source
    trial = run.best("vae")
    same = run.edit(dcm, trial, 0, 0.0)
    moved = run.edit(dcm, trial, 0, 6.0, out=tmp_path / "edited.dcm")
    size = run.render(trial, 0, shifts=[0], n_latents=1, window=None).shape[-1]
    assert same.shape == moved.shape == (size, size) and np.abs(moved - same).max() > 10
    ds = pydicom.dcmread(tmp_path / "edited.dcm")
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"] and ds.PatientID == "raylatent"
    assert trial["trial"] in ds.DerivationDescription and ds.SOPInstanceUID != pydicom.dcmread(dcm).SOPInstanceUID
    assert np.abs(ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) - moved).max() <= 0.5
    with pytest.raises(ConfigError, match="no encoder"):
        run.edit(dcm, run.best("gan"), 0, 1.0)
    (tmp_path / "bad.dcm").write_bytes(b"not a dicom")
    with pytest.raises(ConfigError, match="not a readable CT slice"):
        run.edit(tmp_path / "bad.dcm", trial, 0, 1.0)
