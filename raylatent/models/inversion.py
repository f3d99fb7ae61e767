"""Latents of held-out images, for the memorisation figure (paper Fig. 11)."""
from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def encode(vae: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The VAE posterior means."""
    vae.eval()
    mu, _ = vae.encoder(images)
    return mu


def reverse_search(G: nn.Module, images: torch.Tensor, steps: int = 300, lr: float = 0.05,
                   restarts: int = 4, seed: int = 0) -> torch.Tensor:
    """Reverse latent search (Fernández Blanco et al.): optimise z so that G(z) matches each
    image in MSE, with a small prior term; best of `restarts` random starts per image."""
    G.eval()
    for p in G.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    n, d = images.shape[0], G.latent_dim
    best_z, best_err = torch.zeros(n, d), torch.full((n,), float("inf"))
    for _ in range(restarts):
        z = torch.randn(n, d, generator=gen).requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            err = ((G(z) - images) ** 2).flatten(1).mean(1)
            (err.sum() + 1e-3 * (z ** 2).sum()).backward()
            opt.step()
        with torch.no_grad():
            err = ((G(z) - images) ** 2).flatten(1).mean(1)
            better = err < best_err
            best_z[better], best_err[better] = z.detach()[better], err[better]
    return best_z
