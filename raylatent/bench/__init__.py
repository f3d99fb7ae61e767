"""`python -m raylatent.bench <what> --json FILE`: benchmarks that write medians, ratios and the
machine they ran on as JSON (docs/benchmarks.md lists them and the files in benchmarks/)."""
from __future__ import annotations

from raylatent.bench.main import main

__all__ = ["main"]
