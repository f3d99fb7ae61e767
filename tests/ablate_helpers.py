"""Shared settings of the end-to-end ablation tests."""
import os
import signal
import subprocess
import time
from pathlib import Path

from raylatent.ablate import main as ablate_main

REDUCED = [
    "data.patients=6", "data.slices=10", "data.matrix=64", "data.size=32", "data.test_frac=0.2",
    "generators.epochs=2", "generators.keep_last=1", "generators.gan_width=8", "generators.vae_width=4",
    "generators.batch_size=8", "generators.fid_samples=32", "generators.fid_network=fallback",
    "directions.iterations=[{reconstructor: lenet, steps: 30}, {reconstructor: resnet, steps: 6}]",
    "directions.batch=8", "directions.eval_every=10", "directions.eval_n=32", "directions.cpus_per_trial=0.5",
    "directions.recon_width=0.5", "directions.chance_pool=24",
    # the smoke grid's columns with the last one at K=16, not 100: the same cells and code paths,
    # a sixth of the directions to label (labelling dominates these tests' time)
    "directions.deformators=[{deformator: ortho, K: 32}, {deformator: proj, K: 32}, {deformator: proj, K: 16}]",
]


def _sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


def run_reduced_smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablate")
    args = ["--grid", "smoke", "--out", str(root / "run"), "--report-dir", str(root / "report"), *_sets(REDUCED)]
    t = time.time()
    assert ablate_main(args) == 0
    return root, args, time.time() - t


def driver_env() -> dict:
    """The environment of an ablate driver started as a subprocess: token auth as CI has it, no
    inherited cluster address, the checkout importable."""
    env = dict(os.environ, RAY_AUTH_MODE=os.environ.get("RAY_AUTH_MODE", "token"), PYTHONUNBUFFERED="1",
               PYTHONPATH=str(Path(__file__).parents[1]))
    env.pop("RAY_ADDRESS", None)
    return env


def kill_when(cmd: list[str], records, total: int, env: dict | None = None, timeout: float = 300) -> dict:
    """Start the driver `cmd`, and SIGKILL it with every Ray process it started once at least two
    but not all `total` records exist (`records()` lists their paths). Returns {name: mtime_ns}
    of the records seen then (empty if it finished or timed out first)."""
    proc = subprocess.Popen(cmd, env=env or driver_env(), start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    seen = {}
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            done = list(records())
            if 2 <= len(done) < total:
                seen = {p.parent.name: p.stat().st_mtime_ns for p in done}
                break
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return seen


class Evil:
    """A pickle that leaves a marker file when loaded: planted where Tune keeps its experiment
    state, it shows whether a resume ever unpickles what it finds in a run directory."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))
