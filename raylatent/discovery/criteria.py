"""Disentangling criteria a learned direction set can add to Voynov & Babenko's objective.

The Hessian penalty (Peebles et al., ECCV 2020): a direction's effect on the image should not change
when another direction moves, i.e. the off-diagonal terms a_i^T H a_j of G's Hessian (per output
pixel) in the directions' coordinates should vanish. Estimated as the authors do for large
generators, without second derivatives: for Rademacher vectors v over the K directions,
Var_v[(G(z + e x) - 2 G(z) + G(z - e x)) / e^2] with x = sum_k v_k t_k (t_k the paths' tangents at
z), whose expectation is 2 sum_{i != j} (t_i^T H t_j)^2; the largest over pixels, averaged over z.
"""
from __future__ import annotations

import torch
from torch import nn

from raylatent.models.directions import Directions

HESSIAN_EPS = 0.1     # the finite-difference step (Peebles et al.'s default)
HESSIAN_SAMPLES = 2   # Rademacher vectors per latent (theirs: 2, the fewest an unbiased variance takes)


def hessian_penalty(G: nn.Module, directions: Directions, z: torch.Tensor, gen: torch.Generator | None = None,
                    eps: float = HESSIAN_EPS, samples: int = HESSIAN_SAMPLES, x0: torch.Tensor | None = None) -> torch.Tensor:
    """The penalty at latents z (B x d) along the set's paths; differentiable in its parameters."""
    T = directions.tangent(z)  # B x d x K
    B, _, K = T.shape
    x0 = G(z) if x0 is None else x0
    second = []
    for _ in range(samples):
        v = torch.randint(0, 2, (B, K), generator=gen, device=z.device).to(z.dtype) * 2 - 1
        x = eps * torch.einsum("bdk,bk->bd", T, v)
        second.append((G(z + x) - 2 * x0 + G(z - x)) / eps ** 2)
    var = torch.stack(second).var(dim=0, unbiased=True)
    return var.flatten(1).max(dim=1).values.mean()
