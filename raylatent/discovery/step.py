"""One step of Voynov & Babenko's direction discovery, vectorised.

z ~ N(0, I); k ~ U{0..K-1}; eps ~ U[-s, s] with |eps| pushed up to at least min_shift;
loss = CE(k, k_hat) + gamma * |eps - eps_hat|; the reported Ls is that second term, gamma
included, as the authors logged it. G is frozen (eval mode, no parameter grads); G(z)
needs no autograd at all, G(z + shift) needs it only to reach A. The shift is the direction set's
own, `A(z, k, eps)`, so a set whose path depends on z trains here unchanged. A learned set's
grid entry may add the Hessian penalty (`hessian: weight`, discovery/criteria.py) to the loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from raylatent.discovery.config import DiscoveryConfig
from raylatent.discovery.criteria import hessian_penalty
from raylatent.discovery.methods import make_directions
from raylatent.models.directions import Directions
from raylatent.models.reconstructors import make_reconstructor


def sample_shifts(n: int, K: int, cfg: DiscoveryConfig, gen: torch.Generator,
                  device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Direction indices and magnitudes, as the authors' code draws them."""
    k = torch.randint(0, K, (n,), generator=gen, device=device)
    eps = (torch.rand(n, generator=gen, device=device) * 2 - 1) * cfg.shift_scale
    eps = torch.where(eps >= 0, eps.clamp_min(cfg.min_shift), eps.clamp_max(-cfg.min_shift))
    return k, eps


def freeze(G: nn.Module) -> nn.Module:
    G.eval()
    for p in G.parameters():
        p.requires_grad_(False)
    return G


def discovery_loss(G: nn.Module, A: Directions, R: nn.Module, z: torch.Tensor, k: torch.Tensor,
                   eps: torch.Tensor, gamma: float):
    with torch.no_grad():
        x0 = G(z)
    x1 = G(z + A(z, k, eps))
    logits, eps_hat = R(x0, x1)
    ce = F.cross_entropy(logits, k)
    ls = (eps - eps_hat).abs().mean()
    return ce + gamma * ls, logits, eps_hat, ce, ls


class Discovery:
    """G (frozen), A, R and their optimisers, with a private RNG so a run is reproducible and
    resumable to the same numbers."""

    def __init__(self, G: nn.Module, cfg: DiscoveryConfig, device: str | torch.device = "cpu",
                 amp: bool = False):
        """amp: bf16 autocast for G and R (GPUs); the loss and optimiser stay in fp32."""
        self.cfg, self.device, self.amp = cfg, torch.device(device), amp
        # channels-last: 10-20% faster steps on CPUs as well as GPUs (measured at 32^2, one thread)
        self.G = freeze(G.to(self.device)).to(memory_format=torch.channels_last)
        self.d = G.latent_dim
        torch.manual_seed(cfg.seed)  # R's initialisation
        self.A = make_directions(cfg.deformator, self.d, cfg.K, seed=cfg.seed, settings=cfg.settings).to(self.device)
        self.R = make_reconstructor(cfg.reconstructor, cfg.K, cfg.recon_width).to(
            self.device, memory_format=torch.channels_last)
        self.opt_R = torch.optim.Adam(self.R.parameters(), lr=cfg.lr)
        a_params = [p for p in self.A.parameters() if p.requires_grad]
        self.opt_A = torch.optim.Adam(a_params, lr=cfg.lr_directions or cfg.lr) if a_params else None
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        self.hessian = float(cfg.settings.get("hessian", 0.0))  # the Hessian penalty's weight (criteria.py)
        self.step_count = 0

    def step(self) -> dict[str, float]:
        cfg = self.cfg
        self.R.train()
        z = torch.randn(cfg.batch, self.d, generator=self.gen, device=self.device)
        k, eps = sample_shifts(cfg.batch, cfg.K, cfg, self.gen, self.device)
        self.opt_R.zero_grad(set_to_none=True)
        if self.opt_A:
            self.opt_A.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            loss, logits, _, ce, ls = discovery_loss(self.G, self.A, self.R, z, k, eps, cfg.gamma)
            extra = {}
            if self.hessian > 0:
                penalty = hessian_penalty(self.G, self.A, z, self.gen)
                loss = loss + self.hessian * penalty
                extra["hessian"] = penalty.item()
        loss.backward()
        self.opt_R.step()
        if self.opt_A:
            self.opt_A.step()
        self.step_count += 1
        acc = (logits.argmax(1) == k).float().mean()
        return {"loss": loss.item(), "ce": ce.item(), "train_rca": acc.item(),
                "train_ls": cfg.gamma * ls.item(), "train_shift_mae": ls.item(), **extra}

    def state_dict(self) -> dict:
        return {"A": self.A.state_dict(), "R": self.R.state_dict(), "opt_R": self.opt_R.state_dict(),
                "opt_A": self.opt_A.state_dict() if self.opt_A else {}, "step": self.step_count,
                "rng": self.gen.get_state(), "config": self.cfg.to_dict()}

    def load_state_dict(self, s: dict) -> None:
        self.A.load_state_dict(s["A"])
        self.R.load_state_dict(s["R"])
        if s.get("opt_R") is not None:  # None: a finished run's slimmed checkpoint (runner.slim_checkpoint)
            self.opt_R.load_state_dict(s["opt_R"])
        if self.opt_A and s.get("opt_A"):
            self.opt_A.load_state_dict(s["opt_A"])
        self.step_count = int(s["step"])
        self.gen.set_state(s["rng"])


__all__ = ["Discovery", "DiscoveryConfig", "discovery_loss", "freeze", "reference_step", "sample_shifts"]


def reference_step(G: nn.Module, A: Directions, R: nn.Module, opt: torch.optim.Optimizer,
                   z: torch.Tensor, k: torch.Tensor, eps: torch.Tensor, gamma: float) -> float:
    """The step as commonly written: shifts built one sample at a time in Python, G's
    parameters left trainable and both G passes under autograd. The benchmark's baseline and the
    test's oracle for `discovery_loss`."""
    opt.zero_grad()
    M = A.matrix()
    shift = torch.stack([eps[i] * M[:, int(k[i])] for i in range(z.shape[0])])
    x0 = G(z)
    x1 = G(z + shift)
    logits, eps_hat = R(x0, x1)
    loss = F.cross_entropy(logits, k) + gamma * torch.mean(torch.abs(eps - eps_hat))
    loss.backward()
    opt.step()
    return loss.item()
