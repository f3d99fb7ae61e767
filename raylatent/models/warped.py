"""WarpedGANSpace's non-linear latent paths (Tzelepis, Tzimiropoulos & Patras, ICCV 2021).

Path k follows the gradient of a warping function, a weighted sum of Gaussian RBFs in latent space,
f_k(z) = sum_i alpha_ki exp(-gamma_k |z - v_ki|^2), with the support vectors v_ki in antipodal
pairs (v, -v) weighted +1 and -1, placed at 0.8-0.9 of the prior's expected norm (sqrt(d) for
N(0, I)) and gamma = 1 / d unless set, as the authors initialise them. Their trainer moves z by
eps along the normalised gradient at z (one step); their traversals repeat small steps. Here the
shift is the path itself: `path_step`-long steps along the normalised gradient, integrated from z
over arc length |eps| (one step when |eps| <= path_step, which is then exactly the authors' shift),
so the discovery step, the labels and the report's sweeps all follow the same curve.

The reader's view `A` (d x K) is each path's direction at the origin: where a linear set's column
would be; its full path is `forward(z, k, eps)`.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from raylatent.models.directions import MODEL, Directions, float_tensor


def rbf_gradient(z: torch.Tensor, support: torch.Tensor, alphas: torch.Tensor, gammas: torch.Tensor) -> torch.Tensor:
    """grad_z f(z) (B x d) for each sample's own warping function: support B x M x d, alphas B x M,
    gammas B."""
    D = z[:, None, :] - support
    w = alphas * gammas[:, None] * torch.exp(-gammas[:, None] * (D * D).sum(-1))
    return -2.0 * (w[..., None] * D).sum(1)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


class WarpedDirections(Directions):
    """K RBF warping functions, each with `dipoles` antipodal pairs of support vectors."""

    model = "warped"

    def __init__(self, latent_dim: int, K: int, generator: torch.Generator | None = None, dipoles: int = 2,
                 gamma: float = 0.0, learn_gamma: bool = False, path_step: float = 0.5):
        super().__init__(latent_dim, K)
        self.path_step = float(path_step)
        expected = math.sqrt(latent_dim)  # |z| of N(0, I_d), about
        radii = torch.linspace(0.8 * expected, 0.9 * expected, K) if K > 1 else torch.tensor([0.85 * expected])
        v = _unit(torch.randn(K, dipoles, latent_dim, generator=generator)) * radii[:, None, None]
        self.support = nn.Parameter(torch.cat([v, -v], dim=1))                     # K x 2N x d
        self.register_buffer("alphas", torch.cat([torch.ones(K, dipoles), -torch.ones(K, dipoles)], dim=1))
        log_gamma = torch.full((K,), math.log(gamma if gamma > 0 else 1.0 / latent_dim))
        self.log_gamma = nn.Parameter(log_gamma, requires_grad=learn_gamma)

    def _direction(self, z: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return _unit(rbf_gradient(z, self.support[k], self.alphas[k], self.log_gamma.exp()[k]))

    def forward(self, z: torch.Tensor, k: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Each sample's own path: ceil(|eps| / path_step) equal steps (so a shift does not depend
        on the rest of its batch), the first along the normalised gradient at z."""
        n = torch.ceil(eps.detach().abs() / self.path_step).clamp_min(1)
        h = eps / n
        at = z
        for t in range(int(n.max()) if n.numel() else 0):
            at = at + torch.where(n > t, h, torch.zeros_like(h))[:, None] * self._direction(at, k)
        return at - z

    def matrix(self) -> torch.Tensor:
        zero = torch.zeros(self.K, self.latent_dim, device=self.support.device)
        return self._direction(zero, torch.arange(self.K, device=self.support.device)).T

    def tangent(self, z: torch.Tensor) -> torch.Tensor:
        B = z.shape[0]
        k = torch.arange(self.K, device=z.device).repeat(B)
        return self._direction(z.repeat_interleave(self.K, 0), k).reshape(B, self.K, -1).transpose(1, 2)

    def arrays(self) -> dict[str, Any]:
        return {"A": self.matrix(), "support": self.support, "alphas": self.alphas, "log_gamma": self.log_gamma,
                "path_step": torch.tensor(self.path_step), MODEL: self.model}

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> "WarpedDirections":
        support = float_tensor(arrays["support"])
        K, M, d = support.shape
        out = cls(d, K, dipoles=M // 2, path_step=float(np.asarray(arrays["path_step"])))
        with torch.no_grad():
            out.support.copy_(support)
            out.alphas.copy_(float_tensor(arrays["alphas"]))
            out.log_gamma.copy_(float_tensor(arrays["log_gamma"]))
        return out


def check_settings(s: dict) -> None:
    """ValueError on settings WarpedGANSpace cannot run with."""
    if not 1 <= s["dipoles"] <= 1024:
        raise ValueError(f"dipoles {s['dipoles']}: 1..1024 antipodal pairs of support vectors per path")
    if not 0 <= s["gamma"] <= 1e6:
        raise ValueError(f"gamma {s['gamma']}: the RBFs' width, > 0 (0 = 1 / latent_dim, the authors' default)")
    if not 0.01 <= s["path_step"] <= 100:
        raise ValueError(f"path_step {s['path_step']}: 0.01..100 (the arc length of one step along the path)")


SETTINGS = {"dipoles": 2, "gamma": 0.0, "learn_gamma": False, "path_step": 0.5}
