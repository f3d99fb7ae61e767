"""Use a finished run from Python: its generators, each trial's directions, labels and scores, and
images along any direction.

    import raylatent
    run = raylatent.load_run("runs/smoke")
    best = run.best("gan")                         # the trial with the most factors found
    img = run.render(best, direction=3, shifts=[-4, 0, 4], window="lung")   # uint8, in a HU window

Reads only what the stages wrote (latest.json, results.json, directions/*.npz, generator.pt);
no Ray, so it works on a laptop with a run copied from a cluster.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from raylatent.config import ConfigError

WINDOWS = {"lung": (-600.0, 1500.0), "mediastinal": (40.0, 400.0)}  # (center, width) HU, as the report's


@dataclass
class Run:
    """A finished run: `records` are results.json's rows (one per trial, closed-form sets too)."""

    path: Path
    records: list[dict]
    stages: dict
    _generators: dict = field(default_factory=dict, repr=False)

    @property
    def trials(self) -> list[str]:
        return [r["trial"] for r in self.records]

    def record(self, trial: str | dict) -> dict:
        """results.json's row of a trial (its RCA, Ls, labels, factors found, truth scores)."""
        name = trial["trial"] if isinstance(trial, dict) else trial
        for r in self.records:
            if r["trial"] == name:
                return r
        raise ConfigError(f"trial {name!r} is not in {self.path}: its trials are {', '.join(self.trials)}")

    def best(self, generator: str) -> dict:
        """The learned trial on `generator` with the most factors found against chance (ties: the
        most evidence over chance, then RCA): the one the report's "What we found" shows."""
        from raylatent.discovery.records import best_learned

        best = best_learned([r for r in self.records if r["generator"] == generator])
        if best is None:
            raise ConfigError(f"no learned trial on generator {generator!r} in {self.path}")
        return best

    def generator(self, kind: str) -> torch.nn.Module:
        """The z -> image module of a generator of this run (loaded once, weights only, CPU)."""
        if kind not in self._generators:
            from raylatent.models.export import load_generator

            self._generators[kind] = load_generator(self.path / self.stages["generators"], kind)
        return self._generators[kind]

    def directions(self, trial: str | dict) -> dict[str, np.ndarray]:
        """The trial's exported direction arrays: `A` (d x K unit columns) and, for the authors'
        proj deformator, `W` and `b` (its exact, bent path)."""
        from raylatent.discovery.export import load_shift_arrays

        r = self.record(trial)
        return load_shift_arrays(self.path / self.stages["directions"] / r["directions"])

    @torch.no_grad()
    def render(self, trial: str | dict, direction: int, shifts=(-6, -3, 0, 3, 6), n_latents: int = 4,
               seed: int = 0, window: str | None = "lung") -> np.ndarray:
        """Images along one direction: (n_latents, len(shifts), S, S), uint8 in a HU window
        ("lung", "mediastinal"), or HU (float32) with window=None."""
        from raylatent.data.dicom import model_to_hu
        from raylatent.discovery.export import traversal

        shifts = _finite_list(shifts, "shifts", MAX_SHIFTS)
        n_latents = _whole(n_latents, "n_latents", 1, MAX_LATENTS)
        seed = _whole(seed, "seed", 0, 2 ** 63 - 1)
        r = self.record(trial)
        arrays = self.directions(r)
        direction = _direction(direction, r, arrays)
        if window is not None and window not in WINDOWS:
            raise ConfigError(f"window {window!r}: one of {', '.join(WINDOWS)} or None (HU)")
        G = self.generator(r["generator"])
        z = torch.randn(n_latents, arrays["A"].shape[0], generator=torch.Generator().manual_seed(seed))
        x = traversal(G, arrays, z, shifts, [direction])
        x = x[0, :, :, 0].transpose(0, 1).numpy()  # latents x shifts x S x S, model scale
        if window is None:
            return model_to_hu(x).astype(np.float32)
        from raylatent.report.figures import window as to_window

        return to_window(x, *WINDOWS[window])

    def edit(self, image, trial: str | dict, direction: int, eps: float, out: str | Path | None = None) -> np.ndarray:
        """Move a real slice along a direction: encode it (the generator's own inversion: the VAE's
        encoder), add the direction's shift of size eps, decode. `image`: HU array, or a CT DICOM
        file (its first frame). Returns the edited slice in HU at the run's image size; with `out`,
        also writes it as a DICOM marked DERIVED/SECONDARY, with new UIDs and no patient identity."""
        from raylatent.data.dicom import hu_to_model, model_to_hu, read_ct
        from raylatent.models import as_generator
        from raylatent.models.directions import rebuild
        from raylatent.models.export import build_generator, read_generator
        from raylatent.models.registry import kind_of

        r = self.record(trial)
        kk = kind_of(r["generator"])
        if not kk.has_encoder:
            raise ConfigError(f"{r['trial']}: the {r['generator']} generator has no encoder to edit a real slice with "
                              f"(use a trial on a generator with one, e.g. the VAE)")
        eps = _finite(eps, "eps")
        try:
            hu = read_ct(Path(image))[0].hu if isinstance(image, (str, Path)) else np.asarray(image, dtype=np.float32)
        except Exception as e:  # pydicom's and our own reasons a file is not a CT slice
            raise ConfigError(f"{image}: not a readable CT slice ({str(e).splitlines()[0] if str(e) else type(e).__name__})")
        from raylatent.data.dicom import MAX_SIDE, MIN_SIDE

        if hu.ndim != 2 or min(hu.shape) < MIN_SIDE or max(hu.shape) > MAX_SIDE:
            raise ConfigError(f"image of shape {tuple(hu.shape)}: give one 2-D slice of {MIN_SIDE} to {MAX_SIDE} "
                              f"pixels a side (HU)")
        if not np.isfinite(hu).all():
            raise ConfigError(f"image: {int((~np.isfinite(hu)).sum())} of {hu.size} pixels are NaN or infinite; "
                              f"give a slice in HU")
        saved = read_generator(self.path / self.stages["generators"], r["generator"])
        config = json.loads(saved["config"])
        x = torch.from_numpy(hu_to_model(hu, int(config["size"])))[None, None]
        model = build_generator(r["generator"], config, saved["model"])
        G = as_generator(model).eval()  # the decoder of the model that encodes
        arrays = self.directions(r)
        direction = _direction(direction, r, arrays)
        with torch.no_grad():
            z = kk.invert(model, x)
            z = z + rebuild(arrays)(z, torch.tensor([direction]), torch.tensor([float(eps)]))
            edited = model_to_hu(G(z)[0, 0].numpy()).astype(np.float32)
        if out is not None:
            _write_derived(edited, Path(out), f"raylatent edit: {r['trial']} direction {direction} eps {eps:+g}")
        return edited


MAX_SHIFTS, MAX_LATENTS = 64, 256  # one figure's worth; more is a typo, not a render


def _finite(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
        raise ConfigError(f"{what} {v!r}: give a finite number")
    return float(v)


def _finite_list(vs, what: str, most: int) -> list[float]:
    try:
        vs = list(vs)
    except TypeError:
        raise ConfigError(f"{what} {vs!r}: give a list of finite numbers") from None
    if not 1 <= len(vs) <= most:
        raise ConfigError(f"{what}: {len(vs)} values; give 1 to {most}")
    return [_finite(v, f"{what} value") for v in vs]


def _whole(v, what: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
        raise ConfigError(f"{what} {v!r}: give a whole number in [{lo}, {hi}]")
    return int(v)


def _direction(direction, r: dict, arrays: dict) -> int:
    K = arrays["A"].shape[1]
    if isinstance(direction, bool) or not isinstance(direction, (int, np.integer)) or not 0 <= direction < K:
        raise ConfigError(f"direction {direction!r}: {r['trial']} has directions 0..{K - 1}")
    return int(direction)


def _write_derived(hu: np.ndarray, path: Path, description: str) -> None:
    """A minimal CT image the viewers open, that says it was made by a model, not a scanner."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    from pydicom import Dataset

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.ImageType = "CT", ["DERIVED", "SECONDARY"]
    ds.PatientName, ds.PatientID = "ANONYMOUS", "raylatent"
    ds.SeriesDescription, ds.DerivationDescription = description[:64], description
    ds.BurnedInAnnotation = "NO"
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
    ds.PixelData = np.round(hu).astype(np.int16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)



def load_run(path: str | Path) -> Run:
    """A finished run directory (what `python -m raylatent.ablate --out PATH` wrote)."""
    path = Path(path).expanduser().resolve()
    latest = path / "latest.json"
    if not latest.is_file():
        raise ConfigError(f"{path}: no latest.json (not a finished run; run python -m raylatent.ablate "
                          f"--out {path} first)")
    from raylatent.report.records import inside, load_records, read_json_in

    info = read_json_in(latest, path)
    stages = info.get("stages") if isinstance(info, dict) else None
    if not (isinstance(stages, dict) and all(isinstance(stages.get(k), str) for k in ("generators", "directions"))):
        raise ConfigError(f"{latest}: not a raylatent run record (no stages; rerun python -m raylatent.ablate)")
    # the folders the API reads stay inside the run (a link or '..' out of it is refused); a
    # replicate's data folder is its main run's, which the API never reads
    stages = {**stages, **{k: os.path.relpath(inside(path, stages[k], f"stages.{k}", latest), path)
                           for k in ("generators", "directions")}}
    ddir = path / stages["directions"]
    return Run(path, load_records(ddir / "results.json", ddir), stages)
