"""A small fabricated run directory with known metrics, built without Ray, for report tests."""
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from raylatent.config import GeneratorsConfig, ReportConfig
from raylatent.data.ingest import image_array
from raylatent.discovery.export import save_directions
from raylatent.models import make_generator
from raylatent.report.tables import COLS, ROWS


def fake_run(root: Path, metrics=None, seeds=(0, 1), K100: int = 40, steps=None, fid_network: str = "fallback:test",
             controls: bool = False) -> Path:
    """metrics(gen, rec, defo, K, seed) -> (rca, ls). K100 stands in for K=100 (smaller, faster);
    steps(gen, rec, defo, K) -> iterations (20 for every trial by default). `controls`: a
    supervised control per generator (direction i labelled with factor i; it finds the first six
    at K = 32 and the first four at K = 100) and a coverage.json in which the VAE does not
    generate breast."""
    root = Path(root)
    stages = {"data": "data/d", "generators": "generators/g", "directions": "directions/t"}
    for v in stages.values():
        (root / v).mkdir(parents=True, exist_ok=True)
    # shards
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 4)):
        (root / stages["data"] / split).mkdir(exist_ok=True)
        imgs = rng.uniform(-1, 1, (n, 32, 32)).astype(np.float32)
        pq.write_table(pa.table({"image": image_array(imgs), "slice_key": [f"{split}{i}" for i in range(n)]}),
                       root / stages["data"] / split / "part.parquet")
    (root / stages["data"] / "manifest.json").write_text(json.dumps({
        "fingerprint": "x", "counts": {"train": 6, "test": 4}, "patients": {"a": {}, "b": {}},
        "skipped": [], "settings": {"size": 32}}))
    # generators
    cfg = GeneratorsConfig(size=32, gan_width=4, vae_width=4, epochs=2, keep_last=1)
    for kind in ("gan", "vae"):
        torch.manual_seed(0)
        m = make_generator(kind, 32, 4)
        with torch.no_grad():  # calibrate BN statistics so that images depend on z in eval mode
            m.train()
            for mod in m.modules():
                if isinstance(mod, torch.nn.BatchNorm2d):
                    mod.momentum = None
            gen = m if kind == "gan" else m.decoder
            gen(torch.randn(64, 32))
            if kind == "vae":
                m.encoder(torch.rand(64, 1, 32, 32) * 2 - 1)
        d = root / stages["generators"] / kind
        d.mkdir(exist_ok=True)
        torch.save({"model": m.state_dict(), "kind": kind, "epoch": 1, "config": json.dumps(asdict(cfg))},
                   d / "generator.pt")
        hist = [{"epoch": e, "fid": 10.0 - e, "loss_D": 1.0, "loss_G": 2.0, "loss": 0.5, "recon_mse": 0.1}
                for e in range(2)]
        (d / "metrics.json").write_text(json.dumps({"chosen_epoch": 1, "fid": 9.0, "fid_network": fid_network,
                                                    "candidates": [{"epoch": 1, "fid": 9.0}], "history": hist}))
    # directions
    metrics = metrics or (lambda g, r, d, k, s: (0.5, 0.5))
    records = []
    configs = [(g, r, d, k) for g, r, _ in ROWS for d, k, _ in COLS] + [(g, "lenet", "random", 100) for g in ("gan", "vae")]
    for g, r, d, k in configs:
        for s in seeds:
            name = f"{g}-{r}-{d}-K{k}-s{s}"
            kk = K100 if k == 100 else k
            A = torch.randn(32, kk, generator=torch.Generator().manual_seed(s))
            tdir = root / stages["directions"] / "trials" / name
            tdir.mkdir(parents=True, exist_ok=True)
            save_directions(tdir / "directions.npz", A / A.norm(dim=0), {"K": kk})
            rca, ls = metrics(g, r, d, k, s)
            from raylatent.interpret.labels import ATTRIBUTES, SEMANTIC

            # proj trials find rotation (direction 3, beating a chance threshold of 0.5); direction 5
            # is entangled, the rest track nothing. Scored as interpret/labels.py and chance.py do.
            found = {a: {"direction": i % kk, "rho": 0.9 if (a == "rotation" and d == "proj") else 0.3,
                         "purity": 0.7, "found": a == "rotation" and d == "proj",
                         "score": 0.63 if (a == "rotation" and d == "proj") else 0.0, "chance": 0.5}
                     for i, a in enumerate(SEMANTIC)}
            labs = ["rotation" if (i == 3 and d == "proj") else "entangled" if i == 5 else "none" for i in range(kk)]
            rows = [{"direction": i, "label": x, "top": "rotation" if x == "rotation" else "width", "purity": 0.7 if x == "rotation" else 0.2,
                     "rho": {a: (0.9 if a == "rotation" and x == "rotation" else 0.7 if x == "entangled" else 0.1)
                             for a in ATTRIBUTES}} for i, x in enumerate(labs)]
            (tdir / "labels.json").write_text(json.dumps({"directions": rows, "factors": found}))
            (tdir / "curve.json").write_text(json.dumps([{"step": 10, "rca": rca / 2, "ls": ls * 2},
                                                         {"step": 20, "rca": rca, "ls": ls}]))
            records.append({"trial": name, "generator": g, "reconstructor": r, "deformator": d, "K": k,
                            "seed": s, "iterations": steps(g, r, d, k) if steps else 20, "rca": rca, "ls": ls,
                            "shift_mae": ls / 0.25, "gamma": 0.25, "wall_s": 1.0,
                            "directions": f"trials/{name}/directions.npz", "labels": labs, "factors": found,
                            "factors_found": sum(v["found"] for v in found.values())})
    if controls:
        for r in records:  # as the directions stage marks them from coverage.json
            if r["generator"] == "vae":
                r["factors"]["breast"]["generated"] = False
        records += _controls(root / stages["directions"])
    (root / stages["directions"] / "results.json").write_text(json.dumps(records))
    rep = asdict(ReportConfig(max_chart_rows=16, gif_dirs_per_file=10))
    from raylatent.tune.stage import render_for_report

    rendered = render_for_report(root / stages["generators"], root / stages["directions"], root / stages["data"],
                                 rep["shifts"], rep["z_direction"], log=lambda *_: None,
                                 explorer_directions=rep["explorer_directions"])
    stages["renders"] = str(rendered.relative_to(root))
    (root / "latest.json").write_text(json.dumps({"grid": "fake", "stages": stages, "data_source": "fabricated",
                                                  "hardware": "test", "report": rep}))
    (root / "stage_times.json").write_text(json.dumps({"ingest": 1.0, "generators": 2.0, "directions": 3.0}))
    return root


def _controls(ddir: Path) -> list[dict]:
    """fake_run's control records (supervised, 8 directions per generator) and coverage.json."""
    from raylatent.interpret.labels import ATTRIBUTES, FACTORS

    records, cov = [], {}
    for g in ("gan", "vae"):
        name = f"{g}-none-supervised-K8-s0"
        tdir = ddir / "trials" / name
        tdir.mkdir(parents=True, exist_ok=True)
        A = torch.randn(32, 8, generator=torch.Generator().manual_seed(7))
        save_directions(tdir / "directions.npz", A / A.norm(dim=0), {"baseline": "supervised"})
        found = {a: {"direction": i, "rho": 0.9, "purity": 0.8, "found": i < 4, "score": 0.72, "chance": 0.6}
                 for i, a in enumerate(FACTORS)}
        rows = [{"direction": i, "label": a, "top": a, "purity": 0.8, "rho": {b: 0.9 if b == a else 0.1 for b in ATTRIBUTES}}
                for i, a in enumerate(FACTORS)]
        (tdir / "labels.json").write_text(json.dumps({"directions": rows, "factors": found, "control_factors": list(FACTORS)}))
        records.append({"trial": name, "generator": g, "reconstructor": "none", "deformator": "supervised", "K": 8,
                        "seed": 0, "iterations": 0, "rca": None, "ls": None, "shift_mae": None, "gamma": None,
                        "wall_s": 0.0, "directions": f"trials/{name}/directions.npz", "labels": list(FACTORS),
                        "factors": found, "factors_found": 4,
                        "found_by_K": {"32": list(FACTORS[:6]), "100": list(FACTORS[:4])}})
        cov[g] = {"samples": 256, "data_slices": 10, "generated": 8 - (g == "vae"),
                  "factors": {a: {"spread_ratio": 0.2 if (g == "vae" and a == "breast") else 0.9, "distance": 0.3,
                                  "generated": not (g == "vae" and a == "breast")} for a in FACTORS},
                  "memorisation": {"median_ratio": 0.1 if g == "gan" else 1.1, "median_sample_distance": 1.0,
                                   "median_held_out_distance": 2.0, "nearer_than_held_out": 0.9 if g == "gan" else 0.0,
                                   "memorised": g == "gan"}}
    (ddir / "coverage.json").write_text(json.dumps(cov))
    return records
