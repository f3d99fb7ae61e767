"""`python -m raylatent.report RUN_DIR --out REPORT_DIR`: REPORT.md with Table 1, the paper's
figures, animations and curves. Reads files only (no Ray, no training code), so a copied run
directory rebuilds its report on a laptop."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
import torch

from raylatent.config import ConfigError, ReportConfig
from raylatent.discovery.export import load_shift_arrays, traversal
from raylatent.models.registry import kind_names, kind_of
from raylatent.report import figures as F
from raylatent.report.records import esc, inside, load_records
from raylatent.report.tables import claims, table1

LATEST = "latest.json"
UNIT_LENGTH = ("proj", "unit")  # the paper's unit-length directions (the authors' proj), then ours


def _load_models(gen_dir: Path, kinds) -> dict:
    """Every generator that has direction results; a missing or damaged one is an error, not a
    report that silently lacks its figures."""
    from raylatent.models.export import load_exported

    return {kind: load_exported(gen_dir, kind) for kind in sorted(kinds)}


def _G(models: dict, kind: str):
    from raylatent.models import as_generator

    return as_generator(models[kind]).eval()


def _latents(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def build_report(run_dir: str | os.PathLike, out: str | os.PathLike, grid_name: str = "",
                 cfg: ReportConfig | None = None) -> Path:
    run_dir, out = Path(run_dir), Path(out)
    latest = run_dir / LATEST
    if not latest.exists():
        raise ConfigError(f"{run_dir}: no {LATEST} (not a raylatent run directory; run python -m raylatent.ablate)")
    try:
        info = json.loads(latest.read_text())
        stages = {k: info["stages"][k] for k in ("data", "generators", "directions")}
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{latest}: not a raylatent run record (rerun python -m raylatent.ablate)") from None
    cfg = cfg or ReportConfig(**info.get("report", {}))
    dirs = {k: inside(run_dir, v, f"stages.{k}", latest) for k, v in stages.items()}
    records = load_records(dirs["directions"] / "results.json")
    out.mkdir(parents=True, exist_ok=True)
    assets = out / "assets"
    assets.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(records, indent=1))
    md: list[str] = [f"# raylatent report: {esc(grid_name or info.get('grid', ''))}", ""]
    md += _summary(run_dir, dirs, info)
    table, cells = table1(records)
    gamma = next((r["gamma"] for r in records if r.get("gamma") is not None), 0.25)
    md += ["## Table 1: RCA and shift loss Ls", "",
           "Held-out RCA and Ls (fresh latents, fixed seed) after the configured iterations; mean ± std "
           "where a cell has several seeds, else the single run; in brackets the difference to the paper. "
           f"Ls is the paper's: γ · mean |ε − ε̂| with γ = {gamma} (the shift term as the authors' trainer "
           "logged it); `results.json` keeps the plain mean absolute error as `shift_mae`. \"Unit Length\" "
           "and \"100 Directions\" are the authors' projective deformator (`proj`: a linear map with a bias, "
           "|shift| = |ε|); our plain normalised columns (`unit`), where run, are a separate column. "
           "Reference rows: chance (1/K) and random directions (A fixed, only R learns).", "", table, ""]
    md += _steps_line(records)
    md += ["### The paper's claims on these numbers", "",
           "Each claim checked on every pair of cells it compares, as worded (\"always\" = every pair, "
           "\"all but one\" = at most one exception). A difference smaller than its resolution is not "
           f"resolved: with one seed, the seed-to-seed spread measured at smoke scale (RCA {cfg.seed_spread['rca']}, "
           f"Ls {cfg.seed_spread['ls']}; `report.seed_spread`), with several seeds the 95% interval of the "
           "difference. Cells trained for different step counts are confounded, not compared.", ""]
    for text, verdict, ev in claims(cells, cfg.seed_spread):
        md.append(f"- {verdict} {text}: {ev}")
    md.append("")
    models = _load_models(dirs["generators"], {r["generator"] for r in records})
    md += _directions_found(records)
    md += _direction_charts(records, dirs["directions"], models, cfg, assets)
    md += _random_vs_discovered(records, dirs["directions"], models, cfg, assets)
    md += _z_figure(records, dirs["directions"], models, cfg, assets)
    md += _interpolation(dirs, models, cfg, assets)
    md += _curves(records, dirs, assets)
    (out / "REPORT.md").write_text("\n".join(md) + "\n")
    return out / "REPORT.md"


def _summary(run_dir: Path, dirs: dict, info: dict) -> list[str]:
    man = json.loads((dirs["data"] / "manifest.json").read_text())
    gens = {k: json.loads((dirs["generators"] / k / "metrics.json").read_text())
            for k in kind_names() if (dirs["generators"] / k / "metrics.json").exists()}
    times = json.loads((run_dir / "stage_times.json").read_text()) if (run_dir / "stage_times.json").exists() else {}
    from importlib.metadata import version  # the report never imports ray itself

    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "ray": version("ray"), "numpy": np.__version__}
    lines = ["## Run summary", "",
             f"- Data: {esc(info.get('data_source', '?'))}; {esc(man['counts']['train'])} train / "
             f"{esc(man['counts']['test'])} test slices from {len(man['patients'])} patients "
             f"({len(man['skipped'])} files skipped), {esc(man['settings']['size'])}² pixels.",
             ]
    for k, g in gens.items():
        lines.append(f"- {k.upper()}: epoch {esc(g['chosen_epoch'])} kept (best FID of the last "
                     f"{len(g['candidates'])}), FID {_num(g['fid'])} with **{esc(g['fid_network'])}**; "
                     + _fid_reference(k, g['fid_network']))
    lines.append(f"- Hardware: {esc(info.get('hardware', platform.processor() or platform.machine()))}.")
    if times:
        lines.append("- Wall time per stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + ".")
    lines.append("- Software: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    return lines + [""]


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
    steps = sorted({r.get("iterations") for r in records if r.get("rca") is not None and r["deformator"] != "random"},
                   key=str)
    rnd = sorted({r.get("iterations") for r in records if r["deformator"] == "random"}, key=str)
    return [f"Discovery steps per learned cell: {', '.join(map(str, steps))}"
            + (f"; random baseline: {', '.join(map(str, rnd))}" if rnd else "")
            + " (the paper: 3,000-250,000).", ""]


def _chart(G, A: dict, dirs: list[int], shifts, seed: int, cfg: ReportConfig) -> np.ndarray:
    z = _latents(1, A["A"].shape[0], seed)
    imgs = traversal(G, A, z, shifts, dirs)[:, :, 0, 0]  # D x S x H x W
    w = cfg.windows[0]
    return F.window(imgs, w["center"], w["width"])


def _labels(ddir: Path, r: dict) -> dict | None:
    p = ddir / Path(r["directions"]).parent / "labels.json"
    return json.loads(p.read_text()) if p.exists() else None


def _directions_found(records) -> list[str]:
    from tabulate import tabulate

    from raylatent.interpret.labels import SEMANTIC

    rows = []
    for r in records:
        f = r.get("factors")
        if not f:
            continue
        cells = [f"{f[a]['rho']:.2f} / {f[a]['purity']:.2f}{' ✓' if f[a]['found'] else ''}" for a in SEMANTIC]
        rows.append([r["trial"], *cells, r.get("factors_found", 0)])
    if not rows:
        return []
    return ["## Directions found", "",
            "For each semantic factor, the best-matching direction of each configuration: |Spearman ρ| "
            "between the shift and the measured attribute / purity (its share of all attribute "
            "effects, each weighted by its |ρ|; width, height and area count once, as the body "
            "outline); ✓ = found: some direction is labelled with the factor (|ρ| ≥ 0.6, purity ≥ 0.4; "
            "an outline direction is `size` when width and height change alike). `random`, `sefa` "
            "and `ganspace` rows are the baselines. Thickness is below the pixel size under 128².", "",
            tabulate(rows, headers=["configuration", *SEMANTIC, "found"], tablefmt="github",
                     disable_numparse=True), ""]


def _direction_charts(records, ddir: Path, models, cfg: ReportConfig, assets: Path) -> list[str]:
    md = ["## Discovered directions (paper Figs 2-7)", "",
          f"One row per direction; the original in the centre, shifts {list(cfg.shifts)} left to right; "
          f"{esc(cfg.windows[0]['name'])} window (C {cfg.windows[0]['center']}, W {cfg.windows[0]['width']} HU). "
          f"Animations: {cfg.gif_dirs_per_file} directions per GIF.", ""]
    for r in records:
        if r["deformator"] == "random" or r["generator"] not in models:
            continue
        A = load_shift_arrays(ddir / r["directions"])
        G = _G(models, r["generator"])
        scores = "" if r["rca"] is None else f" (RCA {r['rca']:.3f}, Ls {r['ls']:.3f})"
        md.append(f"### {r['trial']}{scores}")
        lab = _labels(ddir, r)
        names = [x["label"] for x in lab["directions"]] if lab else None
        K = A["A"].shape[1]
        for page, start in enumerate(range(0, K, cfg.max_chart_rows)):
            ids = list(range(start, min(K, start + cfg.max_chart_rows)))
            name = f"chart-{r['trial']}-p{page + 1}.png"
            F.grid_png(_chart(G, A, ids, cfg.shifts, 0, cfg), assets / name,
                       [f"{i}: {names[i]}" if names else f"dir {i}" for i in ids])
            md.append(f"![{r['trial']} directions {ids[0]}-{ids[-1]}](assets/{name})")
        links = []
        for start in range(0, K, cfg.gif_dirs_per_file):
            ids = list(range(start, min(K, start + cfg.gif_dirs_per_file)))
            sweep = list(np.linspace(-max(cfg.shifts), max(cfg.shifts), 9))
            sweep = sweep + sweep[::-1][1:-1]
            imgs = _chart(G, A, ids, sweep, 0, cfg)  # D x S x H x W
            frames = [np.concatenate([F._tile(imgs[d, s]) for d in range(len(ids))], axis=1) for s in range(len(sweep))]
            name = f"anim-{r['trial']}-{ids[0]:03d}-{ids[-1]:03d}.gif"
            F.gif(frames, assets / name)
            links.append(f"[{ids[0]}-{ids[-1]}](assets/{name})")
        md += ["", "Animations: " + ", ".join(links), ""]
    return md


def _random_vs_discovered(records, ddir, models, cfg, assets) -> list[str]:
    md = ["## Random vs discovered directions (paper Figs 9-10)", ""]
    for gen in kind_names():
        rnd = [r for r in records if r["generator"] == gen and r["deformator"] == "random"]
        disc = sorted([r for r in records if r["generator"] == gen and r["deformator"] in UNIT_LENGTH],
                      key=lambda r: (UNIT_LENGTH.index(r["deformator"]), -r["K"], r["reconstructor"] != "lenet"))
        if not rnd or not disc or gen not in models:
            continue
        G = _G(models, gen)
        Ar = load_shift_arrays(ddir / rnd[0]["directions"])
        Ad = load_shift_arrays(ddir / disc[0]["directions"])
        left = _chart(G, Ar, list(range(5)), cfg.shifts, 1, cfg)
        right = _chart(G, Ad, list(range(5)), cfg.shifts, 1, cfg)
        both = np.concatenate([left, np.zeros_like(left[:, :1]), right], axis=1)
        name = f"random-vs-discovered-{gen}.png"
        F.grid_png(both, assets / name, [f"dir {i}" for i in range(5)])
        md += [f"{gen.upper()}: 5 random directions (left) and the first 5 of {disc[0]['trial']} (right).", "",
               f"![random vs discovered {gen}](assets/{name})", ""]
    return md


def _z_direction(G, A: dict, cfg: ReportConfig) -> int:
    """The direction that moves lung area most consistently across latents (a z proxy)."""
    from raylatent.interpret.attributes import measure_batch

    if cfg.z_direction >= 0:
        return cfg.z_direction
    z = _latents(8, A["A"].shape[0], 5)
    imgs = traversal(G, A, z, [-3.0, 3.0])[:, :, :, 0]  # D x 2 x N x H x W
    from raylatent.data.dicom import model_to_hu

    scores = []
    for d in range(A["A"].shape[1]):
        lo = measure_batch(model_to_hu(imgs[d, 0].numpy()))["lung_area"]
        hi = measure_batch(model_to_hu(imgs[d, 1].numpy()))["lung_area"]
        delta = np.nan_to_num(hi - lo)
        scores.append(abs(np.mean(np.sign(delta))) * np.mean(np.abs(delta)))
    return int(np.argmax(scores))


def _z_figure(records, ddir, models, cfg, assets) -> list[str]:
    md = ["## z-position over 24 random latents (paper Fig 8)", ""]
    cands = [r for r in records if r["deformator"] in UNIT_LENGTH and r["generator"] in models]
    if not cands:
        return md + ["(no unit-length trial)", ""]
    # the paper's Fig 8 comes from its VAE: prefer a generator with an encoder
    r = sorted(cands, key=lambda r: (UNIT_LENGTH.index(r["deformator"]), not kind_of(r["generator"]).has_encoder,
                                     -r["K"], r["reconstructor"] != "lenet"))[0]
    A = load_shift_arrays(ddir / r["directions"])
    G = _G(models, r["generator"])
    lab = _labels(ddir, r)
    if cfg.z_direction < 0 and lab and lab["factors"]["z"]["found"]:
        k, how = lab["factors"]["z"]["direction"], "the automatic z-position label"
    else:
        k = _z_direction(G, A, cfg)
        how = "configured" if cfg.z_direction >= 0 else "no z label: largest consistent lung-area change"
    z = _latents(24, A["A"].shape[0], 8)
    imgs = traversal(G, A, z, cfg.shifts, [k])[0, :, :, 0]  # S x N x H x W
    w = cfg.windows[0]
    name = "z-position.png"
    F.grid_png(F.window(imgs.permute(1, 0, 2, 3), w["center"], w["width"]), assets / name)
    return md + [f"{r['trial']}, direction {k} ({how}).", "", f"![z-position](assets/{name})", ""]


def _interpolation(dirs, models, cfg, assets) -> list[str]:
    from raylatent.data.shards import load_split

    md = ["## Interpolation between held-out slices (paper Fig 11)", ""]
    test = load_split(dirs["data"], "test")
    if len(test) < 2:
        return md + ["(fewer than two test slices)", ""]
    pair = test.images[[0, len(test) // 2]]
    w = cfg.windows[1]
    for kind in sorted(models, key=lambda k: not kind_of(k).has_encoder):
        k = kind_of(kind)
        G = _G(models, kind)
        z = k.invert(models[kind], pair)
        t = torch.linspace(0, 1, 8)[:, None]
        with torch.no_grad():
            path = G(z[0] * (1 - t) + z[1] * t)[:, 0]
        row = torch.cat([pair[0], path, pair[1]]).numpy()[None]
        name = f"interpolation-{kind}.png"
        F.grid_png(F.window(row, w["center"], w["width"]), assets / name)
        md += [f"{k.title} via {k.inversion}: held-out originals at both ends, {esc(w['name'])} window.", "",
               f"![interpolation {kind}](assets/{name})", ""]
    return md


def _curves(records, dirs, assets) -> list[str]:
    md = ["## Curves", ""]
    rca, ls = {}, {}
    for r in records:
        p = dirs["directions"] / "trials" / r["trial"] / "curve.json"
        if p.exists():
            c = json.loads(p.read_text())
            rca[r["trial"]] = [(x["step"], x["rca"]) for x in c]
            ls[r["trial"]] = [(x["step"], x["ls"]) for x in c]
    F.curves_png(rca, assets / "curve-rca.png", "Held-out RCA", "iteration", "RCA")
    F.curves_png(ls, assets / "curve-ls.png", "Held-out Ls", "iteration", "Ls")
    md += ["![RCA curves](assets/curve-rca.png)", "", "![Ls curves](assets/curve-ls.png)", ""]
    fid = {}
    for kind in kind_names():
        p = dirs["generators"] / kind / "metrics.json"
        if p.exists():
            h = json.loads(p.read_text())["history"]
            fid[kind.upper()] = [(x["epoch"], x["fid"]) for x in h]
            F.curves_png({k: [(x["epoch"], x[k]) for x in h] for k in kind_of(kind).loss_keys},
                         assets / f"losses-{kind}.png", f"{kind.upper()} losses", "epoch", "loss")
            md += [f"![{kind} losses](assets/losses-{kind}.png)", ""]
    F.curves_png(fid, assets / "fid.png", "FID on the test split", "epoch", "FID")
    md += ["![FID](assets/fid.png)", ""]
    return md
