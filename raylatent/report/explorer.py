"""explorer.html: the report's interactive page. Pick a configuration and a direction, drag a
slider over the sweep shifts and watch several latents at once, with the direction's label and
scores beside it.

Static on purpose: clusters and laptops that open a report are often offline and have no server,
so the page is one HTML file with inline CSS and JS (no CDN, no fetch(): it must work as file://),
its data embedded as a JS object, and one sprite PNG per direction, assets/explorer-*.png (rows =
window x latent, columns = sweep shifts, at the model's resolution; the browser crops and scales
it with CSS, pixelated, so brighter always means denser as in the other figures). The frames were
rendered by the directions stage (discovery/renders.py: explorer-<trial>.npz); this module only
reads files.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

from raylatent.errors import ConfigError
from raylatent.report.config import ReportConfig
from raylatent.discovery.renders import load as load_rendered
from raylatent.report import figures as F
from raylatent.report.records import load_labels

PAGE = "explorer.html"
PREFIX = "explorer-"   # sprites: assets/explorer-<trial>-<direction>.png (flat: every report image is in assets/)
TILE_PX = 192         # displayed size of one slice (an integer multiple of the image size, at least this)
DATA_START, DATA_END = "/*DATA*/", "/*END DATA*/"


def _direction(k: int, lab: dict | None, factors: dict) -> dict:
    """What the page says about direction k: its label, ρ of the labelled (else top) attribute,
    purity, the factors it was found for (beating chance) and, for a factor label, its score
    (|ρ| × purity) against the chance threshold that factor was held to."""
    row = lab["directions"][k] if lab and k < len(lab["directions"]) else None
    if row is None:
        return {"k": k, "label": "unlabelled", "attribute": None, "rho": None, "purity": None, "found": [],
                "score": None, "chance": None}
    label = row.get("label", "none")
    rho = row.get("rho") or {}
    attr = label if label in rho else row.get("top") if row.get("top") in rho else None
    f = factors.get(label, {})
    score = abs(rho[label]) * row["purity"] if label in rho and label in factors else None
    return {"k": k, "label": label, "attribute": attr, "rho": None if attr is None else round(float(rho[attr]), 3),
            "purity": round(float(row.get("purity", 0.0)), 3),
            "found": sorted(n for n, v in factors.items() if v.get("found") and v.get("direction") == k),
            "score": None if score is None else round(float(score), 3),
            "chance": f.get("chance") if score is not None else None}


def write_explorer(records: list[dict], ddir: Path, rendered: Path, man: dict, cfg: ReportConfig, out: Path,
                   title: str = "") -> dict | None:
    """Write out/explorer.html and its sprites (assets/explorer-*.png); returns the page's data, or None
    when the renders predate the explorer (nothing written)."""
    assets = out / "assets"
    for old in [out / PAGE, *assets.glob(f"{PREFIX}*.png")]:  # an earlier build's (other trials, other caps)
        old.unlink(missing_ok=True)
    entries = man.get("explorer")
    if not entries:
        return None
    assets.mkdir(parents=True, exist_ok=True)
    sweep = [float(s) for s in man["sweep"]]
    data: dict = {"sweep": sweep, "windows": [dict(w) for w in cfg.windows], "cap": cfg.explorer_directions,
                  "configs": []}
    for r in records:
        e = entries.get(r["trial"])
        if e is None:
            continue
        imgs = load_rendered(rendered, e["file"])["sweep"]  # D x S x N x H x W, model scale
        if imgs.ndim != 5 or imgs.shape[:2] != (len(e["directions"]), len(sweep)):
            raise ConfigError(f"{rendered / e['file']}: frames of shape {imgs.shape}, expected "
                              f"{len(e['directions'])} directions x {len(sweep)} shifts (delete {rendered} and rerun "
                              "python -m raylatent.ablate)")
        D, S, N, H, W = imgs.shape
        data.update(latents=N, size=[H, W], scale=max(1, -(-TILE_PX // H)))
        windowed = [F.window(imgs, w["center"], w["width"]) for w in cfg.windows]
        lab, factors = load_labels(ddir, r), r.get("factors") or {}
        dirs = []
        for j, k in enumerate(e["directions"]):
            # one sprite per direction: a row per (window, latent), a column per shift
            sprite = np.concatenate([wi[j].transpose(1, 2, 0, 3).reshape(N * H, S * W) for wi in windowed])
            name = f"{PREFIX}{r['trial']}-{k:03d}.png"
            Image.fromarray(sprite).save(assets / name)
            try:
                about = _direction(k, lab, factors)
            except (KeyError, TypeError, ValueError, AttributeError):
                raise ConfigError(f"{ddir / Path(r['directions']).parent / 'labels.json'}: direction {k} is damaged "
                                  "(rerun python -m raylatent.ablate to label the directions again)") from None
            dirs.append({**about, "sprite": f"assets/{name}"})
        from raylatent.discovery.methods import method_of

        data["configs"].append({"trial": r["trial"], "generator": r["generator"], "method": r["deformator"],
                                "role": method_of(r["deformator"]).role, "K": e["of"], "rca": r.get("rca"), "ls": r.get("ls"),
                                "factors_found": r.get("factors_found"), "directions": dirs})
    if not data["configs"]:
        return None
    (out / PAGE).write_text(_page(data, title))
    return data


def read_page_data(path: Path) -> dict:
    """The data embedded in an explorer.html (what the page shows; for tests and tools)."""
    text = Path(path).read_text()
    start, end = text.find(DATA_START), text.find(DATA_END)
    if start < 0 or end < start:
        raise ConfigError(f"{path}: no embedded explorer data (not an explorer page)")
    return json.loads(text[start + len(DATA_START):end])


def _page(data: dict, title: str) -> str:
    blob = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")  # no "</script" or "<!--" in the script
    fill = {"__TITLE__": html.escape(title or "raylatent explorer"), "__DATA__": f"{DATA_START}{blob}{DATA_END}"}
    page = re.sub("__TITLE__|__DATA__", lambda m: fill[m.group()], _HTML)  # one pass: no token inside a value
    # the page's own script is the only one a browser may run (its hash), whatever the data holds
    script = page[page.index("<script>") + len("<script>"):page.index("</script>")]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = (f"default-src 'none'; script-src 'sha256-{digest}'; img-src 'self' file: data:; "
           "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")
    return page.replace("<meta charset=\"utf-8\">",
                        f"<meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">", 1)


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font-family:sans-serif;margin:1.2em;background:#fafafa;color:#222}
h1{font-size:1.3em;margin:0 0 .4em}
.controls{display:flex;flex-wrap:wrap;gap:.6em 1.4em;align-items:center;margin:.6em 0}
.controls label{font-size:90%}
select{max-width:36em}
#shift{width:22em;vertical-align:middle}
#eps{display:inline-block;min-width:5em;font-weight:bold}
#info{background:#fff;border:1px solid #ccc;padding:.5em .8em;margin:.5em 0;font-size:95%}
#info .label{font-size:120%;font-weight:bold}
.found{color:#0a6d1f;font-weight:bold}.notfound{color:#8a5a00}
#view{display:flex;flex-wrap:wrap;gap:10px;margin-top:.6em}
figure{margin:0;text-align:center;font-size:85%}
.slice{background-repeat:no-repeat;image-rendering:pixelated;image-rendering:crisp-edges;background-color:#000;
border:1px solid #444}
.note{color:#555;font-size:85%;max-width:60em}
</style></head><body>
<h1>__TITLE__</h1>
<p class="note">Each configuration's directions, swept over the shift &epsilon; (the original slice at
&epsilon; = 0) from several random latents side by side. Images in a fixed HU window (brighter = denser).
&rho;: Spearman correlation between the shift and the attribute the direction is labelled with (else its
strongest one); purity: that attribute's share of all attribute effects. A direction is <em>found</em> for a
factor when it is labelled with it and its score (|&rho;| &times; purity) beats what the best of K random
directions reaches (the report's chance threshold). <span id="capnote"></span></p>
<div class="controls">
<label>Configuration <select id="config"></select></label>
<label>Direction <select id="direction"></select></label>
<label>Window <select id="window"></select></label>
</div>
<div class="controls">
<label>Shift <input type="range" id="shift" min="0" step="1"></label> <span id="eps"></span>
<button id="play" type="button">Play</button>
</div>
<div id="info"></div>
<div id="view"></div>
<script>
const DATA = __DATA__;
const $ = (id) => document.getElementById(id);
const fmt = (v, d) => (v === null || v === undefined) ? "\\u2014" : Number(v).toFixed(d);
const sgn = (v) => (v === null || v === undefined) ? "\\u2014" : (v >= 0 ? "+" : "") + Number(v).toFixed(2);
let timer = null;

function conf() { return DATA.configs[Number($("config").value)]; }
function dir() { return conf().directions[Number($("direction").value)]; }

function dirText(d) {
  let t = d.k + ": " + d.label;
  if (d.rho !== null) t += " \\u00b7 \\u03c1 " + sgn(d.rho) + " \\u00b7 purity " + fmt(d.purity, 2);
  if (d.found.length) t += " \\u2713 found";
  return t;
}

function fillConfigs() {
  DATA.configs.forEach((c, i) => {
    const o = document.createElement("option");
    o.value = i;
    o.textContent = c.trial + (c.rca === null || c.rca === undefined
      ? (c.role === "control" ? " (positive control)" : " (closed form)") : " (RCA " + fmt(c.rca, 3) + ")");
    $("config").appendChild(o);
  });
  DATA.windows.forEach((w, i) => {
    const o = document.createElement("option");
    o.value = i;
    o.textContent = w.name + " (C " + w.center + ", W " + w.width + " HU)";
    $("window").appendChild(o);
  });
  $("shift").max = DATA.sweep.length - 1;
  $("shift").value = Math.floor(DATA.sweep.length / 2);
}

function fillDirections() {
  const sel = $("direction");
  sel.innerHTML = "";
  const groups = [["found for a factor (beats chance)", (d) => d.found.length > 0],
                  ["labelled", (d) => !d.found.length && !["none", "entangled", "unlabelled"].includes(d.label)],
                  ["entangled", (d) => d.label === "entangled"],
                  ["none / unlabelled", (d) => d.label === "none" || d.label === "unlabelled"]];
  for (const [name, test] of groups) {
    const g = document.createElement("optgroup");
    g.label = name;
    conf().directions.forEach((d, i) => {
      if (!test(d)) return;
      const o = document.createElement("option");
      o.value = i;
      o.textContent = dirText(d);
      g.appendChild(o);
    });
    if (g.children.length) sel.appendChild(g);
  }
  const c = conf();
  $("capnote").textContent = c.directions.length < c.K
    ? "This configuration shows " + c.directions.length + " of its " + c.K + " directions (report.explorer_directions = "
      + DATA.cap + "; found and labelled directions first)."
    : "All " + c.K + " directions of this configuration are shown.";
}

function buildView() {
  const v = $("view");
  v.innerHTML = "";
  const [h, w] = DATA.size;
  for (let n = 0; n < DATA.latents; n++) {
    const f = document.createElement("figure");
    const s = document.createElement("div");
    s.className = "slice";
    s.id = "latent-" + n;
    s.style.width = w * DATA.scale + "px";
    s.style.height = h * DATA.scale + "px";
    const cap = document.createElement("figcaption");
    cap.textContent = "latent " + (n + 1);
    f.appendChild(s);
    f.appendChild(cap);
    v.appendChild(f);
  }
}

function show() {
  const c = conf(), d = dir(), s = Number($("shift").value), wi = Number($("window").value);
  const [h, w] = DATA.size, k = DATA.scale, S = DATA.sweep.length, N = DATA.latents;
  for (let n = 0; n < N; n++) {
    const el = $("latent-" + n);
    el.style.backgroundImage = "url('" + d.sprite + "')";
    el.style.backgroundSize = (S * w * k) + "px " + (DATA.windows.length * N * h * k) + "px";
    el.style.backgroundPosition = (-s * w * k) + "px " + (-(wi * N + n) * h * k) + "px";
  }
  const img = new Image();  // says when the sprite is there (tests wait on it) or that it is missing
  img.onload = () => { if (dir() === d) $("view").dataset.loaded = d.sprite; };
  img.onerror = () => console.error("explorer: missing image " + d.sprite + " (rebuild the report)");
  img.src = d.sprite;
  const eps = DATA.sweep[s];
  $("eps").textContent = "\\u03b5 = " + (eps >= 0 ? "+" : "") + eps.toFixed(2) + (eps === 0 ? " (original)" : "");
  $("view").dataset.frame = c.trial + "/" + d.k + "/" + s + "/" + wi;
  const info = $("info");  // fixed markup; every value from the data goes in as text, never as HTML
  info.innerHTML = "<span class='label'></span> \\u2014 <span class='where'></span><br><span class='scores'></span>"
    + "<br><span class='verdict'></span><br><span class='conf'></span>";
  info.querySelector(".label").textContent = d.label;
  info.querySelector(".where").textContent = "direction " + d.k + " of " + c.trial;
  info.querySelector(".scores").textContent = d.rho === null ? "no attribute scores (the direction is unlabelled)"
    : "\\u03c1(" + d.attribute + ") " + sgn(d.rho) + ", purity " + fmt(d.purity, 2)
      + (d.score === null ? "" : ", score " + fmt(d.score, 2)
         + (d.chance === null ? " (no chance threshold in this run)" : " vs chance " + fmt(d.chance, 2)));
  const v = info.querySelector(".verdict");
  const beats = DATA.configs.some((x) => x.directions.some((y) => y.chance !== null)) ? " (beats chance)" : "";
  v.textContent = d.found.length ? "\\u2713 found for " + d.found.join(", ") + beats
    : "\\u2717 not found for any factor";
  v.className = "verdict " + (d.found.length ? "found" : "notfound");
  info.querySelector(".conf").textContent = c.trial + ": " + c.method + ", K = " + c.K
    + (c.rca === null || c.rca === undefined ? "" : ", RCA " + fmt(c.rca, 3) + " (chance " + fmt(1 / c.K, 3) + ")")
    + (c.ls === null || c.ls === undefined ? "" : ", Ls " + fmt(c.ls, 3))
    + (c.factors_found === null || c.factors_found === undefined ? "" : ", factors found " + c.factors_found);
}

function play() {
  if (timer) { clearInterval(timer); timer = null; $("play").textContent = "Play"; return; }
  let step = 1;
  $("play").textContent = "Stop";
  timer = setInterval(() => {
    let s = Number($("shift").value) + step;
    if (s < 0 || s >= DATA.sweep.length) { step = -step; s += 2 * step; }
    $("shift").value = s;
    show();
  }, 150);
}

fillConfigs();
buildView();
fillDirections();
show();
$("config").addEventListener("change", () => { fillDirections(); show(); });
$("direction").addEventListener("change", show);
$("window").addEventListener("change", show);
$("shift").addEventListener("input", show);
$("play").addEventListener("click", play);
</script>
</body></html>
"""
