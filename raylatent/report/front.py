"""The report's front and back matter: what a reader needs first (the Fig-2-style "What we found"
panel per generator), where to go next, and the HTML version of the whole report."""
from __future__ import annotations

import re
from pathlib import Path

from raylatent.report.config import ReportConfig
from raylatent.discovery.records import best_learned
from raylatent.discovery.renders import load as load_rendered
from raylatent.report import figures as F
from raylatent.report.controls import control_found
from raylatent.report.records import esc


# REPORT.html runs no script: a policy the browser enforces even if a field slipped through unescaped
CSP = ("default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; base-uri 'none'; "
       "form-action 'none'")
_FOLD = re.compile(r'^(?:<details markdown="1">|</details>|<summary>[^<>]*</summary>)$')  # the report's own tags
_SCRIPT_URL = re.compile(r'\b(href|src)="\s*(?:javascript|vbscript|data):[^"]*"', re.I)


def markdown_to_html(markdown_text: str) -> str:
    """The report's Markdown as HTML with raw HTML off: any tag in the text shows as text, except
    the few fold tags the report writes itself (whole lines, in an allow-list)."""
    import markdown

    parts, chunk = [], []

    def flush():
        if chunk:
            md = markdown.Markdown(extensions=["tables", "fenced_code"])
            md.preprocessors.deregister("html_block")
            md.inlinePatterns.deregister("html")
            parts.append(md.convert("\n".join(chunk)))
            chunk.clear()
    for line in markdown_text.split("\n"):
        if _FOLD.match(line.strip()):
            flush()
            parts.append(line.strip().replace(' markdown="1"', ""))
        else:
            chunk.append(line)
    flush()
    return _SCRIPT_URL.sub(r'\1="#"', "\n".join(parts))


def write_html(markdown_text: str, path: Path, title: str) -> None:
    """REPORT.html beside REPORT.md (same assets folder): what a browser or a colleague opens."""
    import html

    body = markdown_to_html(markdown_text)
    path.write_text(f"<!doctype html>\n<html><head><meta charset='utf-8'>"
                    f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
                    f"<title>{html.escape(title)}</title>"
                    "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
                    "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px}"
                    "img{max-width:100%}</style></head><body>\n" + body + "\n</body></html>\n")


def what_we_found(records, rendered: Path, man: dict, cfg: ReportConfig, assets: Path) -> list[str]:
    """The paper's Fig 2 for this run: per generator, the configuration that found the most
    factors against chance, and for each of the eight factors its best direction swept over the
    shifts, with ρ, purity, score vs chance and whether it counts as found."""
    from raylatent.discovery.methods import method_of

    md = ["## What we found", ""]
    w = cfg.windows[0]
    for gen in sorted({r["generator"] for r in records}):
        learned = [r for r in records if r["generator"] == gen and r.get("factors") and r["trial"] in man["charts"]
                   and method_of(r["deformator"]).role == "learned"]
        if not learned:
            continue
        best = best_learned(learned)
        charts = F.window(load_rendered(rendered, man["charts"][best["trial"]])["shifts"], w["center"], w["width"])
        f = best["factors"]
        rows = list(f)
        labels = [f"{name}: dir {f[name]['direction']}{' (found)' if f[name]['found'] else ''}" for name in rows]
        name = f"found-{gen}.png"
        F.grid_png(charts[[f[n]["direction"] for n in rows]], assets / name, labels, label_w=150,
                   col_labels=F.shift_labels(man["shifts"]))
        table = ["| factor | direction | ρ | purity | score vs chance | found |", "|---|---|---|---|---|---|"]
        table += [f"| {n} | {f[n]['direction']} | {f[n]['rho']:.2f} | {f[n]['purity']:.2f} | "
                  + (f"{f[n]['score']:.2f} vs {f[n]['chance']:.2f}" if "chance" in f[n] else "—")
                  + f" | {'✓' if f[n]['found'] else 'not generated' if f[n].get('generated') is False else '✗'} |"
                  for n in rows]
        rnd = [r.get("factors_found", 0) for r in records
               if r["generator"] == gen and method_of(r["deformator"]).role == "reference" and r.get("factors")]
        refs = [f"random directions: {max(rnd)}"] if rnd else []
        for method, title in (("supervised", "supervised control"), ("axes", "true axes")):
            found = control_found(records, gen, method, best["K"])
            if found is not None:
                refs.append(f"{title}: {len(found)}")
        md += [f"### {gen.upper()}: {best['trial']} finds {best.get('factors_found', 0)} of {len(rows)} factors"
               + (f" ({'; '.join(refs)})" if refs else "")
               + ("" if best.get("rca") is None else f"; RCA {best['rca']:.3f} (chance {1 / best['K']:.3f})"), "",
               f"One row per factor: its best direction, shifted by ε = {', '.join(f'{x:g}' for x in man['shifts'])} "
               f"(left to right; the original in the centre), {esc(w['name'])} window (C {w['center']}, W "
               f"{w['width']} HU). A direction is found when it is labelled with the factor and its score "
               "(|ρ| × purity) beats what the best of K random directions reaches (see Directions found).", "",
               f"![what we found on {gen}](assets/{name})", "", *table, ""]
    return md if len(md) > 2 else []


def next_steps() -> list[str]:
    return ["## Next steps", "",
            "- Your own CT: `python -m raylatent.ablate --grid smoke --set data.path=/path/to/dicom` (any layout; "
            "patient IDs are hashed).",
            "- Paper scale on a GPU cluster: `ray up cluster.yaml`, then `--grid full` (check it first with "
            "`--dry-run`).",
            "- Tune discovery instead of hand-picking settings: a `search:` section (`--grid search-smoke`).",
            "- Load these directions in Python: `raylatent.load_run(RUN_DIR)` with the run directory this "
            "report came from (docs/api.md: Use a run from Python).", ""]
