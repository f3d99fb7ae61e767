"""Can the images tell a truth generator's factors apart at all?

Why: a factor combination that moves no pixel cannot be recovered by any method that sees only
images, so it caps `axes_recovered` whatever the method. At each latent the image's Jacobian along
the true factor directions (P x F, central differences in float64) is decomposed; a right singular
vector whose singular value is below NULL x the largest is a combination the images ignore there.
The phantom's is rank 7 at most (5-7: breast and z draw nothing at some latents): width, height and
size reach the image only through the body's half axes a = 150 w s and b = 100 h s (docs/methods.md).
"""
from __future__ import annotations

import copy

import numpy as np
import torch

LATENTS = 16
STEP = 1e-3
NULL = 1e-4    # relative singular value: the rendering's own truncation noise is ~1e-6, real effects > 1e-2
SEED = 4_242


@torch.no_grad()
def identifiability(G, truth, latents: int = LATENTS, step: float = STEP, seed: int = SEED) -> dict:
    """truth: (d x F axes, names) or (tangents(z) -> B x d x F, names), as `truth_of` gives. Returns
    the Jacobian's rank per latent (min and max over `latents` N(0, I) latents, seeded) and, per
    factor, the mean share of its direction that the images cannot see (its squared projection on
    the null space: 0 = fully visible, 1 = invisible)."""
    M, names = truth
    G64 = copy.deepcopy(G).double().cpu().eval()
    z = torch.randn(latents, G64.latent_dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    Y = (M(z.float()).double() if callable(M) else torch.as_tensor(M, dtype=torch.float64).expand(latents, -1, -1))
    F = Y.shape[2]
    ranks, hidden = [], np.zeros(F)
    for zi, Yi in zip(z, Y):
        shifts = step * Yi.T  # F x d
        f = G64(torch.cat([zi + shifts, zi - shifts])).reshape(2 * F, -1)
        J = ((f[:F] - f[F:]) / (2 * step)).T.numpy()  # P x F
        _, s, Vh = np.linalg.svd(J, full_matrices=False)
        null = Vh[s < NULL * max(s[0], 1e-300)]
        ranks.append(F - len(null))
        hidden += (null ** 2).sum(0)
    return {"latents": latents, "rank_min": int(min(ranks)), "rank_max": int(max(ranks)), "factors": F,
            "hidden_share": {n: round(float(h / latents), 4) for n, h in zip(names, hidden)}}
