"""`python -m raylatent.report RUN_DIR --out REPORT_DIR`: REPORT.md with Table 1, the paper's
figures, animations and curves. Reads files only (no Ray, no training code), so a copied run
directory rebuilds its report on a laptop."""
from __future__ import annotations

import json
import math
import os
import platform
import shutil
import uuid
from pathlib import Path

import numpy as np
import torch

from raylatent.errors import ConfigError
from raylatent.report.config import ReportConfig
from raylatent.discovery.records import best_learned
from raylatent.discovery.renders import MANIFEST
from raylatent.discovery.renders import load as load_rendered
from raylatent.models.registry import kind_names, kind_of
from raylatent.report import figures as F
from raylatent.report.controls import control_found, controls_section, coverage_section
from raylatent.report.explorer import PAGE as EXPLORER_PAGE
from raylatent.report.explorer import write_explorer
from raylatent.report.front import next_steps, what_we_found, write_html
from raylatent.report.records import esc, inside, load_labels, load_records, read_json_in
from raylatent.report.replicates import replicate_root, replicates_section
from raylatent.report.tables import claims, table1
from raylatent.report.truth import ground_truth_section

LATEST = "latest.json"


MARKER = ".raylatent-report"
BUILT = {"REPORT.md", "REPORT.html", "results.json", "assets", EXPLORER_PAGE, MARKER}  # what a build writes


def build_report(run_dir: str | os.PathLike, out: str | os.PathLike, grid_name: str = "",
                 cfg: ReportConfig | None = None) -> Path:
    """Build the report in a staging folder inside `out`, then move each file in over its old
    version (REPORT.md last): a build killed midway leaves the previous report with every page it
    links, and nothing in `out` that a build does not write (a replicate's report, a user's notes)
    is ever moved or deleted. `out` itself is never renamed (it may be a mount point or a link)."""
    out = Path(os.path.abspath(out))
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; give a folder for the report")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".building-*"):  # a killed build's staging: only a build's own files
        shutil.rmtree(stale, ignore_errors=True)
    stage = out / f".building-{uuid.uuid4().hex[:8]}"
    try:
        _build(Path(run_dir), stage, grid_name, cfg)
        (stage / MARKER).touch()
        made = sorted((p.name for p in stage.iterdir()), key=lambda n: (n == "REPORT.md", n))
        for name in made:
            src, dst = stage / name, out / name
            if src.is_dir() and (dst.exists() or dst.is_symlink()):
                os.replace(dst, stage / f".old-{name}")  # a folder cannot replace a folder in one step
            os.replace(src, dst)  # a file replaces its old version atomically
        for name in BUILT - set(made):  # an earlier build's page this build does not make (ours by name)
            old = out / name
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            elif old.exists() or old.is_symlink():
                old.unlink()
    except OSError as e:
        raise ConfigError(f"{out}: the report could not be written ({type(e).__name__}: {e.strerror or e}); the "
                          f"previous report, if any, is kept") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out / "REPORT.md"


def _build(run_dir: Path, out: Path, grid_name: str, cfg: ReportConfig | None) -> None:
    latest = run_dir / LATEST
    if not latest.exists():
        raise ConfigError(f"{run_dir}: no {LATEST} (not a raylatent run directory; run python -m raylatent.ablate)")
    info = read_json_in(latest, run_dir)
    try:
        stages = {k: info["stages"][k] for k in ("data", "generators", "directions", "renders")}
    except (KeyError, TypeError):
        raise ConfigError(f"{latest}: not a raylatent run record (rerun python -m raylatent.ablate)") from None
    if cfg is None:
        try:
            report = info.get("report", {})
            cfg = ReportConfig(**(report if isinstance(report, dict) else {"": None}))
        except TypeError as e:  # an unknown or missing key; a bad value is a ConfigError already
            raise ConfigError(f"{latest}: report settings {str(e).split('() ')[-1]} (rerun python -m "
                              f"raylatent.ablate)") from None
    base = replicate_root(run_dir, info.get("root"), latest)  # a replicate reads the main run's data
    dirs = {k: inside(base, str(Path(os.path.relpath(run_dir.resolve(), base)) / v), f"stages.{k}", latest)
            for k, v in stages.items()}
    records = load_records(dirs["directions"] / "results.json", dirs["directions"])
    out.mkdir(parents=True, exist_ok=True)
    assets = out / "assets"
    assets.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(records, indent=1))
    md: list[str] = [f"# raylatent report: {esc(grid_name or info.get('grid', ''))}", ""]
    rendered = dirs["renders"]
    man = _manifest(rendered)
    title = f"raylatent report: {grid_name or info.get('grid', '')}"
    explorer = write_explorer(records, dirs["directions"], rendered, man, cfg, out,
                              title=title.replace("report", "explorer", 1))
    md += ([f"Explore the directions interactively: [{EXPLORER_PAGE}]({EXPLORER_PAGE}) (pick a configuration and "
            "a direction, drag the shift; several latents at once; opens from disk, no server).", ""] if explorer
           else ["(No interactive explorer: this run's renders predate it; rerun python -m raylatent.ablate.)", ""])
    md += what_we_found(records, rendered, man, cfg, assets)
    md += _summary(run_dir, dirs, info)
    md += coverage_section(inside(dirs["directions"], "coverage.json", "coverage", latest))
    table, cells = table1(records)
    gamma = next((r["gamma"] for r in records if r.get("gamma") is not None), 0.25)
    md += ["## Table 1: RCA and shift loss Ls", "",
           "Held-out RCA and Ls (fresh latents, fixed seed) after the configured iterations; mean ± std "
           "[95% t interval of the mean] (n seeds) where a cell has several seeds (`directions.seeds`), else "
           "the single run; in brackets the difference to the paper. "
           f"Ls is the paper's: γ · mean |ε − ε̂| with γ = {gamma} (the shift term as the authors' trainer "
           "logged it); `results.json` keeps the plain mean absolute error as `shift_mae`. \"Unit Length\" "
           "and \"100 Directions\" are the authors' projective deformator (`proj`: a linear map with a bias, "
           "|shift| = |ε|); our plain normalised columns (`unit`), where run, are a separate column. "
           "Reference rows: chance (1/K) and random directions (A fixed, only R learns).", "", table, ""]
    md += _steps_line(records)
    md += controls_section(records)
    md += replicates_section(run_dir)
    md += ["### The paper's claims on these numbers", "",
           "Each claim checked on every pair of cells it compares, as worded (\"always\" = every pair, "
           "\"all but one\" = at most one exception). A difference smaller than its resolution is not "
           f"resolved: with one seed, the seed-to-seed spread measured at smoke scale (RCA {cfg.seed_spread['rca']}, "
           f"Ls {cfg.seed_spread['ls']}; `report.seed_spread`), with several seeds the 95% interval of the "
           "difference. Cells trained for different step counts are confounded, not compared.", ""]
    for text, verdict, ev in claims(cells, cfg.seed_spread):
        md.append(f"- {verdict} {text}: {ev}")
    md.append("")
    md += _directions_found(records)
    md += ground_truth_section(records)
    md += _random_vs_discovered(rendered, man, cfg, assets)
    md += _z_figure(rendered, man, cfg, assets)
    md += _interpolation(rendered, man, cfg, assets)
    md += _curves(records, dirs, assets)
    md += next_steps()
    # every direction of every configuration: an appendix, folded (hundreds of rows at K = 100)
    md += ["## Appendix: every discovered direction", "", "<details markdown=\"1\">",
           "<summary>Charts and animations of every direction of every configuration</summary>", ""]
    md += [line.replace("## ", "### ", 1) if line.startswith("## ") else line
           for line in _direction_charts(records, dirs["directions"], rendered, man, cfg, assets)]
    md += ["</details>", ""]
    text = "\n".join(md) + "\n"
    (out / "REPORT.md").write_text(text)
    write_html(text, out / "REPORT.html", title=title)


def _manifest(rendered: Path) -> dict:
    """What the directions stage rendered for this report (see discovery/renders.py)."""
    man = read_json_in(rendered / MANIFEST, rendered)
    if not (isinstance(man, dict) and all(key in man for key in ("shifts", "charts", "random_vs_discovered",
                                                                  "interpolation"))):
        raise ConfigError(f"{rendered / MANIFEST}: missing or damaged (rerun python -m raylatent.ablate: "
                          f"the directions stage renders the report's images again)") from None
    _check_manifest(man, rendered / MANIFEST)
    for entry in [*man["charts"].values(), *(e["file"] for e in man["random_vs_discovered"].values()),
                  *(e["file"] for e in man["interpolation"].values()),
                  *(e["file"] for e in man.get("explorer", {}).values())] + ([man["z_position"]["file"]] if man.get("z_position") else []):
        inside(rendered, entry, "a rendered file", rendered / MANIFEST)
    return man


def _check_manifest(man: dict, path: Path) -> None:
    """The fields of renders.json the report draws or prints, by type (names of generators only
    from the registry, shifts only numbers): a tampered file is one line naming the field."""
    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    kinds = set(kind_names())
    checks = {
        "shifts": isinstance(man.get("shifts"), list) and man["shifts"] and all(number(v) for v in man["shifts"]),
        "sweep": "sweep" not in man or (isinstance(man["sweep"], list) and all(number(v) for v in man["sweep"])),
        "charts": isinstance(man.get("charts"), dict),
        "random_vs_discovered": isinstance(man.get("random_vs_discovered"), dict) and all(
            k in kinds and isinstance(e, dict) and isinstance(e.get("discovered"), str) and "file" in e
            for k, e in man["random_vs_discovered"].items()),
        "interpolation": isinstance(man.get("interpolation"), dict) and all(
            k in kinds and isinstance(e, dict) and "file" in e for k, e in man["interpolation"].items()),
        "z_position": not man.get("z_position") or (
            isinstance(man["z_position"], dict) and isinstance(man["z_position"].get("trial"), str)
            and isinstance(man["z_position"].get("direction"), int) and "file" in man["z_position"]),
        "explorer": isinstance(man.get("explorer", {}), dict) and all(
            isinstance(e, dict) and "file" in e for e in man.get("explorer", {}).values()),
    }
    for field, ok in checks.items():
        if not ok:
            raise ConfigError(f"{path}: damaged field {field} (rerun python -m raylatent.ablate: the directions "
                              f"stage renders the report's images again)")


def _summary(run_dir: Path, dirs: dict, info: dict) -> list[str]:
    man = read_json_in(dirs["data"] / "manifest.json", dirs["data"], default={})
    gens = {k: read_json_in(dirs["generators"] / k / "metrics.json", dirs["generators"]) for k in kind_names()
            if (dirs["generators"] / k / "metrics.json").exists()}
    times = _stage_times(run_dir / "stage_times.json")
    try:
        return _summary_lines(info, man, gens, times)
    except ConfigError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"{dirs['data'] / 'manifest.json'} or a generator's metrics.json: damaged "
                          f"({type(e).__name__}: {esc(str(e))[:80]}); rerun python -m raylatent.ablate") from None


def _summary_lines(info: dict, man: dict, gens: dict, times: dict) -> list[str]:
    from importlib.metadata import version  # the report never imports ray itself

    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "ray": version("ray"), "numpy": np.__version__}
    lines = ["## Run summary", "",
             f"- Data: {esc(info.get('data_source', '?'))}; {esc(man['counts']['train'])} train / "
             f"{esc(man['counts']['test'])} test slices from {len(man['patients'])} patients "
             f"({len(man['skipped'])} files skipped), {esc(man['settings']['size'])}² pixels.",
             ]
    for k, g in gens.items():
        if g.get("trained") is False:
            lines.append(f"- {esc(kind_of(k).title)}: fixed by construction, not trained (its true directions are "
                         f"known: see Ground truth).")
            continue
        lines.append(f"- {k.upper()}: epoch {g['chosen_epoch'] + 1} of {len(g.get('history') or []) or '?'} kept (epochs "
                     f"counted from 1; best FID of the last "
                     f"{len(g['candidates'])}), FID {_num(g['fid'])} with **{esc(g['fid_network'])}**; "
                     + _fid_reference(k, g['fid_network']))
    lines.append(f"- Hardware: {esc(info.get('hardware', platform.processor() or platform.machine()))}.")
    if times:
        lines.append("- Wall time per stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + ".")
    lines.append("- Software: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    return lines + [""]


STAGES = ("ingest", "generators", "directions", "search", "report")


def _stage_times(path: Path) -> dict[str, float]:
    """stage_times.json: seconds per known stage (a damaged file is one line naming it)."""
    times = read_json_in(path, path.parent, default={})
    try:
        if not (isinstance(times, dict) and set(times) <= set(STAGES) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in times.values())):
            raise ValueError("fields")
    except (OSError, ValueError):
        raise ConfigError(f"{path}: damaged (expected seconds per stage, one of {list(STAGES)}); delete it and "
                          f"rerun python -m raylatent.ablate") from None
    return times


def _num(v, fmt: str = ".2f") -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and not isinstance(v, bool) else esc(v)


def _fid_reference(kind: str, network: str | None) -> str:
    """The paper's FID beside ours only when both come from Inception."""
    from raylatent.report.tables import PAPER_FID

    paper = PAPER_FID.get(kind)
    if paper is None:
        return "no paper value."
    if str(network).startswith("inception"):
        return f"paper: {paper} (Inception, 128² LIDC-IDRI test data)."
    return (f"the paper's {paper} is not comparable: this FID comes from the offline fallback network, not "
            f"Inception (install the `fid` extra and give `generators.fid_weights` for Inception).")


def _steps_line(records: list[dict]) -> list[str]:
    from raylatent.discovery.methods import method_of

    def steps(role: str) -> list:
        return sorted({r.get("iterations") for r in records if method_of(r["deformator"]).role == role}, key=str)

    rnd = steps("reference")
    return [f"Discovery steps per learned cell: {', '.join(map(str, steps('learned')))}"
            + (f"; random baseline: {', '.join(map(str, rnd))}" if rnd else "")
            + " (the paper: 3,000-250,000).", ""]


def _directions_found(records) -> list[str]:
    from tabulate import tabulate

    from raylatent.discovery.methods import method_of

    rows, names = [], []
    for r in records:
        f = r.get("factors")
        if not f:
            continue
        names = names or list(f)
        cells = [f"{f[a]['rho']:.2f} / {f[a]['purity']:.2f}"
                 + (f" · {f[a]['score']:.2f} vs {f[a]['chance']:.2f}" if "chance" in f[a] else "")
                 + (" ✓" if f[a]["found"] else " (not generated)" if f[a].get("generated") is False else "")
                 for a in names]
        rows.append([r["trial"], *cells, r.get("factors_found", 0)])
    if not rows:
        return []
    verdicts = []
    for gen in sorted({r["generator"] for r in records if r.get("factors")}):
        mine = [r for r in records if r["generator"] == gen and r.get("factors")]
        learned = [r for r in mine if method_of(r["deformator"]).role == "learned"]
        ref = [r for r in mine if method_of(r["deformator"]).role == "reference"]
        if not learned:
            continue
        best = best_learned(learned)
        nb, nr = best.get("factors_found", 0), max((r.get("factors_found", 0) for r in ref), default=None)
        sup = control_found(records, gen, "supervised", best["K"])
        absent = [a for a, v in best["factors"].items() if v.get("generated") is False and not v["found"]]
        line = (f"- {gen.upper()}: the best learned configuration ({best['trial']}) finds {nb} of {len(names)} factors"
                + ("" if sup is None else f" (a supervised direction finds {len(sup)} at K = {best['K']})")
                + (f"; not found and not generated by this generator: {', '.join(absent)}" if absent else ""))
        if nr is None:
            verdicts.append(line + " (no random baseline was run to compare with).")
        elif nb > nr:
            verdicts.append(line + f"; random directions find {nr}.")
        else:
            verdicts.append(line + f", no more than random directions ({nr}): **on this generator discovery did "
                            "not beat chance**.")
    return ["## Directions found", "",
            "For each semantic factor, the best-matching direction of each configuration: |Spearman ρ| "
            "between the shift and the measured attribute (within each latent, averaged over the latents "
            "weighted by the attribute's change) / purity (its share of all attribute effects, each "
            "weighted by its |ρ|; width, height and area count once, as the body outline; what the factor "
            "itself moves in other attributes, measured on the phantom's true axes, e.g. breast tissue "
            "moving the outline and y, counts as its own: `couplings.json`) · its score (|ρ| × purity of a direction labelled with the factor) vs **chance**: "
            "the score the best of K random unit directions exceeds only 5% of the time on the same "
            "generator (estimated once per generator and K from a seeded pool of random directions "
            "scored the same way: how often one is labelled with the factor, times a fitted tail of "
            "its scores, bootstrapped; `chance.json`). ✓ = found: a direction is labelled with the factor "
            "(|ρ| ≥ 0.6, purity ≥ 0.4) and its score beats chance. Width, height or size is decided among "
            "the outline attributes that track the shift; `intensity` (the soft-tissue level) counts in "
            "purity and can be a label, so a brightness direction is not read as size or fat, but it is "
            "not one of the factors. `random`, `sefa`, `ganspace` and `hessjd` rows are the baselines; `axes` and "
            "`supervised` rows are the positive controls (a direction per factor; see Positive controls). "
            "Thickness is below the pixel size under 128².", "",
            tabulate(rows, headers=["configuration", *names, "found"], tablefmt="github", disable_numparse=True), "",
            *verdicts, ""]


def _direction_charts(records, ddir: Path, rendered: Path, man: dict, cfg: ReportConfig, assets: Path) -> list[str]:
    w = cfg.windows[0]
    md = ["## Discovered directions (paper Figs 2-7)", "",
          f"One row per direction; the original in the centre, shifts {man['shifts']} left to right; "
          f"{esc(w['name'])} window (C {w['center']}, W {w['width']} HU). "
          f"Animations: {cfg.gif_dirs_per_file} directions per GIF.", ""]
    for r in records:
        if r["trial"] not in man["charts"]:
            continue
        imgs = load_rendered(rendered, man["charts"][r["trial"]])
        charts, sweeps = F.window(imgs["shifts"], w["center"], w["width"]), F.window(imgs["sweep"], w["center"], w["width"])
        scores = "" if r["rca"] is None else f" (RCA {r['rca']:.3f}, Ls {r['ls']:.3f})"
        md.append(f"### {r['trial']}{scores}")
        lab = load_labels(ddir, r)
        names = [x["label"] for x in lab["directions"]] if lab else None
        K = charts.shape[0]
        for page, start in enumerate(range(0, K, cfg.max_chart_rows)):
            ids = list(range(start, min(K, start + cfg.max_chart_rows)))
            name = f"chart-{r['trial']}-p{page + 1}.png"
            F.grid_png(charts[ids], assets / name, [f"{i}: {names[i]}" if names else f"dir {i}" for i in ids],
                       col_labels=F.shift_labels(man["shifts"]))
            md.append(f"![{r['trial']} directions {ids[0]}-{ids[-1]}](assets/{name})")
        links = []
        order = list(range(sweeps.shape[1])) + list(range(sweeps.shape[1] - 2, 0, -1))  # there and back
        for start in range(0, K, cfg.gif_dirs_per_file):
            ids = list(range(start, min(K, start + cfg.gif_dirs_per_file)))
            frames = [np.concatenate([F._tile(sweeps[d, s]) for d in ids], axis=1) for s in order]
            name = f"anim-{r['trial']}-{ids[0]:03d}-{ids[-1]:03d}.gif"
            F.gif(frames, assets / name)
            links.append(f"[{ids[0]}-{ids[-1]}](assets/{name})")
        md += ["", "Animations: " + ", ".join(links), ""]
    return md


def _random_vs_discovered(rendered: Path, man: dict, cfg: ReportConfig, assets: Path) -> list[str]:
    md = ["## Random vs discovered directions (paper Figs 9-10)", ""]
    w = cfg.windows[0]
    for gen, entry in sorted(man["random_vs_discovered"].items()):
        imgs = load_rendered(rendered, entry["file"])
        left, right = F.window(imgs["random"], w["center"], w["width"]), F.window(imgs["discovered"], w["center"], w["width"])
        both = np.concatenate([left, np.zeros_like(left[:, :1]), right], axis=1)
        name = f"random-vs-discovered-{gen}.png"
        F.grid_png(both, assets / name, [f"dir {i}" for i in range(len(left))],
                   col_labels=[*F.shift_labels(man["shifts"]), "", *F.shift_labels(man["shifts"])])
        md += [f"{gen.upper()}: {len(left)} random directions (left) and the first {len(left)} of "
               f"{esc(entry['discovered'])} (right).", "", f"![random vs discovered {gen}](assets/{name})", ""]
    return md


def _z_figure(rendered: Path, man: dict, cfg: ReportConfig, assets: Path) -> list[str]:
    md = ["## z-position over 24 random latents (paper Fig 8)", ""]
    z = man.get("z_position")
    if not z:
        return md + ["(no unit-length trial)", ""]
    w = cfg.windows[0]
    name = "z-position.png"
    imgs = F.window(load_rendered(rendered, z["file"])["images"], w["center"], w["width"])
    F.grid_png(imgs, assets / name, [f"latent {i + 1}" for i in range(len(imgs))],
               col_labels=F.shift_labels(man["shifts"]))
    return md + [f"{esc(z['trial'])}, direction {z['direction']} ({esc(z['how'])}): a row per random latent, a "
                 f"column per shift ε (labelled on top), {esc(w['name'])} window (C {w['center']}, W {w['width']} "
                 "HU).", "", f"![z-position](assets/{name})", ""]


def _interpolation(rendered: Path, man: dict, cfg: ReportConfig, assets: Path) -> list[str]:
    md = ["## Interpolation between held-out slices (paper Fig 11)", ""]
    if not man["interpolation"]:
        return md + ["(fewer than two test slices)", ""]
    w = cfg.windows[0]  # the lung window shows lungs and body alike (the mediastinal one left them black)
    for kind, entry in man["interpolation"].items():
        name = f"interpolation-{kind}.png"
        row = F.window(load_rendered(rendered, entry["file"])["row"], w["center"], w["width"])
        steps = row.shape[1] - 2
        F.grid_png(row, assets / name, col_labels=["slice A", *[f"t={i / (steps - 1):.2f}" for i in range(steps)],
                                                   "slice B"])
        md += [f"{esc(entry['title'])} via {esc(entry['inversion'])}: held-out slices A and B at both ends, the "
               f"decoded path between their latents in {steps} steps (t labelled on top), {esc(w['name'])} "
               f"window (C {w['center']}, W {w['width']} HU).", "", f"![interpolation {kind}](assets/{name})", ""]
    return md


def _curves(records, dirs, assets) -> list[str]:
    md = ["## Curves", ""]
    rca, ls = {}, {}
    for r in records:
        p = dirs["directions"] / "trials" / r["trial"] / "curve.json"
        c = read_json_in(p, dirs["directions"])
        if c is not None:
            try:
                rca[r["trial"]] = [(float(x["step"]), float(x["rca"])) for x in c]
                ls[r["trial"]] = [(float(x["step"]), float(x["ls"])) for x in c]
            except (KeyError, TypeError, ValueError):
                raise ConfigError(f"{p}: damaged curve (expected step, rca, ls per evaluation); rerun "
                                  f"python -m raylatent.ablate --resume") from None
    chance = {f"chance 1/{K}": 1.0 / K for K in sorted({r["K"] for r in records if r["trial"] in rca})}
    F.curves_png(rca, assets / "curve-rca.png", "Held-out RCA", "iteration", "RCA", hlines=chance)
    F.curves_png(ls, assets / "curve-ls.png", "Held-out Ls", "iteration", "Ls")
    md += ["![RCA curves](assets/curve-rca.png)", "", "![Ls curves](assets/curve-ls.png)", ""]
    fid = {}
    for kind in kind_names():
        p = dirs["generators"] / kind / "metrics.json"
        h = (read_json_in(p, dirs["generators"], default={}) or {}).get("history") or []
        if h:  # a kind fixed by construction has no training history
            fid[kind.upper()] = [(x["epoch"] + 1, x["fid"]) for x in h]  # epochs counted from 1, as the console
            F.curves_png({k: [(x["epoch"] + 1, x[k]) for x in h] for k in kind_of(kind).loss_keys},
                         assets / f"losses-{kind}.png", f"{kind.upper()} losses", "epoch", "loss")
            md += [f"![{kind} losses](assets/losses-{kind}.png)", ""]
    F.curves_png(fid, assets / "fid.png", "FID on the test split", "epoch", "FID")
    md += ["![FID](assets/fid.png)", ""]
    return md
