"""Direction discovery (Voynov & Babenko), pure PyTorch.

DISCOVERY_VERSION enters the directions stage's cache key: bump it when a code change alters what
a trial learns (the grid's YAML alone would not tell a rerun that cached results are stale)."""

# v2: LeNet's two-layer heads, as the authors' code has them; v3: unpadded LeNet, the authors' proj
# deformator (bias, 0.1 init), ResNet conv1 re-initialised, Ls on the paper's (gamma-weighted) scale;
# v4: labels read within latents and net of the measured couplings, positive controls beside the trials;
# v5: sweeps to +-2 (labels-v3)
DISCOVERY_VERSION = "discovery-v5"
