"""The report's ground-truth sections: every direction set against the true factor directions,
where the generator knows them (the phantom: its axes; the curved phantom: the tangents of its
curved factor paths, compared at fixed latents), and the methods ranked on them."""
from __future__ import annotations

import statistics

from tabulate import tabulate

from raylatent.report.records import esc

ALIGNS = 6      # axes recovered (of 8) for a method to read as aligning with the factors
SPAN = 0.9      # share inside the factors' span for a method to read as finding the subspace


def _median_range(vals: list[float], fmt: str) -> str:
    m = statistics.median(vals)
    return format(m, fmt) if len(vals) < 2 else f"{format(m, fmt)} ({format(min(vals), fmt)}–{format(max(vals), fmt)})"


def reading(axes: float, span: float, cos: float) -> str:
    """What a method's median scores say: aligned with the factors, with some of them, only their
    subspace, or neither."""
    if axes >= ALIGNS:
        return "aligns with the factors"
    if axes >= 1:
        return f"aligns with {axes:g} of the factors"
    if span >= SPAN:
        return "finds the factors' subspace, not their axes"
    return "neither" if cos < 0.5 else "partly aligned"


def methods_on_truth(records: list[dict]) -> list[str]:
    """Per truth generator, each method (with its settings) over its seeds and reconstructors:
    median matched |cos|, axes recovered, share in the factors' span and factors found against
    chance, best first."""
    from raylatent.discovery.methods import title_of

    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        if r.get("truth"):
            groups.setdefault((r["generator"], r["deformator"]), []).append(r)
    if not groups:
        return []
    md = ["## Methods on ground truth", "",
          "Each method on the generators that know their true factor directions, over its seeds and "
          "reconstructors (median, range in brackets): matched |cos| = the mean over the eight factors of "
          "the |cos| between a factor's true direction and the direction matched to it one-to-one (on the "
          "curved phantom: the tangents of the true paths and of the method's paths, at 64 fixed latents); "
          "recovered = factors at |cos| ≥ 0.9; in span = the share of a direction inside the factors' span; "
          "found = factors the labeller finds against chance. The reading: ≥ 6 recovered aligns with the "
          "factors; in span ≥ 0.9 without that finds their subspace only. On the phantoms no method that sees "
          "only the images can be sure of all eight (the positive controls are told them): width, height and "
          "size reach the image only through the body's two half axes, so one combination of them moves no "
          "pixel (`interpret/identifiability.py`, docs/methods.md).", ""]
    for gen in sorted({g for g, _ in groups}):
        rows = []
        for (g, method), rs in groups.items():
            if g != gen:
                continue
            cos = [statistics.fmean(r["truth"]["matched_cos"].values()) for r in rs]
            axes = [r["truth"]["axes_recovered"] for r in rs]
            span = [r["truth"]["in_subspace_mean"] for r in rs]
            found = [r.get("factors_found", 0) for r in rs]
            rows.append((statistics.median(cos), [esc(title_of(method)), len(rs), _median_range(cos, ".2f"),
                                                  _median_range(axes, "g"), _median_range(span, ".2f"),
                                                  _median_range(found, "g"),
                                                  reading(statistics.median(axes), statistics.median(span),
                                                          statistics.median(cos))]))
        md += [f"### {gen}", "", tabulate([row for _, row in sorted(rows, key=lambda x: -x[0])],
                                          headers=["method", "runs", "matched |cos|", "recovered", "in span",
                                                   "found", "reading"], tablefmt="github", disable_numparse=True), ""]
    return md


def ground_truth_section(records: list[dict]) -> list[str]:
    """The methods ranked on ground truth, then every configuration's scores per factor."""
    from raylatent.interpret.truth import RECOVERED

    rows, names = [], []
    for r in records:
        t = r.get("truth")
        if not t:
            continue
        names = names or t["factors"]
        rows.append([esc(r["trial"]), *[f"{t['matched_cos'][f]:.2f}{' ✓' if t['matched_cos'][f] >= RECOVERED else ''}"
                                        for f in names],
                     t["axes_recovered"], f"{t['in_subspace_mean']:.2f}",
                     "—" if r.get("rca") is None else f"{r['rca']:.3f}"])
    if not rows:
        return []
    return [*methods_on_truth(records), "## Ground truth", "",
            "Where the generator knows its true directions (the phantom generator: column i of its M moves "
            "factor i and nothing else; the curved phantom: factor i moves along a known curve, compared by "
            "its tangents at 64 fixed latents), each configuration's directions against them: per factor the "
            "|cos| of the direction matched one-to-one to its true axis (Hungarian matching); ✓ = "
            f"recovered (|cos| ≥ {RECOVERED}); `in span` = the mean share of a direction's squared length "
            "inside the eight factor axes (the rest moves nothing). `results.json`: `truth`.", "",
            tabulate(rows, headers=["configuration", *[esc(n) for n in names], "recovered", "in span", "RCA"],
                     tablefmt="github", disable_numparse=True), ""]
