"""The positive controls beside Table 1: what "found" takes on each generator, so that a learned
row's verdict reads against what a direction set that should be found reaches (discovery/controls.py)
and against random directions, at the same K and the same chance thresholds."""
from __future__ import annotations

import math
from pathlib import Path

from tabulate import tabulate

from raylatent.errors import ConfigError
from raylatent.discovery.records import best_learned
from raylatent.interpret.coverage import MEMORISED, SAMPLES, SPREAD_MIN
from raylatent.report.records import esc, read_json_in


def _role(r: dict) -> str:
    from raylatent.discovery.methods import method_of

    return method_of(r["deformator"]).role


def control_found(records: list[dict], gen: str, method: str, K: int) -> list[str] | None:
    """The factors a control of `gen` finds at K's threshold, or None when it was not run there."""
    for r in records:
        if r["generator"] == gen and r["deformator"] == method and _role(r) == "control":
            found = (r.get("found_by_K") or {}).get(str(K))
            return list(found) if isinstance(found, list) else None
    return None


def _found(r: dict) -> list[str]:
    return [f for f, v in (r.get("factors") or {}).items() if isinstance(v, dict) and v.get("found")]


def reading(records: list[dict], gen: str) -> str | None:
    """One line: the best learned configuration of `gen` read against the supervised control and
    the true axes at its own K, and against random directions."""
    mine = [r for r in records if r["generator"] == gen and r.get("factors")]
    best = best_learned(mine)
    if best is None:
        return None
    found, K = set(_found(best)), best["K"]
    parts = []
    for method, name in (("supervised", "supervised directions find"), ("axes", "the true axes find")):
        ctrl = control_found(records, gen, method, K)
        if ctrl is not None:
            parts.append(f"{len(found & set(ctrl))} of the {len(ctrl)} {name}")
    rnd = [r.get("factors_found", 0) for r in mine if _role(r) == "reference"]
    return (f"{gen.upper()}: {best['trial']} finds {len(found)} of {len(best['factors'])} factors"
            + (f" ({'; '.join(parts)}, at K = {K})" if parts else " (no positive control was run)")
            + (f"; random directions {max(rnd)}" if rnd else "; no random baseline") + ".")


def controls_section(records: list[dict]) -> list[str]:
    """## Positive controls: per generator, the factors found at each grid K by the true axes, the
    supervised directions, random directions and the best learned configuration."""
    ctrl = [r for r in records if _role(r) == "control"]
    if not ctrl:
        return []
    Ks = sorted({int(k) for r in ctrl for k in (r.get("found_by_K") or {})})
    n = len(next(r["factors"] for r in records if r.get("factors")))
    rows, lines = [], []
    for gen in sorted({r["generator"] for r in ctrl}):
        mine = [r for r in records if r["generator"] == gen and r.get("factors")]
        for method, title in (("axes", "true axes (control)"), ("supervised", "supervised (control)")):
            cells = [control_found(records, gen, method, K) for K in Ks]
            if any(c is not None for c in cells):
                rows.append([gen.upper(), title, *["—" if c is None else f"{len(c)}/{n}: {', '.join(c) or '—'}"
                                                   for c in cells]])
        for role, title in (("reference", "random directions (best seed)"), ("learned", "best learned")):
            cells = []
            for K in Ks:
                at = [r for r in mine if _role(r) == role and r["K"] == K]
                top = best_learned(at) if role == "learned" else max(at, key=lambda r: r.get("factors_found", 0),
                                                                      default=None)
                cells.append("—" if top is None else f"{len(_found(top))}/{n}: {', '.join(_found(top)) or '—'}"
                             + (f" ({top['trial']})" if role == "learned" else ""))
            rows.append([gen.upper(), title, *cells])
        line = reading(records, gen)
        if line:
            lines.append(f"- {line}")
    return ["## Positive controls: can the verdict chain say yes?", "",
            "Direction sets that should be found, labelled and held to the same chance thresholds as every "
            "trial at each K the grid runs: **true axes** (where the generator knows them: the phantom's eight "
            "factor axes) and **supervised** directions (per factor, a least-squares model of the measured "
            "attribute on z over 512 generated samples, its normalised weights; the best a single linear "
            "direction does with labels the unsupervised methods never see). A factor the controls miss "
            "cannot be expected of discovery on that generator; a factor they find and a method misses is a "
            "miss of the method. `results.json`: the `axes` and `supervised` rows, `found_by_K`.", "",
            tabulate(rows, headers=["generator", "direction set", *[f"found at K = {K}" for K in Ks]],
                     tablefmt="github", disable_numparse=True), "", *lines, ""]


def coverage_section(path) -> list[str]:
    """## Does each generator vary the factors? From the directions stage's coverage.json (absent in
    runs without shards): per factor the spread ratio and distance against the data, and the
    memorisation check. Validated: a damaged file is one line naming it."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        cov = read_json_in(path, path.parent)
        rows, notes = [], []
        for gen in sorted(cov):
            c = cov[gen]
            cells = []
            for name, f in c["factors"].items():
                ok = f["spread_ratio"] is not None and math.isfinite(f["spread_ratio"])
                cells.append("not measured" if not ok else
                             f"{float(f['spread_ratio']):.2f} / {float(f['distance']):.2f}"
                             + ("" if f["generated"] else " **not generated**"))
            names = list(c["factors"])
            m = c["memorisation"]
            rows.append([esc(gen.upper()), *cells, f"{int(c['generated'])}/{len(names)}"])
            notes.append(f"- {esc(gen.upper())}: generated slices lie {float(m['median_ratio']):.2f}× as far from "
                         f"their nearest training slice as held-out slices do (median); "
                         f"{100 * float(m['nearer_than_held_out']):.0f}% are nearer than 95% of held-out slices get"
                         + (" — **it copies its training slices**." if m["memorised"] else ": no sign of copying."))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError(f"{path}: damaged coverage (rerun python -m raylatent.ablate to measure it again)") from None
    return ["## Does each generator vary the factors?", "",
            f"Each factor's attribute on {SAMPLES} generated slices against the data's slices (both splits): the "
            "spread ratio (generated std / the data's std) / the distance between the two distributions "
            f"(1-Wasserstein over the data's std). A factor with a spread ratio under {SPREAD_MIN} is **not "
            "generated**: no method can find it on that generator, and its verdicts say so instead of "
            "\"not found\". Memorisation (paper Fig 11): the distance of a generated slice to its nearest "
            "training slice against that of a held-out slice, which the generator never saw either (flagged "
            f"below {MEMORISED}). `coverage.json`.", "",
            tabulate(rows, headers=["generator", *names, "generated"], tablefmt="github", disable_numparse=True),
            "", *notes, ""]
