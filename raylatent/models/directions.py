"""Direction sets: K latent directions and the shift each one makes at a latent z.

A direction set is a module `shift(z, k, eps) -> B x d` (its forward): the latent shift of size eps
along direction k at latents z. The paper's sets are linear (the shift ignores z); a non-linear
path (WarpedGANSpace, say) uses z. Every set also shows a reader d x K unit columns (`matrix()`,
exported as `A`, what plain numpy and the ground-truth scores read) and exports itself as arrays
(`arrays()`: `A`, its own arrays, and its model name) that `rebuild(arrays)` turns back into the
same shifts, so the labels, the report's sweeps and the API follow the path the trial learned.

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
- fixed:  a given matrix (closed-form methods, controls, rebuilt linear exports).

A subclass names itself with `model = "..."` and is then known to `rebuild` (no other
registration); a linear one needs only `matrix()`, one with its own path overrides `forward`,
`arrays` and `from_arrays`.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn


MODEL = "model"  # the arrays' entry naming the set's model (a string), for `rebuild`
MODELS: dict[str, type["Directions"]] = {}


class Directions(nn.Module):
    """K directions in a d-dimensional latent space; linear (eps * a_k) unless a subclass
    overrides `forward`."""

    model: ClassVar[str] = ""

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.model:
            MODELS[cls.model] = cls

    def __init__(self, latent_dim: int, K: int):
        super().__init__()
        self.latent_dim, self.K = latent_dim, K

    def matrix(self) -> torch.Tensor:
        """d x K unit columns: the directions as a reader sees them."""
        raise NotImplementedError

    def forward(self, z: torch.Tensor, k: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Shifts (B x d) at latents z (B x d) for direction indices k (B,) and magnitudes eps (B,)."""
        return eps[:, None] * self.matrix().T[k]

    def tangent(self, z: torch.Tensor) -> torch.Tensor:
        """B x d x K unit directions of the K paths at latents z (a linear set: its columns
        everywhere; a curved one overrides it). What ground-truth tangents are compared with."""
        return self.matrix()[None].expand(z.shape[0], -1, -1)

    def arrays(self) -> dict[str, Any]:
        """Everything `rebuild` needs for the same shifts: `A` (d x K), the model's own arrays and
        its name (a linear set exports its matrix only and comes back as `fixed`)."""
        return {"A": self.matrix()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> "Directions":
        """The set rebuilt from its `arrays()` (tensors or numpy)."""
        return FixedDirections(float_tensor(arrays["A"]), normalize=False)


def float_tensor(x) -> torch.Tensor:
    """An exported array (numpy, or a tensor on any device) as a float32 CPU tensor."""
    return torch.as_tensor(np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x), dtype=torch.float32)


class UnitDirections(Directions):
    model = "unit"

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
    model = "proj"

    def __init__(self, latent_dim: int, K: int, generator: torch.Generator | None = None):
        super().__init__(latent_dim, K)
        self.linear = nn.Linear(K, latent_dim, bias=True)
        bound = 1.0 / K ** 0.5  # nn.Linear's default bias init, the authors never touch it
        with torch.no_grad():
            self.linear.weight.copy_(0.1 * torch.randn(latent_dim, K, generator=generator))
            self.linear.bias.copy_((torch.rand(latent_dim, generator=generator) * 2 - 1) * bound)

    def forward(self, z, k, eps):
        return proj_shift(self.linear.weight, self.linear.bias, k, eps)

    def matrix(self):
        """The columns w_k / |w_k|: the direction a large positive shift tends to (the bias
        bends it at small |eps|; `arrays()` carries the bias for exact sweeps)."""
        W = self.linear.weight
        return W / W.norm(dim=0, keepdim=True)

    def arrays(self) -> dict[str, Any]:
        return {"A": self.matrix(), "W": self.linear.weight, "b": self.linear.bias, MODEL: self.model}

    @classmethod
    def from_arrays(cls, arrays):
        W, b = float_tensor(arrays["W"]), float_tensor(arrays["b"])
        out = cls(W.shape[0], W.shape[1])
        with torch.no_grad():
            out.linear.weight.copy_(W)
            out.linear.bias.copy_(b)
        return out


class OrthoDirections(Directions):
    model = "ortho"

    def __init__(self, latent_dim: int, K: int, generator: torch.Generator | None = None):
        if K != latent_dim:
            raise ValueError(f"ortho directions need K == latent_dim ({latent_dim}), got K={K}")
        super().__init__(latent_dim, K)
        self.S = nn.Parameter(torch.randn(latent_dim, latent_dim, generator=generator))

    def matrix(self):
        return torch.linalg.matrix_exp(self.S - self.S.T)


class RandomDirections(Directions):
    model = "random"

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

    model = "fixed"

    def __init__(self, A: torch.Tensor, normalize: bool = True):
        """normalize=False keeps A as given (an export's columns, already unit: rebuilt exactly)."""
        super().__init__(A.shape[0], A.shape[1])
        self.register_buffer("A", A / A.norm(dim=0, keepdim=True) if normalize else A)

    def matrix(self):
        return self.A


def as_arrays(A) -> dict:
    """A direction set as its arrays: a set's `arrays()`, an export's dict, or a plain d x K matrix
    (which is `{"A": matrix}`)."""
    if isinstance(A, Directions):
        return A.arrays()
    return A if isinstance(A, dict) else {"A": A}


def rebuild(A) -> Directions:
    """The direction set whose shifts an export (or a set's arrays, or a plain matrix) describes:
    the model it names; an export without a name (written before sets named themselves) is the
    authors' proj when it carries a bias, linear otherwise."""
    if isinstance(A, Directions):
        return A
    arrays = as_arrays(A)
    name = str(np.asarray(arrays.get(MODEL, "proj" if "b" in arrays else "fixed")))
    if name not in MODELS:
        raise ValueError(f"direction model {name!r}: not one of {', '.join(sorted(MODELS))} "
                         f"(the export was written by a method this installation does not have)")
    return MODELS[name].from_arrays(arrays)
