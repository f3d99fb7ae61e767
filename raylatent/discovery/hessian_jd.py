"""Hessian joint diagonalisation (ours, not the paper's): closed-form directions along which the
generator's second derivatives are as diagonal as possible.

Why: Voynov & Babenko's objective cannot tell the true axes from any rotation of them inside the
factors' span (docs/methods.md); the Hessian penalty (Peebles et al., ECCV 2020) can (it is
smaller along the phantom's axes than along rotations of them), but trained beside V&B it pulls
directions out of the span. Here the penalty is minimised over rotations only, so the span is kept:
1. Span: the top eigenvectors of E_z[J^T J] (J = dG/dz by central differences along each latent
   axis, over `latents` seeded N(0, I) latents): the directions G moves at all, strongest first;
   at most `rank`, none with an eigenvalue below NULL x the largest (the phantom's unused ones:
   ~3e-7 with a step of 0.01, its smallest real one 1e-2; a step of 0.1 leaves 1e-3 of truncation).
2. Second derivatives along that basis B (central differences, step `h_step`): one r x r
   symmetric matrix per latent and pixel.
3. The rotation V that jointly diagonalises them all (Cardoso & Souloumiac's Jacobi angles,
   pyriemann's `rjd`), i.e. the least off-diagonal energy: the Hessian penalty summed over pixels.
   That energy depends on the matrices only through their second-moment operator, so they are
   first reduced to its eigen-matrices (at most r(r+1)/2 of them, exactly), which keeps memory at
   r^4 whatever the image size.
Directions: the r columns of B V, largest first-order effect first; no more (where G moves in fewer
directions than K, or K > `rank`, the set is smaller than K and is judged at its own size, as any
closed-form set is). Cost: latents x (2d + 2r^2 + 1) images through G.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

LATENTS = 16   # N(0, I) latents the derivatives are taken at (seeded)
STEP = 1e-2    # finite-difference step of the Jacobian, latent units (float32: noise ~1e-7 of the top eigenvalue)
H_STEP = 0.1   # ... of the second derivatives (0.05-0.2 recover the same phantom axes)
RANK = 16      # at most this many directions are rotated (cost grows as rank^2)
NULL = 1e-5    # eigenvalues of E[J^T J] below this share of the largest: directions G ignores
BATCH = 256    # images per forward pass


@torch.no_grad()
def _images(G, z: torch.Tensor, batch: int = BATCH) -> torch.Tensor:
    """G(z) flattened, float64 on the CPU (n x P)."""
    ref = next((t for t in (*G.parameters(), *G.buffers()) if t.is_floating_point()), None)
    device, dtype = (ref.device, ref.dtype) if ref is not None else (torch.device("cpu"), z.dtype)
    out = [G(z[i:i + batch].to(device, dtype)).reshape(len(z[i:i + batch]), -1).double().cpu()
           for i in range(0, len(z), batch)]
    return torch.cat(out)


def jacobian_gram(G, z: torch.Tensor, step: float = STEP) -> torch.Tensor:
    """E_z[J^T J] (d x d) over the latents z, J by central differences along each latent axis."""
    n, d = z.shape
    E = torch.eye(d, dtype=z.dtype) * step
    gram = torch.zeros(d, d, dtype=torch.float64)
    for zi in z:
        f = _images(G, torch.cat([zi + E, zi - E]))
        J = (f[:d] - f[d:]).T / (2 * step)  # P x d
        gram += J.T @ J
    return gram / n


def hessian_moments(G, z: torch.Tensor, B: torch.Tensor, step: float = H_STEP) -> torch.Tensor:
    """Sum over latents and pixels of vec(H) vec(H)^T, H the r x r Hessian of a pixel along the
    columns of B (d x r); vec takes the diagonal, then sqrt(2) x each upper off-diagonal entry,
    so that |vec(H)|^2 is H's squared Frobenius norm."""
    r = B.shape[1]
    iu = torch.triu_indices(r, r, offset=1)
    eye = torch.eye(r, dtype=torch.float64)
    # offsets in B's coordinates: 0, +-e_i, then (+,+), (+,-), (-,+), (-,-) for each pair i < j
    pairs = [s * eye[i] + t * eye[j] for i, j in iu.T.tolist() for s, t in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
    O = torch.stack([torch.zeros(r, dtype=torch.float64), *eye, *(-eye), *pairs]) if pairs else \
        torch.stack([torch.zeros(r, dtype=torch.float64), *eye, *(-eye)])
    shifts = (step * O @ B.double().T).to(z.dtype)
    C = torch.zeros(r + iu.shape[1], r + iu.shape[1], dtype=torch.float64)
    for zi in z:
        f = _images(G, zi + shifts)
        f0, fp, fm, fx = f[0], f[1:1 + r], f[1 + r:1 + 2 * r], f[1 + 2 * r:].reshape(-1, 4, f.shape[1])
        diag = (fp - 2 * f0 + fm) / step ** 2
        off = (fx[:, 0] - fx[:, 1] - fx[:, 2] + fx[:, 3]) / (4 * step ** 2)
        Q = torch.cat([diag, off * 2 ** 0.5])
        C += Q @ Q.T
    return C


def eigen_matrices(C: np.ndarray, r: int) -> np.ndarray:
    """Symmetric r x r matrices {X_k} whose sum of vec(X_k) vec(X_k)^T is C (vec as in
    `hessian_moments`): any quadratic function of the matrices, summed, is the same over them."""
    vals, U = np.linalg.eigh(C)
    keep = vals > max(vals.max(), 0.0) * 1e-12
    iu = np.triu_indices(r, 1)
    out = []
    for v, u in zip(vals[keep], U[:, keep].T):
        X = np.diag(u[:r])
        X[iu] = u[r:] / 2 ** 0.5
        X = X + np.triu(X, 1).T
        out.append(np.sqrt(v) * X)
    return np.array(out).reshape(-1, r, r)


def off_diagonal_share(mats: np.ndarray, V: np.ndarray) -> float:
    """The share of the matrices' squared Frobenius norm off the diagonal in the basis V."""
    D = np.einsum("ai,nab,bj->nij", V, mats, V)
    total = float((D ** 2).sum())
    return (total - float((np.diagonal(D, axis1=1, axis2=2) ** 2).sum())) / max(total, 1e-300)


def jacobian_basis(G, K: int, latents: int = LATENTS, step: float = STEP, rank: int = RANK,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """The latents, E[J^T J], its eigenvectors (d x d, largest first) and how many of them are
    rotated: at most min(K, rank), none that G ignores."""
    d = G.latent_dim
    z = torch.randn(latents, d, generator=torch.Generator().manual_seed(seed))
    gram = jacobian_gram(G, z, step)
    vals, vecs = torch.linalg.eigh(gram)
    order = torch.argsort(vals, descending=True)
    vals, vecs = vals[order], vecs[:, order]
    r = int(min(K, rank, d, int((vals > NULL * vals[0].clamp_min(1e-300)).sum())))
    return z, gram, vecs, r


def images_drawn(latent_dim: int, K: int, latents: int = LATENTS, rank: int = RANK) -> int:
    """How many images `hessian_jd` draws through G at most (its cost; the dry run prices it)."""
    r = min(K, rank, latent_dim)
    return latents * (2 * latent_dim + (1 + 2 * r * r if r > 1 else 0))


def hessian_jd(G, K: int, latents: int = LATENTS, step: float = STEP, h_step: float = H_STEP, rank: int = RANK,
               seed: int = 0) -> torch.Tensor:
    """d x r unit directions, r <= min(K, rank, d) (see the module doc)."""
    from pyriemann.geometry.ajd import rjd

    z, gram, vecs, r = jacobian_basis(G, K, latents, step, rank, seed)
    B = vecs[:, :r]
    V = np.eye(r)
    if r > 1:
        mats = eigen_matrices(hessian_moments(G, z, B, h_step).numpy(), r)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Convergence not reached": the last sweep's rotation is kept
            V, _ = rjd(mats, n_iter_max=1000, eps=1e-10)
    A = B @ torch.as_tensor(V, dtype=torch.float64)
    effect = torch.einsum("dk,de,ek->k", A, gram, A)
    A = A[:, torch.argsort(effect, descending=True)]
    signs = torch.sign(A[A.abs().argmax(0), torch.arange(A.shape[1])])
    return (A * signs).float()
