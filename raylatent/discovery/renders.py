"""The images the report shows, rendered where the generators are loaded (the directions stage),
so the reporter reads files only and stays fast.

Images are kept in the model's [-1, 1] scale (float16, compressed npz): the report chooses the HU
window and the layout. What is rendered depends on the directions, the generators, the test split
(interpolation) and the report's shift settings, so the folder is keyed by those settings
(`render_key`) inside the directions stage's folder, and a change of windows or layout re-renders
nothing. `renders.json` says what each file holds and which choices were made (the z direction and
why, the inversion used, which directions the explorer shows).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from raylatent.discovery.export import load_shift_arrays, traversal
from raylatent.discovery.methods import method_of
from raylatent.discovery.records import write_json

MANIFEST = "renders.json"
RENDERS_VERSION = "renders-v3"   # v2: the explorer's frames (explorer-<trial>.npz); v3: Fig 8's direction from the labels
SWEEP_STEPS = 9   # frames of an animation, one way (the report plays them back and forth)
RANDOM_VS_DISCOVERED = 5
EXPLORER_DIRECTIONS = 32  # directions per configuration in the explorer, by default (report.explorer_directions)
EXPLORER_LATENTS = 4  # latents side by side in the explorer (several, so an effect is not one latent's)


def render_key(shifts, z_direction: int, explorer_directions: int = EXPLORER_DIRECTIONS) -> str:
    from raylatent.stages import stage_key

    return stage_key({"shifts": [float(s) for s in shifts], "z_direction": int(z_direction),
                      "explorer_directions": int(explorer_directions), "code": RENDERS_VERSION})


def _latents(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _save(path: Path, **arrays) -> str:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.npz")
    np.savez_compressed(tmp, **{k: np.asarray(v, dtype=np.float16) for k, v in arrays.items()})
    os.replace(tmp, path)
    return path.name


def _chart(G, A: dict, dirs: list[int], shifts, seed: int) -> np.ndarray:
    """D x S x H x W: each direction swept over `shifts` from one latent."""
    z = _latents(1, A["A"].shape[0], seed)
    return traversal(G, A, z, shifts, dirs)[:, :, 0, 0].numpy()


def explorer_order(K: int, labels: dict | None, record: dict) -> list[int]:
    """The directions the explorer shows first: those found for a factor (beating chance), then
    the other labelled ones, then entangled, then none; by index within each. At paper scale only
    the first `report.explorer_directions` are rendered, so the cap drops the least telling ones."""
    found = {f["direction"] for f in (record.get("factors") or {}).values() if f.get("found")}
    names = [d.get("label", "none") for d in labels["directions"]] if labels and len(labels.get("directions", [])) == K \
        else ["none"] * K

    def rank(k: int) -> int:
        return 0 if k in found else 3 if names[k] == "none" else 2 if names[k] == "entangled" else 1

    return sorted(range(K), key=lambda k: (rank(k), k))


def _unit_length_first(records: list[dict]) -> list[dict]:
    """Learned unit-length trials, the paper's (proj) first, then larger K, LeNet first."""
    order = ("proj", "unit")
    return sorted([r for r in records if r["deformator"] in order],
                  key=lambda r: (order.index(r["deformator"]), -r["K"], r["reconstructor"] != "lenet"))


def z_direction(G, A: dict, labels: dict | None, configured: int) -> tuple[int, str]:
    """Fig 8's direction: configured, else the automatic z label, else the direction the z
    regressor scores highest though below chance (the labels have it: no new measurement), else
    (labels without z: no regressor was fitted) the direction that moves lung area most
    consistently across latents (a z proxy, measured here)."""
    from raylatent.data.dicom import model_to_hu
    from raylatent.interpret.attributes import measure_batch

    if 0 <= configured < A["A"].shape[1]:
        return configured, "configured"
    z = (labels or {}).get("factors", {}).get("z") or {}
    if z.get("found"):
        return int(z["direction"]), "the automatic z-position label"
    if z.get("direction") is not None and np.isfinite(z.get("rho", np.nan)) and abs(z["rho"]) > 0:  # 0: z unmeasured
        return int(z["direction"]), (f"no direction beat chance for z: the one the z regressor scores highest "
                                     f"(|rho| {abs(z['rho']):.2f}, purity {z.get('purity', float('nan')):.2f})")
    imgs = traversal(G, A, _latents(8, A["A"].shape[0], 5), [-3.0, 3.0])[:, :, :, 0]  # D x 2 x N x H x W
    scores = []
    for d in range(A["A"].shape[1]):
        lo = measure_batch(model_to_hu(imgs[d, 0].numpy()))["lung_area"]
        hi = measure_batch(model_to_hu(imgs[d, 1].numpy()))["lung_area"]
        delta = np.nan_to_num(hi - lo)
        scores.append(abs(np.mean(np.sign(delta))) * np.mean(np.abs(delta)))
    return int(np.argmax(scores)), "no z label: largest consistent lung-area change"


def render_all(ddir: Path, out: Path, records: list[dict], models: dict, test_images: torch.Tensor,
               shifts, configured_z: int = -1, log=print, explorer_directions: int = EXPLORER_DIRECTIONS) -> dict:
    """Render every figure's images under `out`; returns (and writes) the manifest. The explorer
    gets, per learned or closed-form trial, at most `explorer_directions` directions (explorer_order)
    swept over the sweep shifts from EXPLORER_LATENTS latents: D x S x N x H x W."""
    from raylatent.models import as_generator, kind_of

    if (out / MANIFEST).exists():
        return json.loads((out / MANIFEST).read_text())
    out.mkdir(parents=True, exist_ok=True)
    G = {k: as_generator(m).eval() for k, m in models.items()}
    shifts = [float(s) for s in shifts]
    sweep = list(np.linspace(-max(shifts), max(shifts), SWEEP_STEPS))
    man: dict = {"shifts": shifts, "sweep": [float(s) for s in sweep], "charts": {}, "random_vs_discovered": {},
                 "z_position": None, "interpolation": {}, "explorer": {}}
    arrays = {r["trial"]: load_shift_arrays(ddir / r["directions"]) for r in records if r["generator"] in G}
    log(f"directions: rendering the report's images for {len(arrays)} direction sets")
    with torch.no_grad():
        for r in records:
            if r["generator"] not in G or method_of(r["deformator"]).role == "reference":
                continue
            A = arrays[r["trial"]]
            ids = list(range(A["A"].shape[1]))
            man["charts"][r["trial"]] = _save(out / f"chart-{r['trial']}.npz", shifts=_chart(G[r["generator"]], A, ids, shifts, 0),
                                              sweep=_chart(G[r["generator"]], A, ids, sweep, 0))
            order = explorer_order(len(ids), _read(ddir / Path(r["directions"]).parent / "labels.json"), r)
            shown = order[:explorer_directions]
            z = _latents(EXPLORER_LATENTS, A["A"].shape[0], 0)
            man["explorer"][r["trial"]] = {
                "directions": shown, "of": len(ids),
                "file": _save(out / f"explorer-{r['trial']}.npz",
                              sweep=traversal(G[r["generator"]], A, z, sweep, shown)[:, :, :, 0].numpy())}
        for gen in sorted(G):
            rnd = [r for r in records if r["generator"] == gen and method_of(r["deformator"]).role == "reference"]
            disc = _unit_length_first([r for r in records if r["generator"] == gen])
            if not rnd or not disc:
                continue
            ids = list(range(min(RANDOM_VS_DISCOVERED, *(arrays[x["trial"]]["A"].shape[1] for x in (rnd[0], disc[0])))))
            man["random_vs_discovered"][gen] = {
                "random": rnd[0]["trial"], "discovered": disc[0]["trial"],
                "file": _save(out / f"random-vs-discovered-{gen}.npz",
                              random=_chart(G[gen], arrays[rnd[0]["trial"]], ids, shifts, 1),
                              discovered=_chart(G[gen], arrays[disc[0]["trial"]], ids, shifts, 1))}
        # the paper's Fig 8 comes from its VAE: prefer a generator with an encoder
        cands = sorted(_unit_length_first([r for r in records if r["generator"] in G]),
                       key=lambda r: not kind_of(r["generator"]).has_encoder)
        if cands:
            r = cands[0]
            A = arrays[r["trial"]]
            labels = _read(ddir / Path(r["directions"]).parent / "labels.json")
            k, how = z_direction(G[r["generator"]], A, labels, configured_z)
            imgs = traversal(G[r["generator"]], A, _latents(24, A["A"].shape[0], 8), shifts, [k])[0, :, :, 0]
            man["z_position"] = {"trial": r["trial"], "direction": k, "how": how,
                                 "file": _save(out / "z-position.npz", images=imgs.permute(1, 0, 2, 3).numpy())}
        if len(test_images) >= 2:
            pair = test_images[[0, len(test_images) // 2]]
            for kind in sorted(G, key=lambda k: not kind_of(k).has_encoder):
                kk = kind_of(kind)
                with torch.enable_grad():  # a reverse search needs gradients
                    z = kk.invert(models[kind], pair)
                t = torch.linspace(0, 1, 8)[:, None]
                path = G[kind](z[0] * (1 - t) + z[1] * t)[:, 0]
                row = torch.cat([pair[0], path, pair[1]]).numpy()[None]
                man["interpolation"][kind] = {"title": kk.title, "inversion": kk.inversion,
                                              "file": _save(out / f"interpolation-{kind}.npz", row=row)}
    write_json(out / MANIFEST, man, indent=1)
    return man


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def load(out: Path, name: str) -> dict[str, np.ndarray]:
    """A rendered file's arrays, as float32 (no pickles); a one-line error when it is gone."""
    from raylatent.errors import ConfigError

    from raylatent.data.npz import load_npz

    try:
        return {k: v.astype(np.float32) for k, v in load_npz(out / name, what="rendered images").items()}
    except ConfigError as e:
        raise ConfigError(f"{e}; delete {out} and rerun python -m raylatent.ablate to render them again") from None
