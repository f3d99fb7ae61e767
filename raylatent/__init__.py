"""raylatent: unsupervised discovery of interpretable latent directions in CT generative models,
distributed on Ray. `raylatent.load_run(RUN_DIR)` opens a finished run from Python (api.py)."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("raylatent")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"


def load_run(path):
    """A finished run directory: generators, each trial's directions, labels and scores, images
    along any direction (see raylatent.api.Run). Imported lazily: `import raylatent` stays cheap."""
    from raylatent.api import load_run as _load_run

    return _load_run(path)
