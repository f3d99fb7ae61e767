"""DICOM tree -> Parquet shards, in parallel on Ray Data.

Three steps, so that nothing identifying is ever written, the split is exact and every image is
decoded and written once:
1. scan (Ray Data `map_batches`): headers only, pixel data deferred; each file becomes one row per
   frame with *salted* keys and its z, or a skip row with its reason;
2. plan (driver, metadata only): drop duplicate SOP instances, assign patients to splits, order
   slices by z within their series, join phantom factors;
3. decode (Ray Data, one task per CPU): each planned file is decoded, preprocessed and written to
   its split (one Hive-partitioned write); a file whose pixels fail leaves its reason for the
   manifest. Outputs are swapped into `OUT/train` and `OUT/test` and `manifest.json` is written
   last. A stage is done iff its manifest carries the same fingerprint (settings + file
   listing), so reruns are free. `slice_frac` is the position among the slices whose headers are
   readable, so a slice whose pixels fail to decode does not shift its neighbours.

Image column: pyarrow's canonical `arrow.fixed_shape_tensor` extension (float32, [size, size]),
readable by plain pyarrow as `table["image"].combine_chunks().to_numpy_ndarray()`.
"""
from __future__ import annotations

import csv
import errno
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

from raylatent.data.config import IngestConfig
from raylatent.errors import ConfigError
from raylatent.data.dicom import (SkipFile, find_files, hu_to_model, pseudonym_path, read_ct, salted_key,
                                  scan_header)

INGEST_VERSION = "ingest-v3"
MAX_FACTORS_BYTES = 256 << 20  # ~1.5 million slices' factors
FACTORS_FILE = "factors.csv"
SIDECARS = {FACTORS_FILE, "phantom.json"}  # the phantom's own files at the top of --src
MANIFEST = "manifest.json"
SPLITS = ("train", "test")
PART = "_part"  # Hive partition column of the decode pass; becomes the train/ and test/ folders


def _scan_schema() -> pa.Schema:
    return pa.schema([
        ("row_id", pa.string()), ("rel_path", pa.string()), ("ok", pa.bool_()),
        ("reason", pa.string()), ("patient_key", pa.string()), ("series_key", pa.string()),
        ("sop_key", pa.string()), ("frame", pa.int32()), ("z_mm", pa.float64()),
        ("instance", pa.int32()),
    ])


def scan_batch(batch: dict, src: str, salt: str) -> pa.Table:
    """Ray Data map_batches function: relative paths -> header rows (one per frame) or skips."""
    rows: dict[str, list] = {name: [] for name in _scan_schema().names}

    def add(**kw):
        for k in rows:
            rows[k].append(kw.get(k))

    for rel in batch["path"]:
        rel = str(rel)
        try:
            h = scan_header(os.path.join(src, rel))
        except SkipFile as e:
            add(row_id=f"{rel}#-1", rel_path=rel, ok=False, reason=str(e), frame=-1)
            continue
        except Exception as e:  # a reader bug must not stop 246k files
            add(row_id=f"{rel}#-1", rel_path=rel, ok=False, frame=-1,
                reason=f"unexpected header error ({type(e).__name__})")
            continue
        pid = h.patient_id or f"series:{h.series_uid}"
        for f, z in enumerate(h.z_mm):
            add(row_id=f"{rel}#{f}", rel_path=rel, ok=True, reason="",
                # a series belongs to its patient: two patients' files sharing a SeriesInstanceUID
                # (a copy-paste in an export) stay two series, each with its own slice positions
                patient_key=salted_key(salt, pid), series_key=salted_key(salt, f"{pid}\x00{h.series_uid}"),
                sop_key=salted_key(salt, h.sop_uid), frame=f, z_mm=None if math.isnan(z) else z,
                instance=h.instance_number)
    return pa.Table.from_pydict(rows, schema=_scan_schema())


def image_array(images: np.ndarray) -> pa.ExtensionArray:
    """N x S x S float32 -> Arrow's canonical fixed-shape tensor column."""
    return pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(images, np.float32))


def output_schema(size: int, factor_names: list[str]) -> pa.Schema:
    return pa.schema([
        ("image", pa.fixed_shape_tensor(pa.float32(), [size, size])),
        ("patient_key", pa.string()), ("series_key", pa.string()), ("slice_key", pa.string()),
        ("z_mm", pa.float64()), ("slice_index", pa.int32()), ("slice_frac", pa.float32()),
        ("split", pa.string()), *[(n, pa.float32()) for n in factor_names], (PART, pa.string())])


def decode_batch(batch: dict, src: str, size: int, factor_names: list[str], failures: str) -> pa.Table:
    """Ray Data map_batches function: planned files -> output rows of both splits.

    A file whose pixels cannot be decoded writes its reason to `failures/` (the manifest's
    `skipped`), so the output schema stays free of paths and reasons."""
    cols: dict[str, list] = defaultdict(list)
    images = []
    for rel, plan_json in zip(batch["path"], batch["plan"]):
        rel, plans = str(rel), json.loads(str(plan_json))
        try:
            frames = {fr.frame: fr for fr in read_ct(os.path.join(src, rel))}
            mine = [(p, hu_to_model(frames[p["frame"]].hu, size)) for p in plans if p["frame"] in frames]
            if not all(np.isfinite(img).all() for _, img in mine):  # no shard may hold NaN or inf
                raise SkipFile("non-finite values after preprocessing")
        except Exception as e:
            reason = str(e) if isinstance(e, SkipFile) else f"unexpected decode error ({type(e).__name__})"
            name = hashlib.sha256(rel.encode()).hexdigest()[:24]
            Path(failures, f"{name}.json").write_text(json.dumps({"path": rel, "reason": reason}))
            continue
        for p, img in mine:
            images.append(img)
            for k in ("patient_key", "series_key", "slice_key", "z_mm", "slice_index", "slice_frac", "split"):
                cols[k].append(p[k])
            for n in factor_names:
                cols[n].append(p["factors"].get(n, np.nan))
    schema = output_schema(size, factor_names)
    if not images:
        return schema.empty_table()
    data = {"image": image_array(np.stack(images)), **{k: cols[k] for k in schema.names if k in cols}}
    data[PART] = cols["split"]
    return pa.table({k: data[k] for k in schema.names}, schema=schema)


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
    if not path.exists() and not path.is_symlink():
        return {}, []
    if not path.is_file():  # a FIFO would block the read forever
        raise ConfigError(f"{path}: not a regular file (regenerate it with raylatent.phantom, or remove it)")
    if path.stat().st_size > MAX_FACTORS_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size} bytes, over the {MAX_FACTORS_BYTES} a factors table may have")
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            names = [c for c in (reader.fieldnames or []) if c.startswith("factor_")]
            if "sop_instance_uid" not in (reader.fieldnames or []):
                raise ConfigError(f"{path}: needs a sop_instance_uid column (regenerate it with raylatent.phantom)")
            table = {salted_key(salt, r["sop_instance_uid"]): {n: float(r[n]) for n in names} for r in reader}
    except ConfigError:
        raise
    except (ValueError, TypeError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"{path}: damaged ({type(e).__name__}); regenerate it with raylatent.phantom") from None
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
                factors=factors.get(m["sop_key"][i], {}), rel_path=m["rel_path"][i],
                frame=m["frame"][i], patient_key=m["patient_key"][i], series_key=m["series_key"][i],
                z_mm=m["z_mm"][i])
    patients: dict[str, dict] = {}
    for i in good:
        p = patients.setdefault(m["patient_key"][i], {"split": split[m["patient_key"][i]], "slices": 0})
        p["slices"] += 1
    skipped = _redact(skipped, patients, cfg)
    skipped.sort(key=lambda e: e["path"])
    return plan, skipped, patients


def _redact(entries: list[dict], patients: dict, cfg: IngestConfig) -> list[dict]:
    """Every path component pseudonymised, whatever made the file fail (see `pseudonym_path`)."""
    known = set(patients)
    return [{**e, "path": pseudonym_path(cfg.salt, e["path"], known)} for e in entries]


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True))
    os.replace(tmp, path)


def load_manifest(out: str | os.PathLike) -> dict | None:
    """The ingest's manifest, or None when there is none or it is not one we could have written
    (a damaged or tampered manifest means: ingest again)."""
    path = Path(out) / MANIFEST
    if not path.is_file() or path.stat().st_size > 256 << 20:
        return None
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    whole = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0  # noqa: E731
    ok = (isinstance(m, dict) and isinstance(m.get("fingerprint"), str) and isinstance(m.get("counts"), dict)
          and all(whole(m["counts"].get(k)) for k in ("train", "test")) and isinstance(m.get("skipped", []), list)
          and all(isinstance(e, dict) and isinstance(e.get("reason"), str) for e in m.get("skipped", []))
          and isinstance(m.get("patients", {}), dict) and isinstance(m.get("settings", {}), dict))
    return m if ok else None


MARKER = ".raylatent-ingest"  # this folder is ours: its train/, test/ and staging folders may be replaced


def claim_output(src: Path, out: Path) -> None:
    """Refuse an --out that would overwrite or delete what we did not write, and clean up what a
    killed ingest of ours left behind. Ours = it holds our marker file (a manifest.json is not enough)."""
    s, o = src.resolve(), out.resolve()
    if s == o or s in o.parents or o in s.parents:
        raise ConfigError(f"--out {out} overlaps --src {src} (one inside the other); choose an --out outside "
                          f"the source tree (the source is never written)")
    if o.exists() and not o.is_dir():
        raise ConfigError(f"--out {out}: is a file; give a folder (new, or a previous raylatent ingest output)")
    if o.is_dir() and any(o.iterdir()) and not (o / MARKER).is_file():  # a manifest anyone can write: not proof
        raise ConfigError(f"--out {out}: not empty and not a raylatent ingest output (no {MARKER} marker); give a "
                          f"new or empty folder (nothing in it was touched)")
    o.mkdir(parents=True, exist_ok=True)
    if not (o / MARKER).exists():  # a rerun with nothing to do leaves every file as it was
        (o / MARKER).touch()
    for stale in o.glob(".staging-*"):  # a killed run's half-written outputs
        shutil.rmtree(stale, ignore_errors=True)


def ingest(cfg: IngestConfig, log=print) -> dict:
    """Run (or skip) the ingest stage; returns the manifest."""
    import ray

    t0 = time.time()
    out = Path(cfg.out)
    claim_output(Path(cfg.src), out)
    odd: list[dict] = []
    files = [f for f in find_files(cfg.src, odd) if f not in SIDECARS]
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
        per = cfg.files_per_batch
        scan = ray.data.from_items([{"path": f} for f in files],
                                   override_num_blocks=max(1, min(len(files), math.ceil(len(files) / (4 * per)))))
        refs = scan.map_batches(scan_batch, fn_kwargs=dict(src=cfg.src, salt=cfg.salt), batch_size=4 * per,
                                batch_format="numpy", compute=ray.data.TaskPoolStrategy()).to_arrow_refs()
        tables = [t for t in ray.get(refs) if t.num_rows]
        meta = pa.concat_tables(tables) if tables else _scan_schema().empty_table()
        timings = {"scan_s": round(time.time() - t0, 2)}
        plan, skipped, patients = plan_rows(meta, cfg, factors)
        skipped = sorted(skipped + _redact(odd, patients, cfg), key=lambda e: e["path"])
        by_file: dict[str, list] = defaultdict(list)
        for p in plan.values():
            by_file[p["rel_path"]].append({k: v for k, v in p.items() if k != "rel_path"})
        items = [{"path": rel, "plan": json.dumps(by_file[rel])} for rel in sorted(by_file)]
        final, failures = staging / "final", staging / "failures"
        failures.mkdir(parents=True)
        if items:
            (ray.data.from_items(items, override_num_blocks=max(1, min(len(items), math.ceil(len(items) / per))))
             .map_batches(decode_batch, fn_kwargs=dict(src=cfg.src, size=cfg.size, factor_names=factor_names,
                                                       failures=str(failures)),
                          batch_size=per, batch_format="numpy", num_cpus=1, compute=ray.data.TaskPoolStrategy())
             .write_parquet(str(final), partition_cols=[PART]))
        for split in SPLITS:
            (final / f"{PART}={split}").mkdir(parents=True, exist_ok=True)
        failed = {}
        for f in failures.glob("*.json"):
            e = json.loads(f.read_text())
            failed[e["path"]] = e["reason"]
        lost = {k for k, v in plan.items() if v["rel_path"] in failed}
        for k in lost:
            patients[plan[k]["patient_key"]]["slices"] -= 1
            del plan[k]
        skipped = sorted(skipped + _redact([{"path": p, "reason": r} for p, r in failed.items()], patients, cfg),
                         key=lambda e: e["path"])
        patients = {k: v for k, v in patients.items() if v["slices"] > 0}
        counts = {s: 0 for s in SPLITS}
        for p in plan.values():
            counts[p["split"]] += 1
        timings["decode_s"] = round(time.time() - t0 - timings["scan_s"], 2)
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
    except Exception as e:
        if "No space left on device" in str(e) or getattr(e, "errno", None) == errno.ENOSPC:
            raise ConfigError(f"--out {out}: the disk filled up while writing shards; free space (or choose another "
                              f"--out) and rerun: the previous outputs, if any, were left as they were") from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"ingest: {counts['train']} train / {counts['test']} test slices from "
        f"{len(patients)} patients; {len(skipped)} files skipped (see {out / MANIFEST}); "
        f"{manifest['elapsed_s']:.1f} s")
    return manifest


def locate(src: str | os.PathLike, pseudonym: str, salt: str, out: str | os.PathLike | None = None) -> list[str]:
    """The real paths under src whose pseudonym (as the manifest's `skipped` lists it) matches."""
    m = load_manifest(out) if out else None
    known = set((m or {}).get("patients", {}))
    odd: list[dict] = []
    found = find_files(src, odd)
    return [rel for rel in found + [e["path"] for e in odd] if pseudonym_path(salt, rel, known) == pseudonym]
