"""What a run prints: one line per stage, epoch and trial, an ETA, and the same console saved with
timestamps in RUN_DIR/console.log.

Tune's boxed status table (reprinted every 30 s, its trial column cut to `...0, 'steps': 1000}`)
was three quarters of a smoke run's console; it is off unless `-v`. In its place `TrialLines`
prints one line as each trial ends:

    [5/16] gan-lenet-proj-K32-s0 done: RCA 0.885 (28x chance), Ls 0.197, 41 s; ETA 3 min
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from pathlib import Path

from ray.tune import Callback


class TeeLog(io.TextIOBase):
    """A stream that writes through to `stream` and appends each complete line, timestamped, to
    `path` (the console of a run, kept with the run). Carriage-return redraws (progress bars)
    keep only their last state in the file."""

    def __init__(self, stream, log_file):
        """`log_file`: an open text file, shared by the stdout and stderr tees (one handle, so
        their lines land in the order they were written)."""
        super().__init__()
        self.stream, self._file, self._buf = stream, log_file, ""

    def write(self, s: str) -> int:
        self.stream.write(s)
        self._buf += s
        *lines, self._buf = self._buf.split("\n")
        stamp = time.strftime("%H:%M:%S")
        for line in lines:
            self._file.write(f"{stamp} {line.rsplit(chr(13), 1)[-1]}\n")
        if lines:
            self._file.flush()
        return len(s)

    def flush(self) -> None:
        self.stream.flush()
        self._file.flush()

    def fileno(self) -> int:  # faulthandler and subprocesses want the real descriptor
        return self.stream.fileno()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def close_log(self) -> None:
        """The unfinished last line, if any (the shared file is closed by tee_console)."""
        if self._buf:
            self._file.write(f"{time.strftime('%H:%M:%S')} {self._buf}\n")
            self._buf = ""
        self._file.flush()


def tee_console(path: Path):
    """Send stdout and stderr through TeeLog into `path`; returns a function that undoes it."""
    old = sys.stdout, sys.stderr
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    log_file = open(path, "a", encoding="utf-8")
    out, err = TeeLog(sys.stdout, log_file), TeeLog(sys.stderr, log_file)
    sys.stdout, sys.stderr = out, err

    def restore() -> None:
        sys.stdout, sys.stderr = old
        out.close_log()
        err.close_log()
        log_file.close()

    return restore


@contextlib.contextmanager
def tune_output(verbose: int):
    """Tune's own console output for one `fit()`: at verbose 0 none at all. Tune's default
    reporter prints "View detailed results here" and a `tensorboard --logdir /tmp/ray/...` line
    at every verbosity, 0 included (ray/tune/experimental/output.py: experiment_started), and
    that path is not where raylatent's event files are (the banner prints the right command);
    Tune's older reporter, chosen by RAY_AIR_NEW_OUTPUT=0, honours verbose 0."""
    if verbose:
        yield
        return
    old = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = old


def duration(seconds: float) -> str:
    """A human duration: 41 s, 3 min, 1 h 05 min."""
    s = max(0, int(round(seconds)))
    if s < 90:
        return f"{s} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def trial_line(i: int, total: int, name: str, result: dict, K: int | None, elapsed: float,
               eta: float | None) -> str:
    """`[i/N] name done: RCA r (x chance), Ls l, t s; ETA ...` (what a finished trial says)."""
    parts = []
    if result.get("rca") is not None:
        rca = float(result["rca"])
        parts.append(f"RCA {rca:.3f}" + (f" ({rca * K:.0f}x chance)" if K else ""))
    if result.get("ls") is not None:
        parts.append(f"Ls {float(result['ls']):.3f}")
    wall = result.get("trial_wall_s", result.get("time_total_s"))
    if wall is not None:
        parts.append(duration(float(wall)))
    line = f"[{i}/{total}] {name} done: " + ", ".join(parts)
    return line + (f"; ETA {duration(eta)}" if eta is not None and i < total else "")


class TrialLines(Callback):
    """One console line per Tune trial's start and per finish (or failure), counted against the stage's total,
    with an ETA from the mean pace so far (trials finish in parallel, so pace = elapsed / done),
    timed from the first trial's start: before it, the chance pools hold the CPUs, and counting
    that wait made the first ETAs several times too long (25 min said, 5 min taken, smoke10)."""

    def __init__(self, total: int, name_of, K_of=None, log=None):
        # Tune pickles its callbacks with the experiment state, and the builtin print pickles by
        # reference: where Ray has replaced builtins.print (a driver attached to a cluster), the
        # original no longer pickles. So print is looked up when a line is said, never stored.
        is_print = getattr(log, "__name__", "") == "print" and getattr(log, "__module__", "") == "builtins"
        self.total, self.name_of, self.K_of = total, name_of, K_of
        self.log = None if is_print else log
        self.done, self.started, self.t0, self.first_start = 0, 0, time.time(), None

    def _say(self, line: str) -> None:
        (self.log or print)(line)

    def _eta(self) -> float | None:
        if not self.done:
            return None
        return (time.time() - (self.first_start or self.t0)) / self.done * (self.total - self.done)

    def on_trial_start(self, iteration, trials, trial, **info):
        """`[start i/N] name`: which trials hold the CPUs now (a long one is visible before it ends)."""
        if self.first_start is None:
            self.first_start = time.time()
        self.started += 1
        self._say(f"[start {min(self.started, self.total)}/{self.total}] {self.name_of(trial)}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        self._say(trial_line(self.done, self.total, self.name_of(trial), trial.last_result or {},
                             self.K_of(trial) if self.K_of else None, time.time() - self.t0, self._eta()))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.done += 1
        self._say(f"[{self.done}/{self.total}] {self.name_of(trial)} failed (see its error.txt); ETA "
                  f"{duration(self._eta() or 0)}")
