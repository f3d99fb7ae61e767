"""Direction models A in R^{d x K}: map (direction index k, shift eps) to a latent shift.

- unit:   K free columns, normalised to unit length in the forward pass (Voynov & Babenko's
          "unit length"); no bias, so the shift is exactly eps * a_k.
- proj:   the authors' code's variant: a linear layer *with bias* applied to eps * e_k, its output
          rescaled to norm |eps|. Because of the bias the direction depends on eps (it is not a
          fixed column); kept only for a faithful comparison.
- ortho:  K = d, A = exp(S - S^T) (torch.linalg.matrix_exp): special orthogonal by construction.
- random: fixed random unit columns (orthonormal when K <= d and ortho=True): the baseline of the
          paper's Figs 9-10.
"""
from __future__ import annotations

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


class UnitDirections(Directions):
    kind = "unit"

    def __init__(self, latent_dim: int, K: int, generator: torch.Generator | None = None):
        super().__init__(latent_dim, K)
        self.A = nn.Parameter(torch.randn(latent_dim, K, generator=generator))

    def matrix(self):
        return self.A / self.A.norm(dim=0, keepdim=True)


class ProjDirections(Directions):
    kind = "proj"

    def __init__(self, latent_dim: int, K: int, generator: torch.Generator | None = None):
        super().__init__(latent_dim, K)
        self.linear = nn.Linear(K, latent_dim, bias=True)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(latent_dim, K, generator=generator) / K ** 0.5)
            self.linear.bias.zero_()

    def forward(self, k, eps):
        x = torch.zeros(k.shape[0], self.K, device=eps.device, dtype=eps.dtype)
        x[torch.arange(k.shape[0], device=k.device), k] = eps
        out = self.linear(x)
        return out * (eps.abs()[:, None] / out.norm(dim=1, keepdim=True).clamp_min(1e-12))

    def matrix(self):
        eye = torch.eye(self.K, device=self.linear.weight.device)
        cols = self.linear(eye).T  # direction at eps = +1
        return cols / cols.norm(dim=0, keepdim=True)


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


def make_directions(kind: str, latent_dim: int, K: int, seed: int = 0) -> Directions:
    g = torch.Generator().manual_seed(seed)
    if kind == "unit":
        return UnitDirections(latent_dim, K, g)
    if kind == "proj":
        return ProjDirections(latent_dim, K, g)
    if kind == "ortho":
        return OrthoDirections(latent_dim, K, g)
    if kind == "random":
        return RandomDirections(latent_dim, K, g, ortho=K <= latent_dim)
    raise ValueError(f"deformator {kind!r}: must be one of unit, proj, ortho, random")
