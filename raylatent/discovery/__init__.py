"""Direction discovery (Voynov & Babenko), pure PyTorch.

DISCOVERY_VERSION enters the directions stage's cache key: bump it when a code change alters what
a trial learns (the grid's YAML alone would not tell a rerun that cached results are stale)."""

DISCOVERY_VERSION = "discovery-v2"  # v2: LeNet's two-layer heads, as the authors' code has them
