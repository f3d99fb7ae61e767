"""Table 1 in the paper's layout, our numbers beside the paper's, and its claims checked."""
from __future__ import annotations

import math
import statistics

from tabulate import tabulate

ROWS = [("gan", "resnet", "GAN ResNet"), ("gan", "lenet", "GAN LeNet"),
        ("vae", "resnet", "VAE ResNet"), ("vae", "lenet", "VAE LeNet")]
COLS = [("ortho", 32, "Orthogonal"), ("unit", 32, "Unit Length"), ("unit", 100, "100 Directions")]

# Table 1 of the paper: (RCA, Ls) per row and column group
PAPER = {
    ("gan", "resnet"): [(0.9236, 0.2538), (0.9383, 0.1949), (0.9522, 0.1560)],
    ("gan", "lenet"): [(0.8559, 0.3317), (0.9062, 0.2439), (0.9305, 0.1406)],
    ("vae", "resnet"): [(0.9939, 0.1040), (0.9947, 0.1086), (0.9861, 0.1117)],
    ("vae", "lenet"): [(0.9800, 0.1421), (0.9895, 0.1090), (0.9791, 0.0962)],
}


def cell_stats(records: list[dict], gen: str, rec: str, defo: str, K: int) -> dict | None:
    """Mean and std over seeds of one configuration; None when it was not run."""
    rows = [r for r in records if (r["generator"], r["reconstructor"], r["deformator"], r["K"]) == (gen, rec, defo, K)
            and r.get("rca") is not None]
    if not rows:
        return None
    rca, ls = [r["rca"] for r in rows], [r["ls"] for r in rows]
    sd = (lambda x: statistics.stdev(x) if len(x) > 1 else 0.0)
    return {"rca": statistics.fmean(rca), "rca_sd": sd(rca), "ls": statistics.fmean(ls), "ls_sd": sd(ls),
            "n": len(rows)}


def _fmt(mean: float, sd: float, n: int) -> str:
    return f"{mean:.4f} ± {sd:.4f}" if n > 1 else f"{mean:.4f}"


def table1(records: list[dict]) -> tuple[str, dict]:
    """(Markdown table, cells) with our values, the paper's and the difference per cell."""
    header = ["", *[f"{c[2]} RCA" if i % 2 == 0 else f"{c[2]} Ls" for c in COLS for i in range(2)]]
    lines, cells = [], {}
    for gen, rec, label in ROWS:
        ours, paper = [label + " (ours)"], [label + " (paper)"]
        for j, (defo, K, _) in enumerate(COLS):
            s = cell_stats(records, gen, rec, defo, K)
            cells[(gen, rec, defo, K)] = s
            p_rca, p_ls = PAPER[(gen, rec)][j]
            if s is None:
                ours += ["—", "—"]
            else:
                ours += [_fmt(s["rca"], s["rca_sd"], s["n"]) + f" ({s['rca'] - p_rca:+.3f})",
                         _fmt(s["ls"], s["ls_sd"], s["n"]) + f" ({s['ls'] - p_ls:+.3f})"]
            paper += [f"{p_rca:.4f}", f"{p_ls:.4f}"]
        lines += [ours, paper]
    return tabulate(lines, headers=header, tablefmt="github", disable_numparse=True), cells


def _mean(cells: dict, pred) -> tuple[float, float]:
    sel = [v for k, v in cells.items() if v is not None and pred(*k)]
    if not sel:
        return math.nan, math.nan
    return statistics.fmean(v["rca"] for v in sel), statistics.fmean(v["ls"] for v in sel)


def claims(cells: dict) -> list[tuple[str, bool | None, str]]:
    """The paper's four claims on our numbers: (claim, holds, evidence). None = not testable."""
    out = []

    def check(text, a, b, key, lower):
        va, vb = a[key], b[key]
        if math.isnan(va) or math.isnan(vb):
            out.append((text, None, "not enough configurations run"))
            return
        ok = va < vb if lower else va > vb
        out.append((text, ok, f"{va:.4f} vs {vb:.4f}"))

    vae, gan = _mean(cells, lambda g, r, d, k: g == "vae"), _mean(cells, lambda g, r, d, k: g == "gan")
    check("VAE beats GAN on RCA", {"x": vae[0]}, {"x": gan[0]}, "x", False)
    check("VAE beats GAN on Ls (lower)", {"x": vae[1]}, {"x": gan[1]}, "x", True)
    unit = _mean(cells, lambda g, r, d, k: d == "unit" and k == 32)
    ortho = _mean(cells, lambda g, r, d, k: d == "ortho")
    check("Unit length beats orthonormal on RCA", {"x": unit[0]}, {"x": ortho[0]}, "x", False)
    res, le = _mean(cells, lambda g, r, d, k: r == "resnet"), _mean(cells, lambda g, r, d, k: r == "lenet")
    check("ResNet beats LeNet on RCA", {"x": res[0]}, {"x": le[0]}, "x", False)
    res100 = _mean(cells, lambda g, r, d, k: r == "resnet" and k == 100)
    le100 = _mean(cells, lambda g, r, d, k: r == "lenet" and k == 100)
    check("LeNet has the lower Ls at K=100", {"x": le100[1]}, {"x": res100[1]}, "x", True)
    return out
