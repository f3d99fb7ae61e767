"""Closed-form direction baselines, scored like the learned ones.

- SeFa (Shen & Zhou): the top eigenvectors of W^T W for the generator's first linear map of z.
  For the DCGAN the first ConvTranspose2d on a 1x1 input is exactly linear (`first_linear`).
- GANSpace (Härkönen et al.): PCA of the first layer's activations over sampled z, mapped back to
  latent directions by least squares (the BigGAN-style variant for generators without a
  mapping network)."""
from __future__ import annotations

import torch


@torch.no_grad()  # directions are data, not part of a graph (W is usually a trainable weight)
def sefa(W: torch.Tensor, K: int) -> torch.Tensor:
    """W: (F x d) linear map of z. Returns d x K unit columns, largest eigenvalue first."""
    vals, vecs = torch.linalg.eigh(W.T.double() @ W.double())
    order = torch.argsort(vals, descending=True)[:K]
    return vecs[:, order].float()


@torch.no_grad()
def ganspace(first_layer, latent_dim: int, K: int, n: int = 4096, seed: int = 0) -> torch.Tensor:
    """first_layer: z (n x d) -> activations (n x ...). Returns d x K unit columns."""
    z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
    Y = first_layer(z).reshape(n, -1).double()
    Yc = Y - Y.mean(0)
    _, _, Vh = torch.linalg.svd(Yc, full_matrices=False)
    U = Vh[:K].T                       # F x K principal axes in activation space
    X = Yc @ U                         # n x K coordinates
    V = torch.linalg.lstsq(X, z.double()).solution  # K x d: latent direction per component
    V = V / V.norm(dim=1, keepdim=True)
    return V.T.float()


def first_layer_of(G):
    """The first (linear) layer of a raylatent generator as a z -> activations function (every
    registered kind's generator has `first_layer`)."""
    return G.first_layer
