"""The paper's eight factors of variation in thoracic CT (its Figs 2-8): the one definition the
phantom draws, the generators are scored on and the report names."""
from __future__ import annotations

FACTORS = ("width", "height", "size", "rotation", "y", "thickness", "breast", "z")
