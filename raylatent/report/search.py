"""SEARCH.md for a search run: the best configuration beside the grid's default, every trial
sorted by the metric, and the metric against each searched value (one panel per parameter,
stopped-early trials drawn hollow). Reads the search folder's files only (no Ray)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from raylatent.errors import ConfigError
from raylatent.report.records import esc, read_json_in

FIGURE = "search-params.png"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def params_figure(rows: list[dict], searched: list[str], metric: str, path: Path) -> int:
    """One panel per searched parameter: the metric of each trial against its value; returns
    the number of panels (log axis for positive values spanning more than a decade)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    n = len(searched)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.0), squeeze=False)
    for ax, p in zip(axes[0], searched):
        for stopped, marker, label in ((False, "o", "ran to the end"), (True, "x", "stopped early (ASHA)")):
            pts = [(r["params"][p], r[metric]) for r in rows if bool(r.get("stopped_early")) == stopped
                   and not r.get("default")]
            if pts:
                ax.scatter(*zip(*pts), marker=marker, label=label, color="C1" if stopped else "C0")
        d = [(r["params"][p], r[metric]) for r in rows if r.get("default")]
        if d:
            ax.scatter(*zip(*d), marker="*", s=120, color="C2", label="grid default")
        vals = [r["params"][p] for r in rows if isinstance(r["params"][p], (int, float))]
        if vals and min(vals) > 0 and max(vals) / min(vals) > 10:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels overlap
        ax.set_xlabel(p)
        ax.set_ylabel(metric)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return n


def build_search_report(search_dir: str | os.PathLike, out: str | os.PathLike, grid_name: str = "") -> Path:
    """The search's report from its results.json and best.json (read inside the search folder,
    bounded; a damaged file is one line naming the folder, never a traceback)."""
    search_dir, out = Path(search_dir), Path(out)
    rows = read_json_in(search_dir / "results.json", search_dir)
    best = read_json_in(search_dir / "best.json", search_dir)
    if not (isinstance(rows, list) and all(isinstance(r, dict) for r in rows) and isinstance(best, dict)):
        raise ConfigError(f"{search_dir}: results.json or best.json missing or damaged (rerun python -m "
                          f"raylatent.ablate --resume)")
    try:
        return _search_report(search_dir, out, grid_name, rows, best)
    except (KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"{search_dir}: results.json or best.json damaged ({type(e).__name__}: "
                          f"{esc(str(e))[:60]}); rerun python -m raylatent.ablate --resume") from None


def _search_report(search_dir: Path, out: Path, grid_name: str, rows: list, best: dict) -> Path:
    metric, mode, searched = best["metric"], best["mode"], best["searched"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "assets").mkdir(exist_ok=True)
    for name in ("results.json", "best.json"):
        shutil.copy(search_dir / name, out / name)
    b, d = best["best"], best["default"]
    trained = int(any(r.get("generators") for r in rows))  # a search of generator fields: each trial trained its own
    md = [f"# raylatent search: {esc(grid_name)}", "",
          f"{len(rows)} trials (the grid's default included), metric `{metric}` ({mode}imised; the mean over "
          f"each trial's replicates: {esc(', '.join(b.get('replicates', [])) or 'the grid cells x seeds')}); "
          f"{sum(bool(r.get('stopped_early')) for r in rows)} stopped early by the scheduler."
          + (" Every trial trained its own generators in one process (the default too; train/local.py), so they "
             "differ from the grid's generators stage, which trains with DDP." if trained else ""), "",
          "## Best configuration", "",
          "| | " + " | ".join(searched) + f" | {metric} | step |", "|---" * (len(searched) + 3) + "|"]
    for label, r in (("best", b), ("grid default", d)):
        if r:
            md.append(f"| {label} ({esc(r['trial'])}) | " + " | ".join(_fmt(r["params"][p]) for p in searched)
                      + f" | {r[metric]:.4f} | {r['step']} |")
    if d:
        diff = b[metric] - d[metric]
        md += ["", f"Best minus default: {diff:+.4f} {metric} (one run per replicate; the seed-to-seed spread "
                   f"at smoke scale: benchmarks/seed-spread-smoke.json)."]
    sections: dict[str, list[str]] = {}
    for p in searched:  # generators fields are keyed `generators.<field>` (search/space.py: Spec.key)
        section, _, name = p.rpartition(".")
        sections.setdefault(section or "directions", []).append(f"  {name}: {_fmt(b['params'][p])}")
    md += ["", "The best values, to paste into a grid:", "", "```yaml",
           *[x for sec, lines in sections.items() for x in (f"{sec}:", *lines)], "```", "",
           "## Trials, best first", "",
           "| trial | " + " | ".join(searched) + f" | {metric} | step | stopped early |"
           + (" its generators (FID, chosen epoch) |" if trained else ""),
           "|---" * (len(searched) + 4 + trained) + "|"]
    for r in rows:
        gens = ", ".join(f"{k} {v['fid']:.2f} (epoch {v['chosen_epoch'] + 1})" for k, v in sorted(r.get("generators", {}).items()))
        md.append(f"| {esc(r['trial'])}{' (default)' if r.get('default') else ''} | "
                  + " | ".join(_fmt(r["params"][p]) for p in searched)
                  + f" | {r[metric]:.4f} | {r['step']} | {'yes' if r.get('stopped_early') else ''} |"
                  + (f" {gens or 'stopped before training finished'} |" if trained else ""))
    params_figure(rows, searched, metric, out / "assets" / FIGURE)
    md += ["", f"## {metric} against each searched parameter", "",
           "Circles ran every step, crosses were stopped early (their metric is from the evaluation where they "
           "stopped), the star is the grid's default.", "", f"![{metric} vs parameters](assets/{FIGURE})", ""]
    path = out / "SEARCH.md"
    path.write_text("\n".join(md) + "\n")
    return path
