"""GAN training schedules from the paper (pure functions, unit-tested)."""
from __future__ import annotations

import torch


def instance_noise_sigma(epoch: int, epochs: int, start: float = 0.1, steps: int = 5) -> float:
    """Gaussian instance noise on D's input: `start` at epoch 0, lowered in `steps` equal steps,
    and off from the midpoint of training on (the paper). The authors' code switches it off
    before the first batch; we follow the paper."""
    half = epochs / 2
    if epoch >= half or start <= 0:
        return 0.0
    level = int(steps * epoch / half)  # 0 .. steps-1
    return start * (1 - level / steps)


def smoothed_real_targets(n: int, low: float = 0.9, high: float = 1.0,
                          generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """One-sided label smoothing: real targets ~ U[low, high]; fake targets stay 0."""
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def random_affine(x: torch.Tensor, degrees: float = 1.0, scale=(1.0, 1.1),
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-sample small rotation and zoom (the authors' augmentation), vectorised with
    affine_grid; torchvision's v2 RandomAffine draws one transform per batch tensor."""
    n = x.shape[0]
    ang = (torch.rand(n, generator=generator) * 2 - 1) * degrees * torch.pi / 180
    s = scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=generator)
    cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n)], 1),
                         torch.stack([sin, cos, torch.zeros(n)], 1)], 1).to(x)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    # padding with -1 (air) rather than 0 (which would be 500 HU of fake tissue)
    return torch.nn.functional.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1
