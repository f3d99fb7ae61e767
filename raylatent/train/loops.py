"""The Ray Train loop for every generator kind: one function, run on every DDP worker. What
varies by kind (modules, optimisers, one step, held-out metrics) comes from its registry entry."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import asdict

import torch

from raylatent.models.config import GeneratorsConfig, config_class
from raylatent.metrics.fid import feature_extractor, features_of, frechet_distance, statistics
from raylatent.models import as_generator, kind_of, make_generator_from
from raylatent.models.schedules import instance_noise_sigma, random_affine
from raylatent.train.shuffle import epoch_batches

STATE = "state.pt"
HISTORY = "history.json"


def weights_digest(module: torch.nn.Module) -> str:
    """Hash of the parameters (not BN running stats: DDP re-broadcasts rank 0's buffers at the
    next forward, so they legitimately differ between ranks at the end of an epoch)."""
    h = hashlib.sha256()
    for k, v in sorted(module.named_parameters()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _unwrap(m):
    return m.module if hasattr(m, "module") else m


@torch.no_grad()
def sample_images(G, n: int, latent_dim: int, seed: int, device) -> torch.Tensor:
    from raylatent.models.sampling import sample

    was = G.training
    G.eval()
    _, out = sample(G, n, latent_dim, seed, batch=256, device=device)
    G.train(was)
    return out


def run_epoch(training, batches, cfg: GeneratorsConfig, epoch: int, gen: torch.Generator, device) -> dict:
    """One pass over `batches` (dicts with an "image" B x H x W tensor): the kind's step with
    the epoch's instance noise and augmentation; the mean of each loss part. Shared by the DDP
    workers and the in-process trainer of a search trial (train/local.py), so both train alike."""
    t0 = time.time()
    training.modules["model"].train()
    sigma = instance_noise_sigma(epoch, cfg.epochs, cfg.noise_start, cfg.noise_steps)
    sums: dict[str, float] = {}
    n_batches = 0
    for batch in batches:
        x = batch["image"][:, None]
        if cfg.augment:
            x = random_affine(x, generator=gen)
        parts = training.step(x.to(device), sigma, gen, device)
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
        n_batches += 1
    metrics = {k: v / max(n_batches, 1) for k, v in sums.items()}
    metrics.update(epoch=epoch, batches=n_batches, instance_noise=sigma, epoch_s=round(time.time() - t0, 3))
    return metrics


class HeldOut:
    """What every epoch is judged by: FID of samples against the test split's features (computed
    once) and the kind's own held-out metrics; the checkpoint kept is chosen by this FID."""

    def __init__(self, cfg: GeneratorsConfig, test_images: torch.Tensor, device):
        self.cfg, self.device = cfg, device
        self.extractor = feature_extractor(cfg.fid_network, cfg.fid_weights or None).to(device)
        self.images = test_images[: cfg.fid_samples]
        self.stats = statistics(features_of(self.extractor, self.images))

    def measure(self, model: torch.nn.Module, training) -> tuple[dict, torch.Tensor]:
        """The metrics and the samples they were computed on (TensorBoard shows a few)."""
        G = as_generator(model)
        fake = sample_images(G, len(self.images), self.cfg.latent_dim, seed=self.cfg.seed + 99, device=self.device)
        metrics = {"fid": frechet_distance(*self.stats, *statistics(features_of(self.extractor, fake.to(self.device)))),
                   "fid_network": self.extractor.name}
        metrics.update(training.eval_metrics(model, self.images, self.device))
        return metrics, fake


def train_loop(config: dict) -> None:
    import ray.train
    import ray.train.torch

    from raylatent.data.shards import load_split

    cfg = config_class()(**config["cfg"])
    kind = config["kind"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    model = make_generator_from(kind, cfg)
    training = kind_of(kind).training(model, cfg)  # what varies by kind: its modules, optimisers, step
    start, history = 0, []
    ckpt = ray.train.get_checkpoint()
    if ckpt:
        with ckpt.as_directory() as d:
            state = torch.load(os.path.join(d, STATE), map_location="cpu", weights_only=True)
            history = json.load(open(os.path.join(d, HISTORY)))
        for name, part in {**training.modules, **training.optimizers}.items():
            part.load_state_dict(state[name])
        start = int(state["epoch"]) + 1
    training.modules = {name: ray.train.torch.prepare_model(m) for name, m in training.modules.items()}
    model = training.modules["model"]
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank * 17 + start)  # per-rank, per-resume
    held = None
    if rank == 0:
        test = load_split(config["shards"], "test")
        if len(test) == 0:
            test = load_split(config["shards"], "train", limit=cfg.fid_samples)
        held = HeldOut(cfg, test.images, device)
    writer = None
    if rank == 0 and config.get("tb_dir"):  # Ray Train writes no TensorBoard logs of its own
        from torch.utils.tensorboard import SummaryWriter  # its flush() waits for queued events (tensorboardX lost the last one)

        writer = SummaryWriter(config["tb_dir"])
    shard = ray.train.get_dataset_shard("train")
    for epoch in range(start, cfg.epochs):
        batches = epoch_batches(shard, cfg.batch_size, cfg.shuffle_buffer, cfg.seed, epoch, rank)
        metrics = run_epoch(training, batches, cfg, epoch, gen, device)
        metrics["started_at_epoch"] = start
        digests = [None] * world
        if world > 1:
            torch.distributed.all_gather_object(digests, weights_digest(_unwrap(model)))
        else:
            digests = [weights_digest(_unwrap(model))]
        metrics["ranks_identical"] = len(set(digests)) == 1
        if rank == 0:
            held_metrics, fake = held.measure(_unwrap(model), training)
            metrics.update(held_metrics)
            history.append(metrics)
            if writer is not None:  # steps count epochs from 1, as the console does
                for k, v in metrics.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        writer.add_scalar(f"{kind}/{k}", v, epoch + 1)
                writer.add_images(f"{kind}/samples", ((fake[:16].float().cpu() + 1) / 2).clamp(0, 1), epoch + 1)
                writer.flush()
            with tempfile.TemporaryDirectory() as tmp:
                state = {**{name: _unwrap(m).state_dict() for name, m in training.modules.items()},
                         **{name: o.state_dict() for name, o in training.optimizers.items()},
                         "epoch": epoch, "kind": kind, "config": json.dumps(asdict(cfg))}
                torch.save(state, os.path.join(tmp, STATE))
                json.dump(history, open(os.path.join(tmp, HISTORY), "w"))
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        else:
            ray.train.report(metrics, checkpoint=None)
        if config.get("after_epoch"):  # an injected observer (tests use it to fail a worker once)
            config["after_epoch"](epoch, rank, bool(ckpt))
    if writer is not None:
        writer.close()
