"""Driver killed midway then --resume, and a two-node cluster: separate processes with their own
Ray, on a copy of a finished reduced run (only the directions stage runs again)."""
import json
import pickle
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ablate_helpers import REDUCED, Evil, _sets, driver_env, kill_when
from raylatent.gridfile import load_grid

pytestmark = pytest.mark.ray


def _copy_run(smoke_run, dest: Path) -> Path:
    root, _, _ = smoke_run
    shutil.copytree(root / "run", dest, ignore=shutil.ignore_patterns("directions"))
    return dest


def test_killed_driver_resumes_without_rerunning_finished_trials(smoke_run, tmp_path):
    run = _copy_run(smoke_run, tmp_path / "run")
    # lenet trials long enough to kill the driver while some are still running
    overrides = REDUCED + ["directions.iterations=[{reconstructor: lenet, steps: 250}, {reconstructor: resnet, steps: 6}]",
                           "directions.eval_every=20", "directions.generators=[gan, vae]",
                           "directions.baselines=false"]  # resume is the point: no closed-form sets, twice
    n_trials = len(load_grid("smoke", overrides).directions.trials())
    cmd = [sys.executable, "-m", "raylatent.ablate", "--grid", "smoke", "--out", str(run),
           "--report-dir", str(tmp_path / "rep"), "--no-dashboard", *_sets(overrides)]
    finished_before = kill_when(cmd, lambda: (run / "directions").glob("*/trials/*/record.json"), n_trials,
                                env=dict(driver_env(), TUNE_GLOBAL_CHECKPOINT_S="1"))
    assert finished_before, "no trial finished within the time limit"
    # a run directory handed over by someone else: Tune's pickled state is planted with code that
    # would leave a marker when unpickled; resuming must never unpickle it
    marker = tmp_path / "pwned"
    exp = next((run / "directions").glob("*/tune"))
    evil = pickle.dumps(Evil(str(marker)))
    for name in ("tuner.pkl", "trainable.pkl"):
        (exp / name).write_bytes(evil)
    for d in exp.iterdir():
        if d.is_dir():
            (d / "params.pkl").write_bytes(evil)
    time.sleep(3)
    r = subprocess.run(cmd + ["--resume"], env=driver_env(), capture_output=True, text=True, timeout=600,
                       start_new_session=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "restoring the interrupted experiment" in r.stdout
    assert not marker.exists()
    results = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert len([r for r in results if r["reconstructor"] != "none"]) == n_trials
    for name, mtime in finished_before.items():
        record = next((run / "directions").glob(f"*/trials/{name}/record.json"))
        assert record.stat().st_mtime_ns == mtime, f"{name} was rerun"
        assert (exp / name / "progress.csv").exists()  # its Tune log from the first attempt is kept


def test_two_node_cluster_runs_trials_on_both_nodes(smoke_run, tmp_path):
    run = _copy_run(smoke_run, tmp_path / "run")
    overrides = REDUCED + ["directions.reconstructors=[lenet]", "directions.cpus_per_trial=1",
                           "directions.generators=[gan, phantom]", "directions.baselines=false"]
    script = textwrap.dedent(f"""
        import sys
        from ray.cluster_utils import Cluster
        from raylatent.ablate import main
        c = Cluster(initialize_head=True, head_node_args={{"num_cpus": 1, "include_dashboard": False}})
        c.add_node(num_cpus=1, resources={{"node_b": 1}})
        c.wait_for_nodes()
        try:
            rc = main(["--grid", "smoke", "--out", {str(run)!r}, "--report-dir", {str(tmp_path / 'rep')!r},
                       "--address", c.address, *{_sets(overrides)!r}])
        finally:
            import ray
            ray.shutdown()
            c.shutdown()
        sys.exit(rc)
    """)
    r = subprocess.run([sys.executable, "-c", script], env=driver_env(), capture_output=True, text=True,
                       timeout=600, start_new_session=True)
    assert r.returncode == 0, (r.stdout[-1500:], r.stderr[-1500:])
    results = [r for r in json.loads((tmp_path / "rep" / "results.json").read_text())
               if r["reconstructor"] != "none"]
    assert len(results) == len(load_grid("smoke", overrides).directions.trials())
    assert len({x["node_id"] for x in results}) == 2  # trials landed on both nodes
