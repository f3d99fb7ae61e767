"""Direction models A in R^{d x K}: map (direction index k, shift eps) to a latent shift.

- proj:   the paper's "Unit Length" (and "100 Directions") columns, as the authors' code built them
          (Voynov & Babenko's `DeformatorType.PROJECTIVE`, chosen in their `TrainDirections.py`):
          a Linear(K, d) *with a trained bias* applied to eps * e_k, weights initialised
          0.1 * N(0, 1), the bias at nn.Linear's default U(-1/sqrt(K), 1/sqrt(K)), and the output
          rescaled to norm |eps|. A shift of eps moves exactly |eps| in latent space, but along
          (eps * w_k + b), so the direction depends on eps (and on its sign) through the bias.
- unit:   our own variant, not the paper's: K free columns normalised to unit length, no bias, so
          the shift is exactly eps * a_k. Kept as a separate ablation row.
- ortho:  K = d, A = exp(S - S^T), S ~ N(0, 1) (the authors' `log_mat_half` with random_init, the
          setting their script uses): special orthogonal by construction.
- random: fixed random unit columns (orthonormal when K <= d): the baseline of Figs 9-10.

Every model exports `arrays()`: the d x K unit columns a reader sees (`A`) plus whatever else its
shift needs (proj: the raw weight `W` and bias `b`); `shift_fn(arrays)` rebuilds the exact shift
from those arrays, so the report's sweeps and the labels follow the path the trial learned.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn


class Directions(nn.Module):
    kind = "base"

    def __init__(self, latent_dim: int, K: int):
        super().__init__()
        self.latent_dim, self.K = latent_dim, K

    def matrix(self) -> torch.Tensor:
        """d x K unit columns: the directions as a reader sees them."""
        raise NotImplementedError

    def forward(self, k: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Shifts (B x d) for direction indices k (B,) and magnitudes eps (B,)."""
        return eps[:, None] * self.matrix().T[k]

    def arrays(self) -> dict[str, torch.Tensor]:
        """What an export needs to rebuild this model's shifts (see `shift_fn`)."""
        return {"A": self.matrix()}


class UnitDirections(Directions):
    kind = "unit"

    def __init__(self, latent_dim: int, K: int, generator: torch.Generator | None = None):
        super().__init__(latent_dim, K)
        self.A = nn.Parameter(torch.randn(latent_dim, K, generator=generator))

    def matrix(self):
        return self.A / self.A.norm(dim=0, keepdim=True)


def proj_shift(W: torch.Tensor, b: torch.Tensor, k: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The authors' projective shift: (eps * w_k + b) rescaled to norm |eps| (B x d)."""
    out = eps[:, None] * W.T[k] + b
    return out * (eps.abs()[:, None] / out.norm(dim=1, keepdim=True).clamp_min(1e-12))


class ProjDirections(Directions):
    kind = "proj"

    def __init__(self, latent_dim: int, K: int, generator: torch.Generator | None = None):
        super().__init__(latent_dim, K)
        self.linear = nn.Linear(K, latent_dim, bias=True)
        bound = 1.0 / K ** 0.5  # nn.Linear's default bias init, the authors never touch it
        with torch.no_grad():
            self.linear.weight.copy_(0.1 * torch.randn(latent_dim, K, generator=generator))
            self.linear.bias.copy_((torch.rand(latent_dim, generator=generator) * 2 - 1) * bound)

    def forward(self, k, eps):
        return proj_shift(self.linear.weight, self.linear.bias, k, eps)

    def matrix(self):
        """The columns w_k / |w_k|: the direction a large positive shift tends to (the bias
        bends it at small |eps|; `arrays()` carries the bias for exact sweeps)."""
        W = self.linear.weight
        return W / W.norm(dim=0, keepdim=True)

    def arrays(self) -> dict[str, torch.Tensor]:
        return {"A": self.matrix(), "W": self.linear.weight, "b": self.linear.bias}


class OrthoDirections(Directions):
    kind = "ortho"

    def __init__(self, latent_dim: int, K: int, generator: torch.Generator | None = None):
        if K != latent_dim:
            raise ValueError(f"ortho directions need K == latent_dim ({latent_dim}), got K={K}")
        super().__init__(latent_dim, K)
        self.S = nn.Parameter(torch.randn(latent_dim, latent_dim, generator=generator))

    def matrix(self):
        return torch.linalg.matrix_exp(self.S - self.S.T)


class RandomDirections(Directions):
    kind = "random"

    def __init__(self, latent_dim: int, K: int, generator: torch.Generator | None = None,
                 ortho: bool = False):
        super().__init__(latent_dim, K)
        A = torch.randn(latent_dim, K, generator=generator)
        if ortho and K <= latent_dim:
            A = torch.linalg.qr(A).Q
        self.register_buffer("A", A / A.norm(dim=0, keepdim=True))

    def matrix(self):
        return self.A


class FixedDirections(Directions):
    """Directions given as a matrix (closed-form baselines, loaded exports)."""

    kind = "fixed"

    def __init__(self, A: torch.Tensor):
        super().__init__(A.shape[0], A.shape[1])
        self.register_buffer("A", A / A.norm(dim=0, keepdim=True))

    def matrix(self):
        return self.A


def as_arrays(A) -> dict:
    """A direction set as its arrays: an export's dict (A, and W and b for proj) or a plain d x K
    matrix, which is `{"A": matrix}`."""
    return A if isinstance(A, dict) else {"A": A}


def shift_fn(arrays) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """(k, eps) -> B x d latent shifts from exported arrays (or a plain matrix): the proj path
    when a bias was exported, eps * a_k otherwise."""
    arrays = as_arrays(arrays)
    A = torch.as_tensor(np.asarray(arrays["A"]), dtype=torch.float32)
    if "b" in arrays:
        W = torch.as_tensor(np.asarray(arrays["W"]), dtype=torch.float32)
        b = torch.as_tensor(np.asarray(arrays["b"]), dtype=torch.float32)

        def proj(k, eps):
            return proj_shift(W.to(eps.device), b.to(eps.device), k, eps)

        return proj

    def linear(k, eps):
        return eps[:, None] * A.to(eps.device).T[k]

    return linear
