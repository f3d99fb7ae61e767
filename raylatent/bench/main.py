"""The benchmarks (ingest, discovery, shuffle, train, phantom; chance, controls, study, devrun and methods in their own
modules): never tests.

Each benchmark measures the project's path and a plain baseline in the same run, on the same
inputs, and writes medians and ratios as JSON (this machine is noisy: compare within one run).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _machine() -> dict:
    import torch

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "platform": platform.platform(), "cuda": torch.cuda.is_available()}


def bench_ingest(args) -> dict:
    """Ray Data ingest with 1 and 2 CPUs against a serial pydicom loop doing the same work."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    from raylatent.config import IngestConfig
    from raylatent.data.dicom import find_files, hu_to_model, read_ct
    from raylatent.data.ingest import SIDECARS, image_array, ingest
    from raylatent.data.phantom import PhantomParams, cached

    work = Path(tempfile.mkdtemp(prefix="raylatent-bench-"))
    try:
        src = cached(work, PhantomParams(patients=args.patients, slices=args.slices, matrix=args.matrix,
                                         seed=0), log=lambda *_: None)
        if args.copies > 1:  # many files cheaply: re-save each slice under new UIDs
            src = _replicate(src, work / "replicated", args.copies)
        files = [f for f in find_files(src) if f not in SIDECARS]

        def serial() -> float:
            t = time.perf_counter()
            imgs = [hu_to_model(fr.hu, args.size) for f in files for fr in read_ct(src / f)]
            pq.write_table(pa.table({"image": image_array(np.stack(imgs))}), work / "serial.parquet")
            return time.perf_counter() - t

        def ray_run(cpus: int, rep: int) -> float:
            out = work / f"ray-{cpus}-{rep}"
            t = time.perf_counter()
            ingest(IngestConfig(src=str(src), out=str(out), size=args.size, salt="bench"), log=lambda *_: None)
            return time.perf_counter() - t

        result = {"files": len(files), "copies": args.copies, "matrix": args.matrix, "size": args.size, "reps": args.reps}
        result["serial_s"] = [serial() for _ in range(args.reps)]
        for cpus in (1, 2):
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
            ray_run(cpus, -1)  # warm-up: worker processes and imports
            result[f"ray_{cpus}cpu_s"] = [ray_run(cpus, r) for r in range(args.reps)]
            ray.shutdown()
        for key in ("serial", "ray_1cpu", "ray_2cpu"):
            med = statistics.median(result[f"{key}_s"])
            result[f"{key}_median_s"] = med
            result[f"{key}_slices_per_s"] = len(files) / med
        result["ratio_2cpu_vs_serial"] = result["ray_2cpu_slices_per_s"] / result["serial_slices_per_s"]
        result["ratio_1cpu_vs_serial"] = result["ray_1cpu_slices_per_s"] / result["serial_slices_per_s"]
        result["scaling_2cpu_vs_1cpu"] = result["ray_2cpu_slices_per_s"] / result["ray_1cpu_slices_per_s"]
        result["target_2cpu_vs_serial"] = 1.8
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _matmul_peak(device, dtype, n: int = 2048, reps: int = 10) -> float:
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    times = []
    for _ in range(reps):
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / min(times)


def _sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _median_time(fn, steps: int, device, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_discovery(args) -> dict:
    """Discovery steps/s against the commonly written reference step, and G's FLOP/s share."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from raylatent.discovery.step import Discovery, DiscoveryConfig, reference_step, sample_shifts
    from raylatent.models import as_generator, make_generator

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    peak = _matmul_peak(device, dtype)
    widths = {"smoke": dict(size=32, gan=32, vae=16, lenet=1.0)}
    if args.paper_widths:
        widths["paper"] = dict(size=128, gan=128, vae=64, lenet=1.0)
    rows = []
    for scale, w in widths.items():
        for gen_kind in ("gan", "vae"):  # the paper's two (widths below are theirs)
            torch.manual_seed(0)
            G = as_generator(make_generator(gen_kind, w["size"], w[gen_kind])).to(device)
            if cuda:
                G = G.to(memory_format=torch.channels_last)
            for rec in ("lenet", "resnet"):
                cfg = DiscoveryConfig(K=32, reconstructor=rec, recon_width=w["lenet"], batch=args.batch)
                disc = Discovery(G, cfg, device=device, amp=cuda)
                fast = _median_time(disc.step, args.steps, device)
                # reference: G trainable, autograd through both passes, per-sample shift loop
                for p in G.parameters():
                    p.requires_grad_(True)
                params = list(disc.R.parameters()) + list(disc.A.parameters())
                opt = torch.optim.Adam(params, lr=1e-4)
                gen = torch.Generator(device=device).manual_seed(0)

                def ref():
                    z = torch.randn(cfg.batch, G.latent_dim, device=device, generator=gen)
                    k, eps = sample_shifts(cfg.batch, cfg.K, cfg, gen, device)
                    reference_step(G, disc.A, disc.R, opt, z, k, eps, cfg.gamma)

                slow = _median_time(ref, args.steps, device)
                for p in G.parameters():
                    p.requires_grad_(False)
                z = torch.randn(cfg.batch, G.latent_dim, device=device)
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                    with FlopCounterMode(display=False) as fc:
                        G(z)
                    g_time = _median_time(lambda: G(z), args.steps, device)
                g_flops = fc.get_total_flops()
                rows.append({"scale": scale, "generator": gen_kind, "reconstructor": rec,
                             "batch": cfg.batch, "size": w["size"],
                             "steps_per_s": 1 / fast, "reference_steps_per_s": 1 / slow,
                             "speedup_vs_reference": slow / fast,
                             "generator_flops_per_pass": g_flops,
                             "generator_flop_s": g_flops / g_time,
                             "generator_share_of_matmul_peak": g_flops / g_time / peak})
                print(json.dumps(rows[-1]), flush=True)
    lenet = bench_lenet() if not cuda else None  # the 32^2 regression row is a CPU measurement
    return {"device": str(device), "dtype": str(dtype), "matmul_peak_flop_s": peak,
            "steps": args.steps, "rows": rows, "lenet_unpadded_vs_padded_32": lenet,
            "targets": {"speedup_vs_reference_paper_widths": 2.0, "generator_share_of_peak": 0.5}}


def bench_lenet(steps: int = 20, batch: int = 32) -> dict:
    """The authors' unpadded LeNet against the padded one we used before (issue 13), one thread,
    on the smoke GAN at 32^2: discovery steps/s of each (a regression benchmark)."""
    import torch

    from raylatent.discovery.step import Discovery, DiscoveryConfig
    from raylatent.models import make_generator

    torch.set_num_threads(1)
    torch.manual_seed(0)
    G = make_generator("gan", 32, 32)
    out = {"size": 32, "batch": batch, "K": 32, "steps": steps}
    for name, pad in (("unpadded", 0), ("padded", 2)):
        disc = Discovery(G, DiscoveryConfig(K=32, deformator="proj", batch=batch, lr=1e-3, lr_directions=0.02))
        for m in disc.R.features:
            if isinstance(m, torch.nn.Conv2d):
                m.padding = (pad, pad)
        out[f"{name}_step_s"] = _median_time(disc.step, steps, torch.device("cpu"), warmup=3)
    out["padded_over_unpadded_time"] = out["padded_step_s"] / out["unpadded_step_s"]
    return out


def bench_shuffle(args) -> dict:
    """One epoch of training batches through Ray Data, with and without the seeded local shuffle
    buffer the training loop uses: the cost per epoch of shuffling."""
    import numpy as np
    import ray

    from raylatent.train.shuffle import epoch_batches

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        imgs = np.random.default_rng(0).uniform(-1, 1, (args.rows, args.size, args.size)).astype(np.float32)
        ds = ray.data.from_numpy(imgs).rename_columns({"data": "image"}).repartition(args.blocks).materialize()
        result = {"rows": args.rows, "size": args.size, "batch": args.batch, "buffer": args.buffer, "reps": args.reps}
        for name, buf in (("plain", 0), ("shuffled", args.buffer)):
            times = []
            for epoch in range(args.reps + 1):
                t = time.perf_counter()
                n = sum(len(b["image"]) for b in epoch_batches(ds.iterator(), args.batch, buf, 0, epoch))
                times.append(time.perf_counter() - t)
            result[f"{name}_epoch_s"] = statistics.median(times[1:])  # the first epoch warms up
            result[f"{name}_rows"] = n
        result["shuffle_cost_per_epoch_s"] = result["shuffled_epoch_s"] - result["plain_epoch_s"]
        result["shuffle_cost_per_1k_rows_s"] = result["shuffle_cost_per_epoch_s"] / args.rows * 1000
        result["ratio_shuffled_vs_plain"] = result["shuffled_epoch_s"] / result["plain_epoch_s"]
        return result
    finally:
        ray.shutdown()


def bench_train(args) -> dict:
    """Training images/s with 1 and 2 Ray Train workers (epochs after the first)."""
    import ray

    from raylatent.config import GeneratorsConfig, IngestConfig
    from raylatent.data.ingest import ingest
    from raylatent.data.phantom import PhantomParams, cached
    from raylatent.train.stage import train_generator

    work = Path(tempfile.mkdtemp(prefix="raylatent-bench-train-"))
    try:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        src = cached(work, PhantomParams(patients=8, slices=32, matrix=128, seed=0), log=lambda *_: None)
        shards = work / "shards"
        m = ingest(IngestConfig(src=str(src), out=str(shards), size=args.size, salt="bench"), log=lambda *_: None)
        result: dict = {"train_slices": m["counts"]["train"], "size": args.size, "epochs": args.epochs}
        for kind in ("gan", "vae"):
            for workers in (1, 2):
                cfg = GeneratorsConfig(kinds=(kind,), size=args.size, epochs=args.epochs, keep_last=1,
                                       batch_size=args.batch, num_workers=workers, augment=True,
                                       cpus_per_worker=0.5, fid_samples=64, fid_network="fallback")
                s = train_generator(kind, shards, cfg, work / f"{kind}-{workers}", log=lambda *_: None)
                times = [h["epoch_s"] for h in s["history"][1:]]
                imgs = [h["batches"] * args.batch * workers for h in s["history"][1:]]
                result[f"{kind}_{workers}w_images_per_s"] = statistics.median(i / t for i, t in zip(imgs, times))
            one, two = result[f"{kind}_1w_images_per_s"], result[f"{kind}_2w_images_per_s"]
            result[f"{kind}_speedup_2w"] = two / one
            result[f"{kind}_scaling_efficiency_2w"] = two / one / 2
        ray.shutdown()
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _replicate(src: Path, dst: Path, copies: int) -> Path:
    import pydicom
    from pydicom.uid import generate_uid

    for f in sorted(src.rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        for c in range(copies):
            ds.PatientID = f"{ds.PatientID.split('~')[0]}~{c}"
            ds.SeriesInstanceUID = generate_uid(entropy_srcs=[f"{ds.PatientID}|series"])
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            out = dst / f"{ds.PatientID}" / f.name
            out.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(out)
    return dst


def bench_phantom(args) -> dict:
    """Axes recovered on the phantom generator (its true directions known) at 1x, 4x, 16x... the
    smoke grid's discovery steps, with the smoke grid's discovery settings: is a miss the budget?"""
    from raylatent.discovery.evaluate import evaluate
    from raylatent.discovery.records import Trial
    from raylatent.discovery.step import Discovery, DiscoveryConfig
    from raylatent.gridfile import load_grid
    from raylatent.interpret.truth import truth_scores
    from raylatent.models import make_generator_from
    from raylatent.models.phantom_gen import FACTORS

    import torch

    torch.set_num_threads(args.threads)
    grid = load_grid(args.grid)
    d, g = grid.directions, grid.generators
    marks = sorted(int(m) * args.steps for m in args.multiples.split(","))
    runs = []
    for spec in args.configs.split(","):
        defo, K, rec = spec.split(":")
        G = make_generator_from("phantom", g)
        M = G.true_directions().numpy()
        cfg = DiscoveryConfig.for_trial(d, Trial("phantom", rec, defo, int(K), 0))
        disc, t0, curve = Discovery(G, cfg), time.perf_counter(), []
        while disc.step_count < marks[-1]:
            disc.step()
            if disc.step_count in marks:
                t = truth_scores(disc.A.arrays()["A"].detach().numpy(), M, FACTORS)
                curve.append({"step": disc.step_count, "multiple": disc.step_count / args.steps,
                              "axes_recovered": t["axes_recovered"], "matched_cos": t["matched_cos"],
                              "in_subspace_mean": t["in_subspace_mean"], **evaluate(disc, n=d.eval_n),
                              "wall_s": round(time.perf_counter() - t0, 1)})
                print(f"{spec} step {disc.step_count}: axes {t['axes_recovered']}, in span "
                      f"{t['in_subspace_mean']:.2f}, RCA {curve[-1]['rca']:.3f}", flush=True)
        runs.append({"config": spec, "curve": curve})
    return {"grid": args.grid, "smoke_steps": args.steps, "size": g.size, "latent_dim": g.latent_dim, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m raylatent.bench", description=__doc__)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("ingest", help="Ray Data ingest vs a serial loop")
    p.add_argument("--json", required=True)
    p.add_argument("--patients", type=int, default=4)
    p.add_argument("--slices", type=int, default=40)
    p.add_argument("--matrix", type=int, default=512, help="source slice size (LIDC: 512)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--copies", type=int, default=10, help="re-save each slice this many times")
    p.add_argument("--reps", type=int, default=3)
    p = sub.add_parser("discovery", help="direction-discovery steps/s vs a reference step")
    p.add_argument("--json", required=True)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--paper-widths", action=argparse.BooleanOptionalAction, default=True)
    p = sub.add_parser("shuffle", help="an epoch of training batches with and without the shuffle buffer")
    p.add_argument("--json", required=True)
    p.add_argument("--rows", type=int, default=8192)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--blocks", type=int, default=32)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--buffer", type=int, default=2048)
    p.add_argument("--reps", type=int, default=3)
    p = sub.add_parser("train", help="Ray Train images/s with 1 and 2 workers")
    p.add_argument("--json", required=True)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p = sub.add_parser("phantom", help="true axes recovered on the phantom generator vs discovery steps")
    p.add_argument("--json", required=True)
    p.add_argument("--grid", default="smoke")
    p.add_argument("--configs", default="proj:32:lenet,ortho:32:lenet",
                   help="deformator:K:reconstructor, comma-separated")
    p.add_argument("--steps", type=int, default=600, help="the smoke grid's steps per cell (1x)")
    p.add_argument("--multiples", default="1,4,16")
    p.add_argument("--threads", type=int, default=1)
    from raylatent.bench import chance as bench_chance, controls as bench_controls, devrun as bench_devrun
    from raylatent.bench import methods as bench_methods, study as bench_study

    bench_chance.add_parser(sub)
    bench_controls.add_parser(sub)
    bench_study.add_parser(sub)
    bench_devrun.add_parser(sub)
    bench_methods.add_parser(sub)
    args = ap.parse_args(argv)
    result = {"ingest": bench_ingest, "discovery": bench_discovery, "train": bench_train,
              "shuffle": bench_shuffle, "phantom": bench_phantom, "chance": bench_chance.bench_chance,
              "controls": bench_controls.bench_controls, "study": bench_study.bench_study,
              "devrun": bench_devrun.bench_devrun, "methods": bench_methods.bench_methods}[args.what](args)
    result["machine"] = _machine()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, (list, dict))}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
