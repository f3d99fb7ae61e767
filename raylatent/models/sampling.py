"""Seeded samples of a z -> image module, in batches: the one way the stages draw generated slices
(FID, the positive controls' fits, the coverage check)."""
from __future__ import annotations

import torch


@torch.no_grad()
def sample(G, n: int, latent_dim: int, seed: int, batch: int = 128, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, images): n latents from N(0, I) seeded by `seed` (on the CPU) and G's images of them
    (on the CPU), `batch` at a time."""
    z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
    zd = z if device is None else z.to(device)
    return z, torch.cat([G(zd[i:i + batch]).cpu() for i in range(0, n, batch)])
