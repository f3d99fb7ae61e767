"""The run's console: one line per finished trial with an ETA, and the whole console kept with
timestamps in RUN_DIR/console.log."""
import re
import sys

from raylatent.console import TeeLog, TrialLines, duration, tee_console, trial_line

LINE = re.compile(r"^\[(\d+)/(\d+)\] (\S+) done: RCA (\d\.\d{3}) \((\d+)x chance\), Ls (\d\.\d{3}), (\d+ s|\d+ min)"
                  r"(; ETA (\d+ s|\d+ min|\d+ h \d\d min))?$")


def test_a_finished_trial_is_one_line_with_its_scores_and_an_eta():
    line = trial_line(5, 16, "gan-lenet-proj-K32-s0", {"rca": 0.8848, "ls": 0.1971, "trial_wall_s": 41.2}, 32,
                      elapsed=120.0, eta=190.0)
    assert line == "[5/16] gan-lenet-proj-K32-s0 done: RCA 0.885 (28x chance), Ls 0.197, 41 s; ETA 3 min"
    assert LINE.match(line)
    last = trial_line(16, 16, "vae-lenet-random-K100-s0", {"rca": 0.0957, "ls": 0.676, "trial_wall_s": 30}, 100,
                      elapsed=400.0, eta=0.0)
    assert last.endswith("30 s") and "ETA" not in last  # nothing left to wait for
    assert [duration(s) for s in (41, 89, 90, 3599, 3700)] == ["41 s", "89 s", "2 min", "60 min", "1 h 01 min"]


class _Trial:
    def __init__(self, name, rca):
        self.name, self.last_result = name, {"rca": rca, "ls": 0.2, "trial_wall_s": 10.0}


def test_trial_lines_count_against_the_total_and_estimate_the_rest():
    out = []
    cb = TrialLines(3, lambda t: t.name, lambda t: 32, out.append)
    for i, t in enumerate([_Trial("a", 0.5), _Trial("b", 0.6)]):
        cb.on_trial_complete(i, [], t)
    cb.on_trial_error(2, [], _Trial("c", None))
    assert [line.split(" ")[0] for line in out] == ["[1/3]", "[2/3]", "[3/3]"]
    assert LINE.match(out[0]) and "ETA" in out[0] and "(16x chance)" in out[0]
    assert out[2].startswith("[3/3] c failed")
    out.clear()
    cb.on_trial_start(3, [], _Trial("d", None))
    assert out == ["[start 1/3] d"]


def test_the_console_log_keeps_every_line_with_a_timestamp(tmp_path, capsys):
    log = tmp_path / "run" / "console.log"
    restore = tee_console(log)
    try:
        print("== ingest ==")
        print("progress 10%\rprogress 100%")  # a redrawn bar keeps its last state
        sys.stderr.write("a warning without a newline")
    finally:
        restore()
    lines = log.read_text().splitlines()
    assert [re.sub(r"^\d\d:\d\d:\d\d ", "", x) for x in lines] == \
        ["== ingest ==", "progress 100%", "a warning without a newline"]
    assert all(re.match(r"^\d\d:\d\d:\d\d ", x) for x in lines)
    assert "== ingest ==" in capsys.readouterr().out  # still on the console too
    assert isinstance(sys.stdout, TeeLog) is False  # restored


def test_trial_lines_pickle_even_where_print_was_replaced(monkeypatch, capsys):
    """Tune pickles its callbacks; a driver attached to a cluster had builtins.print replaced,
    and a callback holding the original print failed to pickle (the two-node run)."""
    import builtins
    import operator
    import pickle

    original = builtins.print
    cb = TrialLines(2, operator.attrgetter("name"), None, original)
    monkeypatch.setattr(builtins, "print", lambda *a, **k: original(*a, **k))
    again = pickle.loads(pickle.dumps(cb))
    again.on_trial_complete(0, [], _Trial("a", 0.5))
    assert capsys.readouterr().out.startswith("[1/2] a done: RCA 0.500")


def test_eta_is_timed_from_the_first_trial_start_not_the_wait_before_it(monkeypatch):
    """The chance pools hold the CPUs before any trial starts: that wait is not the trials' pace."""
    import raylatent.console as console

    now = [1000.0]
    monkeypatch.setattr(console.time, "time", lambda: now[0])
    cb = TrialLines(5, lambda t: t.name, None, lambda *_: None)
    now[0] += 80.0                        # the pools
    cb.on_trial_start(0, [], _Trial("a", 0.5))
    now[0] += 5.0
    cb.on_trial_start(0, [], _Trial("b", 0.5))  # later starts do not move the origin
    now[0] += 15.0                        # a trial finishes 20 s after the first start
    cb.on_trial_complete(0, [], _Trial("a", 0.5))
    assert cb._eta() == 20.0 / 1 * 4      # not (80 + 20) / 1 * 4


def test_generator_epoch_lines_count_from_one_with_an_eta_until_the_last(monkeypatch, capsys):
    """The Train controller's line per epoch (the test session's Ray forwards no worker output, so
    the callback is driven here): the ETA is the pace since the first report (which carries the
    run's start-up) times the epochs left, and the last epoch has none."""
    import raylatent.train.stage as stage

    now = [100.0]
    monkeypatch.setattr("time.time", lambda: now[0])
    cb = stage._progress_callback("gan", 4)
    for epoch, wall in ((0, 0.0), (1, 2.0), (2, 2.0), (3, 2.0)):
        now[0] += wall
        cb.after_report(None, [{"epoch": epoch, "fid": 9.0, "loss_D": 0.5, "loss_G": 1.0, "epoch_s": 1.5}], None)
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(":")[0].strip() for ln in lines] == [f"gan epoch {e}/4" for e in (1, 2, 3, 4)]
    assert lines[0].endswith("1.5 s; ETA 4 s")   # before a pace exists: the epoch's own time x 3 left
    assert lines[1].endswith("; ETA 4 s")        # 2 s an epoch since the first, 2 left
    assert lines[2].endswith("; ETA 2 s") and "ETA" not in lines[3]
