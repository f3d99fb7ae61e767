"""The curved ground-truth generator (kind `curved`): the phantom's eight factors driven through a
fixed, seeded, invertible non-linear map of z, so that each factor's true path is a curve.

G(z) = phantom(T(z)), T a stack of affine coupling layers (Dinh et al.'s RealNVP blocks: half the
coordinates, shuffled by a fixed permutation, scale and shift the other half through a small tanh
network; `bend` scales how far T is from the identity). The phantom's factors are u = M^T T(z), so
factor i moves, and nothing else does, along z(t) = T^-1(T(z) + t m_i): a curve through z whose
tangent there is J_T(z)^-1 m_i (`true_tangents`). `TruePaths` is that family of curves as a
direction set (exported by its seed and size alone, rebuilt exactly): the positive control a
curved method is read against. The map's weights come from a seeded generator, so the same
(latent_dim, seed, bend) is the same generator on every machine.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from raylatent.models.directions import MODEL, Directions, float_tensor
from raylatent.models.phantom_gen import FACTORS, PhantomGenerator, factor_axes, ground_truth_kind

BEND = 0.5  # how far T is from the identity: the true tangents at N(0, I) latents lie at mean |cos| 0.85
            # (min 0.56) from their directions at the origin, so no linear set reaches RECOVERED = 0.9
LAYERS = 4          # coupling layers
HIDDEN = 16         # width of each layer's tanh network
MAP_SEED = 7_071    # T's weights: seeded apart from M's


class CouplingMap(nn.Module):
    """A fixed invertible map R^d -> R^d: LAYERS affine coupling layers with seeded weights."""

    def __init__(self, latent_dim: int, seed: int = 0, bend: float = BEND, layers: int = LAYERS, hidden: int = HIDDEN):
        super().__init__()
        g = torch.Generator().manual_seed(MAP_SEED + seed)
        self.d, self.half, self.bend, self.layers = latent_dim, latent_dim // 2, float(bend), layers
        rest = latent_dim - self.half
        for i in range(layers):
            perm = torch.randperm(latent_dim, generator=g)
            self.register_buffer(f"perm{i}", perm)
            self.register_buffer(f"inv{i}", torch.argsort(perm))
            self.register_buffer(f"W1_{i}", torch.randn(hidden, self.half, generator=g) / self.half ** 0.5)
            self.register_buffer(f"b1_{i}", 0.5 * torch.randn(hidden, generator=g))
            self.register_buffer(f"Ws_{i}", torch.randn(rest, hidden, generator=g) / hidden ** 0.5)
            self.register_buffer(f"Wt_{i}", torch.randn(rest, hidden, generator=g) / hidden ** 0.5)

    def _st(self, i: int, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(a @ getattr(self, f"W1_{i}").T + getattr(self, f"b1_{i}"))
        return self.bend * torch.tanh(h @ getattr(self, f"Ws_{i}").T), self.bend * (h @ getattr(self, f"Wt_{i}").T)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z
        for i in range(self.layers):
            x = x[:, getattr(self, f"perm{i}")]
            a, b = x[:, :self.half], x[:, self.half:]
            s, t = self._st(i, a)
            x = torch.cat([a, b * torch.exp(s) + t], dim=1)
        return x

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        x = y
        for i in reversed(range(self.layers)):
            a, b = x[:, :self.half], x[:, self.half:]
            s, t = self._st(i, a)
            x = torch.cat([a, (b - t) * torch.exp(-s)], dim=1)[:, getattr(self, f"inv{i}")]
        return x

    def jacobian(self, z: torch.Tensor) -> torch.Tensor:
        """dT/dz at each latent (B x d x d)."""
        from torch.func import jacrev, vmap

        return vmap(jacrev(lambda v: self.forward(v[None])[0]))(z)


def path_tangents(warp: CouplingMap, M: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """B x d x F unit tangents at latents z of the paths z(t) = T^-1(T(z) + t m_i): J_T(z)^-1 m_i."""
    with torch.no_grad():
        X = torch.linalg.solve(warp.jacobian(z.float()), M.expand(z.shape[0], -1, -1))
    return X / X.norm(dim=1, keepdim=True)


class CurvedPhantomGenerator(PhantomGenerator):
    """The phantom seen through T: `first_layer(z)` = M^T T(z), so every factor path is curved."""

    def __init__(self, latent_dim: int = 32, size: int = 64, width: int = 0, seed: int = 0, bend: float = BEND):
        super().__init__(latent_dim, size, width, seed)
        self.warp = CouplingMap(latent_dim, seed, bend)

    def first_layer(self, z: torch.Tensor) -> torch.Tensor:
        return super().first_layer(self.warp(z.reshape(z.shape[0], self.latent_dim)))

    def true_tangents(self, z: torch.Tensor) -> torch.Tensor:
        """B x d x F unit tangents of the true factor paths at latents z."""
        return path_tangents(self.warp, self.M, z)

    def true_paths(self) -> "TruePaths":
        return TruePaths(self.latent_dim, self.seed, self.warp.bend)


class TruePaths(Directions):
    """The curved phantom's true factor paths: shift(z, k, eps) = T^-1(T(z) + eps m_k) - z. The
    reader's view `A` is their tangents at the origin."""

    model = "curved-truth"

    def __init__(self, latent_dim: int, seed: int = 0, bend: float = BEND):
        super().__init__(latent_dim, len(FACTORS))
        self.seed, self.bend = int(seed), float(bend)
        self.warp = CouplingMap(latent_dim, seed, bend)
        self.register_buffer("M", factor_axes(latent_dim, seed))

    def forward(self, z: torch.Tensor, k: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return self.warp.inverse(self.warp(z) + eps[:, None] * self.M.T[k]) - z

    def tangent(self, z: torch.Tensor) -> torch.Tensor:
        return path_tangents(self.warp, self.M, z)

    def matrix(self) -> torch.Tensor:
        return self.tangent(torch.zeros(1, self.latent_dim))[0]

    def arrays(self) -> dict[str, Any]:
        return {"A": self.matrix(), "latent_dim": torch.tensor(float(self.latent_dim)),
                "seed": torch.tensor(float(self.seed)), "bend": torch.tensor(self.bend), MODEL: self.model}

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> "TruePaths":
        return cls(int(round(float(np.asarray(arrays["latent_dim"])))), int(round(float(np.asarray(arrays["seed"])))),
                   float(float_tensor(arrays["bend"])))


def _register() -> None:
    from raylatent.models.registry import register

    register(ground_truth_kind("curved", "Curved phantom (ground truth)", CurvedPhantomGenerator,
                               truth=lambda G: (G.true_tangents, FACTORS), paths=lambda G: G.true_paths()))


_register()
