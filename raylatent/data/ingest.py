"""DICOM tree -> Parquet shards, decoded in parallel on Ray Data.

Two passes, so that nothing identifying is ever written and the split is exact:
1. decode (Ray Data `map_batches`, one task per CPU): every file becomes rows of preprocessed
   images with *salted* keys, or a skip row with its reason, in a staging folder;
2. plan (driver, metadata only): drop duplicate SOP instances, assign patients to splits, order
   slices by z within their series, join phantom factors; then finalise (Ray Data again) into
   `OUT/train` and `OUT/test`, write `manifest.json` last. A stage is done iff its manifest
   carries the same fingerprint (settings + file listing), so reruns are free.

Image column: pyarrow's canonical `arrow.fixed_shape_tensor` extension (float32, [size, size]),
readable by plain pyarrow as `table["image"].combine_chunks().to_numpy_ndarray()`.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import time
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads

from raylatent.config import ConfigError, IngestConfig
from raylatent.data.dicom import SkipFile, find_files, hu_to_model, read_ct, salted_key

INGEST_VERSION = "ingest-v1"
FACTORS_FILE = "factors.csv"
SIDECARS = {FACTORS_FILE, "phantom.json"}  # the phantom's own files at the top of --src
MANIFEST = "manifest.json"
SPLITS = ("train", "test")
PART = "_part"  # Hive partition column of the finalize pass; becomes the train/ and test/ folders


def _staging_schema() -> pa.Schema:
    return pa.schema([
        ("row_id", pa.string()), ("rel_path", pa.string()), ("ok", pa.bool_()),
        ("reason", pa.string()), ("patient_key", pa.string()), ("series_key", pa.string()),
        ("sop_key", pa.string()), ("frame", pa.int32()), ("z_mm", pa.float64()),
        ("instance", pa.int32()), ("image", pa.binary()),
    ])


def decode_batch(batch: dict, src: str, size: int, salt: str) -> pa.Table:
    """Ray Data map_batches function: a batch of relative paths -> staging rows."""
    rows: dict[str, list] = {name: [] for name in _staging_schema().names}

    def add(**kw):
        for k in rows:
            rows[k].append(kw.get(k))

    for rel in batch["path"]:
        rel = str(rel)
        try:
            frames = read_ct(os.path.join(src, rel))
        except SkipFile as e:
            add(row_id=f"{rel}#-1", rel_path=rel, ok=False, reason=str(e), frame=-1)
            continue
        except Exception as e:  # a decoder bug must not stop 246k files
            add(row_id=f"{rel}#-1", rel_path=rel, ok=False, frame=-1,
                reason=f"unexpected decode error ({type(e).__name__})")
            continue
        for fr in frames:
            pid = fr.patient_id or f"series:{fr.series_uid}"
            add(row_id=f"{rel}#{fr.frame}", rel_path=rel, ok=True, reason="",
                patient_key=salted_key(salt, pid),
                series_key=salted_key(salt, fr.series_uid),
                sop_key=salted_key(salt, fr.sop_uid), frame=fr.frame,
                z_mm=None if math.isnan(fr.z_mm) else fr.z_mm, instance=fr.instance_number,
                image=hu_to_model(fr.hu, size).tobytes())
    return pa.Table.from_pydict(rows, schema=_staging_schema())


def image_array(images: np.ndarray) -> pa.ExtensionArray:
    """N x S x S float32 -> Arrow's canonical fixed-shape tensor column."""
    return pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(images, np.float32))


def output_schema(size: int, factor_names: list[str]) -> pa.Schema:
    return pa.schema([
        ("image", pa.fixed_shape_tensor(pa.float32(), [size, size])),
        ("patient_key", pa.string()), ("series_key", pa.string()), ("slice_key", pa.string()),
        ("z_mm", pa.float64()), ("slice_index", pa.int32()), ("slice_frac", pa.float32()),
        ("split", pa.string()), *[(n, pa.float32()) for n in factor_names], (PART, pa.string())])


def finalize_batch(batch: pa.Table, plan: dict, size: int, factor_names: list[str]) -> pa.Table:
    """Ray Data map_batches function: staging rows -> output rows (planned ones only)."""
    ids = batch.column("row_id").to_pylist()
    keep = [i for i, r in enumerate(ids) if r in plan]
    if not keep:  # a block holding only skipped files or duplicates
        return output_schema(size, factor_names).empty_table()
    sub = batch.take(pa.array(keep, pa.int64()))
    plans = [plan[ids[i]] for i in keep]
    buf = b"".join(sub.column("image").to_pylist())
    images = np.frombuffer(buf, np.float32).reshape(len(keep), size, size)
    cols = {
        "image": image_array(images),
        "patient_key": sub.column("patient_key"),
        "series_key": sub.column("series_key"),
        "slice_key": pa.array([p["slice_key"] for p in plans], pa.string()),
        "z_mm": sub.column("z_mm"),
        "slice_index": pa.array([p["slice_index"] for p in plans], pa.int32()),
        "slice_frac": pa.array([p["slice_frac"] for p in plans], pa.float32()),
        "split": pa.array([p["split"] for p in plans], pa.string()),
    }
    cols[PART] = cols["split"]
    for name in factor_names:
        cols[name] = pa.array([p["factors"].get(name, np.nan) for p in plans], pa.float32())
    cols[PART] = cols.pop(PART)  # last, as in the schema
    return pa.table(cols, schema=output_schema(size, factor_names))


def fingerprint(cfg: IngestConfig, files: list[str]) -> str:
    h = hashlib.sha256()
    settings = dict(v=INGEST_VERSION, size=cfg.size, test_frac=cfg.test_frac, seed=cfg.seed,
                    salt=hashlib.sha256(cfg.salt.encode()).hexdigest())
    h.update(json.dumps(settings, sort_keys=True).encode())
    for rel in files:
        st = os.stat(os.path.join(cfg.src, rel))
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def split_patients(patient_keys: list[str], test_frac: float, seed: int) -> dict[str, str]:
    """Exact, deterministic patient-level split: rank by a seeded hash, first ones are test."""
    keys = sorted(set(patient_keys), key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())
    n = len(keys)
    n_test = 0 if n < 2 or test_frac <= 0 else min(n - 1, max(1, round(test_frac * n)))
    return {k: ("test" if i < n_test else "train") for i, k in enumerate(keys)}


def read_factors(src: str, salt: str) -> tuple[dict[str, dict[str, float]], list[str]]:
    """factors.csv (phantom ground truth), keyed by salted SOP key; ([], {}) when absent."""
    path = Path(src) / FACTORS_FILE
    if not path.exists():
        return {}, []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        names = [c for c in (reader.fieldnames or []) if c.startswith("factor_")]
        if "sop_instance_uid" not in (reader.fieldnames or []):
            raise ConfigError(f"{path}: needs a sop_instance_uid column (regenerate it with raylatent.phantom)")
        table = {salted_key(salt, r["sop_instance_uid"]): {n: float(r[n]) for n in names} for r in reader}
    return table, names


def plan_rows(meta: pa.Table, cfg: IngestConfig, factors: dict) -> tuple[dict, list, dict]:
    """Metadata only -> (row_id -> plan, skipped entries, per-patient counts)."""
    m = meta.to_pydict()
    n = len(m["row_id"])
    skipped: list[dict] = []
    order = sorted(range(n), key=lambda i: (m["rel_path"][i], m["frame"][i]))
    seen: dict[tuple, str] = {}
    good: list[int] = []
    for i in order:
        if not m["ok"][i]:
            skipped.append({"path": m["rel_path"][i], "reason": m["reason"][i]})
            continue
        ident = (m["sop_key"][i], m["frame"][i])
        if ident in seen:
            if seen[ident] != m["rel_path"][i]:
                skipped.append({"path": m["rel_path"][i], "reason": "duplicate SOP instance"})
            continue
        seen[ident] = m["rel_path"][i]
        good.append(i)
    split = split_patients([m["patient_key"][i] for i in good], cfg.test_frac, cfg.seed)
    by_series: dict[str, list[int]] = defaultdict(list)
    for i in good:
        by_series[m["series_key"][i]].append(i)
    plan: dict[str, dict] = {}
    for rows in by_series.values():
        # Superior (largest z) first so slice_frac 0 is the head end, like the phantom's factor_z.
        rows.sort(key=lambda i: (-(m["z_mm"][i]) if m["z_mm"][i] is not None else math.inf,
                                 m["instance"][i], m["sop_key"][i], m["frame"][i]))
        last = max(len(rows) - 1, 1)
        for idx, i in enumerate(rows):
            plan[m["row_id"][i]] = dict(
                split=split[m["patient_key"][i]], slice_index=idx, slice_frac=idx / last,
                slice_key=salted_key(cfg.salt, f"{m['sop_key'][i]}#{m['frame'][i]}"),
                factors=factors.get(m["sop_key"][i], {}))
    patients: dict[str, dict] = {}
    for i in good:
        p = patients.setdefault(m["patient_key"][i], {"split": split[m["patient_key"][i]], "slices": 0})
        p["slices"] += 1
    # Folder names in TCIA layouts are patient IDs: replace those by their pseudonym.
    known = set(patients)
    for entry in skipped:
        parts = Path(entry["path"]).parts
        entry["path"] = str(Path(*[f"patient-{salted_key(cfg.salt, p)[:12]}"
                                   if salted_key(cfg.salt, p) in known else p for p in parts]))
    skipped.sort(key=lambda e: e["path"])
    return plan, skipped, patients


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    os.replace(tmp, path)


def load_manifest(out: str | os.PathLike) -> dict | None:
    path = Path(out) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def ingest(cfg: IngestConfig, log=print) -> dict:
    """Run (or skip) the ingest stage; returns the manifest."""
    import ray

    t0 = time.time()
    out = Path(cfg.out)
    files = [f for f in find_files(cfg.src) if f not in SIDECARS]
    fp = fingerprint(cfg, files)
    old = load_manifest(out)
    if old is not None and old.get("fingerprint") == fp:
        old["skipped_run"] = True
        log(f"ingest: {out} is up to date ({old['counts']['train']} train / "
            f"{old['counts']['test']} test slices); nothing to do")
        return old
    factors, factor_names = read_factors(cfg.src, cfg.salt)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".staging-{uuid.uuid4().hex[:8]}"
    try:
        if not ray.is_initialized():
            ray.init(log_to_driver=False, include_dashboard=False)
        # Ray Data reserves a share of the CPUs per operator; on a small machine that left one
        # decode task running at a time (measured: no gain from 2 CPUs). Decoding is the only
        # heavy operator here, so let it take every CPU.
        ray.data.DataContext.get_current().op_resource_reservation_enabled = False
        n_blocks = max(1, min(len(files), math.ceil(len(files) / cfg.files_per_batch)))
        ds = ray.data.from_items([{"path": f} for f in files], override_num_blocks=n_blocks)
        ds = ds.map_batches(decode_batch, fn_kwargs=dict(src=cfg.src, size=cfg.size, salt=cfg.salt),
                            batch_size=cfg.files_per_batch, batch_format="numpy", num_cpus=1,
                            compute=ray.data.TaskPoolStrategy())
        ds.write_parquet(str(staging / "decoded"))
        timings = {"decode_s": round(time.time() - t0, 2)}
        meta = pads.dataset(str(staging / "decoded"), format="parquet").to_table(
            columns=[c for c in _staging_schema().names if c != "image"])
        plan, skipped, patients = plan_rows(meta, cfg, factors)
        timings["plan_s"] = round(time.time() - t0 - timings["decode_s"], 2)
        counts = {s: 0 for s in SPLITS}
        for p in plan.values():
            counts[p["split"]] += 1
        # One pass writes both splits (Hive partitions on a helper column): each Ray Data
        # pipeline costs ~1 s to start here, so two filtered passes cost more than the work.
        final = staging / "final"
        (ray.data.read_parquet(str(staging / "decoded"))
         .map_batches(finalize_batch, fn_kwargs=dict(plan=plan, size=cfg.size, factor_names=factor_names),
                      batch_format="pyarrow", batch_size=256, compute=ray.data.TaskPoolStrategy())
         .write_parquet(str(final), partition_cols=[PART]))
        for split in SPLITS:
            if not (final / f"{PART}={split}").exists():
                (final / f"{PART}={split}").mkdir(parents=True)
        timings["finalize_s"] = round(time.time() - t0 - timings["decode_s"] - timings["plan_s"], 2)
        manifest = {
            "version": INGEST_VERSION, "fingerprint": fp,
            "settings": {"size": cfg.size, "test_frac": cfg.test_frac, "seed": cfg.seed,
                         "hu_window": [-1000.0, 2000.0], "scaling": "(clip(HU)+1000)/3000*2-1",
                         "resize": "Pillow LANCZOS (anti-aliased)",
                         "image_type": f"arrow.fixed_shape_tensor<float32>[{cfg.size}, {cfg.size}]",
                         "slice_frac": "0 = most superior slice of the series, 1 = most inferior"},
            "files_seen": len(files), "counts": counts, "patients": patients,
            "factor_columns": factor_names, "skipped": skipped,
            "elapsed_s": round(time.time() - t0, 2), "timings": timings,
        }
        # Swap in: invalidate first, move folders, write the manifest last.
        (out / MANIFEST).unlink(missing_ok=True)
        for split in SPLITS:
            if (out / split).exists():
                shutil.rmtree(out / split)
            os.replace(final / f"{PART}={split}", out / split)
        _write_json_atomic(out / MANIFEST, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"ingest: {counts['train']} train / {counts['test']} test slices from "
        f"{len(patients)} patients; {len(skipped)} files skipped (see {out / MANIFEST}); "
        f"{manifest['elapsed_s']:.1f} s")
    return manifest
