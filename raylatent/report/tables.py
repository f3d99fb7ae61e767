"""Table 1 in the paper's layout, our numbers beside the paper's with their references (chance,
random directions), and the paper's claims checked cell by cell as they are worded.

Ls throughout is the paper's: gamma * mean |eps - eps_hat| (the shift term as the authors'
trainer logged it, gamma = 0.25); results.json keeps the plain mean absolute error as `shift_mae`.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from tabulate import tabulate

ROWS = [("gan", "resnet", "GAN ResNet"), ("gan", "lenet", "GAN LeNet"),
        ("vae", "resnet", "VAE ResNet"), ("vae", "lenet", "VAE LeNet")]
# the paper's columns; "Unit Length" is the authors' proj deformator (see models/directions.py)
COLS = [("ortho", 32, "Orthogonal"), ("proj", 32, "Unit Length"), ("proj", 100, "100 Directions")]

# Table 1 of the paper: (RCA, Ls) per row and column group
PAPER = {
    ("gan", "resnet"): [(0.9236, 0.2538), (0.9383, 0.1949), (0.9522, 0.1560)],
    ("gan", "lenet"): [(0.8559, 0.3317), (0.9062, 0.2439), (0.9305, 0.1406)],
    ("vae", "resnet"): [(0.9939, 0.1040), (0.9947, 0.1086), (0.9861, 0.1117)],
    ("vae", "lenet"): [(0.9800, 0.1421), (0.9895, 0.1090), (0.9791, 0.0962)],
}
PAPER_FID = {"gan": 33.4, "vae": 93.9}  # section 3.2, Inception FID on the test data


def cell_stats(records: list[dict], gen: str, rec: str, defo: str, K: int) -> dict | None:
    """Mean and std over seeds of one configuration, with its step counts; None when not run."""
    rows = [r for r in records if (r["generator"], r["reconstructor"], r["deformator"], r["K"]) == (gen, rec, defo, K)
            and r.get("rca") is not None]
    if not rows:
        return None
    rca, ls = [r["rca"] for r in rows], [r["ls"] for r in rows]
    sd = (lambda x: statistics.stdev(x) if len(x) > 1 else 0.0)
    return {"rca": statistics.fmean(rca), "rca_sd": sd(rca), "ls": statistics.fmean(ls), "ls_sd": sd(ls),
            "n": len(rows), "steps": sorted({r.get("iterations") for r in rows}, key=str)}


def interval95(mean: float, sd: float, n: int) -> tuple[float, float]:
    """The 95% t interval of a cell's mean over n seeds (replicates)."""
    from scipy.stats import t

    half = float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def _fmt(mean: float, sd: float, n: int) -> str:
    """One seed: the value; several: mean ± std, the 95% interval of the mean, and n."""
    if n < 2:
        return f"{mean:.4f}"
    lo, hi = interval95(mean, sd, n)
    return f"{mean:.4f} ± {sd:.4f} [{lo:.3f}, {hi:.3f}] (n={n})"


def columns(records: list[dict]) -> list[tuple[str, int, str]]:
    """The paper's columns, then any other learned (deformator, K) the run has (our ablations)."""
    from raylatent.discovery.methods import method_of, title_of

    seen = {(r["deformator"], r["K"]) for r in records
            if r.get("rca") is not None and method_of(r["deformator"]).role == "learned"}
    extra = sorted(seen - {(d, k) for d, k, _ in COLS})
    return COLS + [(d, k, f"{title_of(d)} K={k}") for d, k in extra]


def rows(records: list[dict]) -> list[tuple[str, str, str]]:
    """Table 1's rows: the paper's (ROWS, shown even when not run) and every other registered
    generator kind with trained cells (registry order), each with the reconstructors it ran."""
    from raylatent.discovery.methods import method_of
    from raylatent.models import kind_names, kind_of
    from raylatent.models.reconstructors import RECONSTRUCTORS

    have = {(r["generator"], r["reconstructor"]) for r in records
            if r.get("rca") is not None and method_of(r["deformator"]).role == "learned"}
    extra = [(g, rec, f"{kind_of(g).title} {_NAMES.get(rec, rec)}") for g in kind_names()
             for rec in sorted(RECONSTRUCTORS, reverse=True)  # resnet before lenet, as the paper
             if (g, rec) in have and (g, rec) not in PAPER]
    return list(ROWS) + extra


def table1(records: list[dict]) -> tuple[str, dict]:
    """(Markdown table, cells): ours, the paper's and the difference per cell; chance and the
    random-directions baseline as reference rows."""
    from raylatent.discovery.methods import reference

    cols = columns(records)
    header = ["", *[f"{c[2]} {m}" for c in cols for m in ("RCA", "Ls")]]
    lines, cells = [], {}
    for gen, rec, label in rows(records):
        ours, paper = [label + " (ours)"], [label + " (paper)"]
        for j, (defo, K, _) in enumerate(cols):
            s = cell_stats(records, gen, rec, defo, K)
            cells[(gen, rec, defo, K)] = s
            p = PAPER[(gen, rec)][j] if j < len(COLS) and (gen, rec) in PAPER else None
            if s is None:
                ours += ["—", "—"]
            else:
                ours += [_fmt(s["rca"], s["rca_sd"], s["n"]) + (f" ({s['rca'] - p[0]:+.3f})" if p else ""),
                         _fmt(s["ls"], s["ls_sd"], s["n"]) + (f" ({s['ls'] - p[1]:+.3f})" if p else "")]
            paper += [f"{p[0]:.4f}", f"{p[1]:.4f}"] if p else ["", ""]
        lines += [ours, paper] if (gen, rec) in PAPER else [ours]  # the paper's numbers only where it has them
    lines.append(["chance (1/K)", *[x for _, K, _ in cols for x in (f"{1 / K:.4f}", "")]])
    ref = reference()
    for gen in sorted({r["generator"] for r in records if r["deformator"] == ref}):
        row = [f"{gen.upper()} random directions (A fixed)"]
        for _, K, _ in cols:
            rnd = [r for r in records if (r["generator"], r["deformator"], r["K"]) == (gen, ref, K)
                   and r.get("rca") is not None]
            s = cell_stats(rnd, gen, rnd[0]["reconstructor"], ref, K) if rnd else None
            row += ["—", "—"] if s is None else [_fmt(s["rca"], s["rca_sd"], s["n"]) + f" ({rnd[0]['reconstructor']})",
                                                  _fmt(s["ls"], s["ls_sd"], s["n"])]
        lines.append(row)
    return tabulate(lines, headers=header, tablefmt="github", disable_numparse=True), cells


# --------------------------------------------------------------------------- the paper's claims
@dataclass(frozen=True)
class Claim:
    """`better` cells beat `worse` cells on `metric` (lower Ls, higher RCA) in every pair, with
    at most `allowed` exceptions (the paper's "all but one")."""

    text: str
    metric: str
    pairs: tuple  # ((better cell key, worse cell key), ...)
    allowed: int = 0


def _pairs(fn) -> tuple:
    return tuple(p for g, r, d, k in [(g, r, d, k) for g, r, _ in ROWS for d, k, _ in COLS] if (p := fn(g, r, d, k)))


CLAIMS = [
    Claim("The VAE always beats the GAN on RCA", "rca",
          _pairs(lambda g, r, d, k: ((("vae", r, d, k), ("gan", r, d, k)) if g == "gan" else None))),
    Claim("The VAE always beats the GAN on Ls (lower)", "ls",
          _pairs(lambda g, r, d, k: ((("vae", r, d, k), ("gan", r, d, k)) if g == "gan" else None))),
    Claim("Unit length beats orthonormal on RCA (K=32)", "rca",
          _pairs(lambda g, r, d, k: (((g, r, "proj", 32), (g, r, "ortho", 32)) if d == "ortho" else None))),
    Claim("Unit length beats orthonormal on Ls (lower), in all but one case", "ls",
          _pairs(lambda g, r, d, k: (((g, r, "proj", 32), (g, r, "ortho", 32)) if d == "ortho" else None)), allowed=1),
    Claim("ResNet beats LeNet on RCA", "rca",
          _pairs(lambda g, r, d, k: (((g, "resnet", d, k), (g, "lenet", d, k)) if r == "lenet" else None))),
    Claim("LeNet has the lower Ls at K=100", "ls",
          _pairs(lambda g, r, d, k: (((g, "lenet", d, k), (g, "resnet", d, k)) if r == "lenet" and k == 100 else None))),
    Claim("ResNet has the lower Ls at K=32", "ls",
          _pairs(lambda g, r, d, k: (((g, "resnet", d, k), (g, "lenet", d, k)) if r == "lenet" and k == 32 else None))),
]

_NAMES = {"gan": "GAN", "vae": "VAE", "lenet": "LeNet", "resnet": "ResNet", "ortho": "orthonormal",
          "proj": "unit-length", "unit": "unit-norm (ours)"}


def _cell_name(key) -> str:
    g, r, d, k = key
    return f"{_NAMES[g]} {_NAMES[r]} {_NAMES.get(d, d)} K={k}"


def _resolution(a: dict, b: dict, metric: str, spread: dict) -> float:
    """The smallest difference that counts: with several seeds in both cells, the half-width of a
    95% Welch interval of the difference; with one seed, the seed-to-seed spread measured for this
    scale (`report.seed_spread`)."""
    if a["n"] > 1 and b["n"] > 1:
        from scipy.stats import t

        va, vb = a[f"{metric}_sd"] ** 2 / a["n"], b[f"{metric}_sd"] ** 2 / b["n"]
        se = math.sqrt(va + vb)
        if se == 0:
            return 0.0
        df = (va + vb) ** 2 / ((va ** 2 / (a["n"] - 1) if va else 0) + (vb ** 2 / (b["n"] - 1) if vb else 0) or 1e-300)
        return float(t.ppf(0.975, df) * se)
    return float(spread[metric])


def check_claim(claim: Claim, cells: dict, spread: dict) -> tuple[str, str]:
    """(verdict, evidence): ✓ every compared pair agrees beyond its resolution (up to the allowed
    exceptions); ✗ more resolved exceptions than allowed; 'not resolved' when the verdict hinges
    on differences smaller than the resolution; 'confounded' when compared cells ran different
    step counts; '–' when the cells were not run."""
    lower = claim.metric == "ls"
    notes, fails, unresolved, confounded, compared = [], 0, 0, False, 0
    for hi, lo in claim.pairs:
        a, b = cells.get(hi), cells.get(lo)
        if a is None or b is None:
            continue
        compared += 1
        diff = (b[claim.metric] - a[claim.metric]) if lower else (a[claim.metric] - b[claim.metric])
        res = _resolution(a, b, claim.metric, spread)
        if a["steps"] != b["steps"]:
            confounded, mark = True, f"confounded: {a['steps']} vs {b['steps']} steps"
        elif abs(diff) <= res:
            unresolved, mark = unresolved + 1, f"not resolved (|Δ| {abs(diff):.3f} ≤ {res:.3f})"
        else:
            fails, mark = fails + (diff < 0), "✓" if diff > 0 else "✗"
        notes.append(f"{_cell_name(hi)} {a[claim.metric]:.3f} vs {_cell_name(lo)} {b[claim.metric]:.3f} {mark}")
    if not compared:
        return "–", "not enough configurations run"
    if confounded:
        verdict = "confounded"
    elif fails > claim.allowed:
        verdict = "✗"
    elif fails + unresolved <= claim.allowed:
        verdict = "✓"
    else:
        verdict = "not resolved"
    return verdict, "; ".join(notes)


def claims(cells: dict, spread: dict) -> list[tuple[str, str, str]]:
    """The paper's claims on our cells: (claim, verdict, evidence per compared pair)."""
    return [(c.text, *check_claim(c, cells, spread)) for c in CLAIMS]
