"""Fréchet distance between image sets, with the feature network named in every result.

The standard FID network (pytorch-fid's Inception, as the paper used) is used when the
`pytorch-fid` package (extra `fid`) and its weights file can be loaded (`weights` path, or the
torch hub cache, where pytorch-fid itself stores them); nothing is downloaded here;
otherwise a clearly named fallback, a fixed seeded random-conv feature extractor. Its values
are not comparable with published FIDs (the paper's 33.4 / 93.9), but rank checkpoints
consistently; the name travels with every FID into the metrics and the report. Never a silent
switch: callers record `extractor.name`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

FALLBACK_NAME = "fallback:random-conv-256 (seed 0; not comparable with published FID)"
INCEPTION_NAME = "inception-v3 (pytorch-fid, pool3 2048)"


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}).

    Tr((S1 S2)^{1/2}) is the sum of the square roots of S1 S2's eigenvalues (real and >= 0 in exact
    arithmetic: S1 S2 is similar to the PSD S1^{1/2} S2 S1^{1/2}), as torchmetrics computes it. No
    matrix square root: with as many samples as features (256 here) the covariances are singular and
    scipy's sqrtm warned on every epoch of every run while giving the same trace."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    diff = mu1 - mu2
    eig = np.linalg.eigvals(s1 @ s2)
    tr_covmean = np.sqrt(eig.astype(np.complex128)).real.sum()
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, dtype=np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


class RandomConvFeatures(nn.Module):
    """Fixed, seeded random CNN: the offline fallback feature network."""

    name = FALLBACK_NAME

    def __init__(self, dim: int = 256, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        chans = [1, 32, 64, 128, dim]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            conv = nn.Conv2d(cin, cout, 3, 2, 1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * (2.0 / (cin * 9)) ** 0.5)
                conv.bias.zero_()
            layers += [conv, nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
        for p in self.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(x.float(), size=(64, 64), mode="bilinear", align_corners=False)
        return self.net(x)


FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's file, as torch.hub caches it


def load_fid_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The Inception state dict, loaded weights-only: torch.hub's loader unpickles arbitrary
    objects (weights_only=False in this torch), so a planted .pth could run code. A file that is
    not a plain state dict of tensors is a one-line ConfigError."""
    from raylatent.errors import ConfigError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise ConfigError(f"FID weights {path}: not a plain weights file ({reason}); give pytorch-fid's "
                          f"{FID_WEIGHTS_NAME}") from None
    if not (isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())
            and "Conv2d_1a_3x3.conv.weight" in state and "Mixed_7c.branch_pool.conv.weight" in state):
        raise ConfigError(f"FID weights {path}: not the FID Inception state dict (expected keys such as "
                          f"Conv2d_1a_3x3.conv.weight); give pytorch-fid's {FID_WEIGHTS_NAME}")
    return state


class InceptionFeatures(nn.Module):
    name = INCEPTION_NAME

    def __init__(self, weights: str | None = None):
        super().__init__()
        from raylatent.errors import ConfigError

        if weights:
            if not Path(weights).is_file():
                raise ConfigError(f"FID weights {weights}: no such file")
            src = Path(weights).resolve()
        else:
            src = Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_NAME
            if not src.is_file():  # never download here: offline nodes would hang, not fail
                raise FileNotFoundError(f"{src}: FID Inception weights not cached")
        state = load_fid_weights(src)  # before pytorch-fid sees the file
        try:
            from pytorch_fid import inception as pfi  # optional dependency: pip install ".[fid]"
        except ImportError:
            if weights:
                raise ConfigError(f"FID weights {weights} given but pytorch-fid is not installed: "
                                  f"pip install '.[fid]'") from None
            raise
        loader = pfi.load_state_dict_from_url
        pfi.load_state_dict_from_url = lambda *a, **k: state  # their builder, our (checked) weights
        try:
            self.net = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True,
                                       normalize_input=True).eval()
        except RuntimeError as e:  # strict load_state_dict: missing or unexpected keys
            raise ConfigError(f"FID weights {src}: do not fit pytorch-fid's Inception "
                              f"({str(e).splitlines()[0][:120]})") from None
        finally:
            pfi.load_state_dict_from_url = loader
        for p in self.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def forward(self, x):
        x = (x.float().repeat(1, 3, 1, 1) + 1) / 2  # [-1, 1] grayscale -> [0, 1] RGB
        return self.net(x)[0].flatten(1)


def feature_extractor(prefer: str = "inception", weights: str | None = None) -> nn.Module:
    """Inception when it loads without a network, else the named fallback."""
    if prefer == "inception":
        try:
            return InceptionFeatures(weights)
        except Exception as e:  # no package, no cached weights: fall back, by name
            from raylatent.errors import ConfigError

            if isinstance(e, ConfigError):  # weights that were given but are bad: never silently
                raise
    return RandomConvFeatures()


@torch.no_grad()
def features_of(extractor: nn.Module, images: torch.Tensor, batch: int = 256) -> np.ndarray:
    dev = next(extractor.parameters()).device
    return torch.cat([extractor(images[i:i + batch].to(dev)).cpu()
                      for i in range(0, images.shape[0], batch)]).numpy()


def fid(extractor: nn.Module, real: torch.Tensor | tuple, fake: torch.Tensor) -> float:
    """FID between real images (or their precomputed (mu, sigma)) and fake images."""
    mu_r, s_r = real if isinstance(real, tuple) else statistics(features_of(extractor, real))
    mu_f, s_f = statistics(features_of(extractor, fake))
    return frechet_distance(mu_r, s_r, mu_f, s_f)
