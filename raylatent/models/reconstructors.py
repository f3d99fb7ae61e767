"""Reconstructors R(G(z), G(z + shift)): the two images stacked as 2 channels -> (direction
logits over K, predicted shift magnitude). LeNet is Voynov & Babenko's small CNN; ResNet18 is
torchvision's, randomly initialised, with a 2-channel first convolution."""
from __future__ import annotations

import torch
from torch import nn


def _mlp_head(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    """The authors' LeNet heads are two layers (Linear-BN-ReLU-Linear), not one: on the smoke
    generators one linear layer reached about half the held-out RCA in the same steps (GAN K=100
    0.15 vs 0.50, VAE ortho K=32 0.11 vs 0.24) at the same cost per step."""
    return nn.Sequential(nn.Linear(n_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(True),
                         nn.Linear(hidden, n_out))


class LeNetReconstructor(nn.Module):
    """Voynov & Babenko's LeNetShiftPredictor at its default width (6/16/120 channels, 84-unit
    heads), as the authors used it: 5x5 convolutions *without* padding, so a 32^2 pair ends in a
    1x1 map and 128^2 in 25^2 before the mean pool. Padding cost ~8 points of held-out RCA and
    ~38% of the step time at 32^2 (zero padding is mid-grey in the [-1, 1] scale, not air)."""

    min_size = 32  # 32 -> 28 -> 14 -> 10 -> 5 -> 1: anything smaller leaves no map for conv3

    def __init__(self, K: int, width: float = 1.0, channels: int = 1):
        super().__init__()
        c1, c2, c3 = (max(1, round(c * width)) for c in (6, 16, 120))
        self.features = nn.Sequential(
            nn.Conv2d(2 * channels, c1, 5), nn.BatchNorm2d(c1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5), nn.BatchNorm2d(c2), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 5), nn.BatchNorm2d(c3), nn.ReLU(True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.direction = _mlp_head(c3, max(1, round(84 * width)), K)
        self.shift = _mlp_head(c3, max(1, round(84 * width)), 1)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(torch.cat([x0, x1], dim=1))
        return self.direction(h), self.shift(h).squeeze(1)


class ResNet18Reconstructor(nn.Module):
    """width < 1 narrows every stage (64w, 128w, 256w, 512w channels) for small-image runs on CPUs,
    where the full network costs ~5x a LeNet step; width 1 is torchvision's resnet18 exactly."""

    min_size = 8  # five stride-2 stages and an adaptive pool: any size down to 8^2 runs

    def __init__(self, K: int, width: float = 1.0, channels: int = 1):
        super().__init__()
        from torchvision.models import resnet18
        from torchvision.models.resnet import BasicBlock

        net = resnet18(weights=None)
        c = [max(4, round(w * width)) for w in (64, 128, 256, 512)]
        net.conv1 = nn.Conv2d(2 * channels, c[0], 7, 2, 3, bias=False)
        # the authors re-initialise their 2-channel conv1 as torchvision initialises its own
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        if width != 1.0:  # rebuild the stages with torchvision's own block and layer builder
            net.bn1, net.inplanes = nn.BatchNorm2d(c[0]), c[0]
            net.layer1 = net._make_layer(BasicBlock, c[0], 2)
            net.layer2 = net._make_layer(BasicBlock, c[1], 2, stride=2)
            net.layer3 = net._make_layer(BasicBlock, c[2], 2, stride=2)
            net.layer4 = net._make_layer(BasicBlock, c[3], 2, stride=2)
            for m in net.modules():  # torchvision's initialisation
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        net.fc = nn.Identity()
        self.features = net
        self.direction = nn.Linear(c[3], K)
        self.shift = nn.Linear(c[3], 1)

    def forward(self, x0, x1):
        h = self.features(torch.cat([x0, x1], dim=1))
        return self.direction(h), self.shift(h).squeeze(1)


RECONSTRUCTORS = {"lenet": LeNetReconstructor, "resnet": ResNet18Reconstructor}


def make_reconstructor(kind: str, K: int, width: float = 1.0) -> nn.Module:
    """width scales every layer's channels (1.0 = the paper's networks)."""
    if kind not in RECONSTRUCTORS:
        raise ValueError(f"reconstructor {kind!r}: must be 'lenet' or 'resnet'")
    return RECONSTRUCTORS[kind](K, width)
