"""Ray Train orchestration of the generators.

GENERATORS_VERSION enters the generators stage's folder key: bump it when a code change alters
what training produces (the grid's YAML alone would not tell a rerun that a cached generator is
stale)."""

# v2: the authors' VAE (avg-pool down blocks, 7 up blocks at 128^2), batches shuffled every epoch
GENERATORS_VERSION = "generators-v2"
