import os
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("RAYLATENT_SALT", "test-salt")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
warnings.filterwarnings("ignore", message=".*download.*")


RAY_FIXTURES = {"ray_session", "smoke_run"}


def pytest_collection_modifyitems(config, items):
    """Every test that starts Ray (through a fixture that does, or marked `ray`) is also `slow`:
    the fast tier (`pytest -m "not slow"`) never waits for a Ray runtime."""
    for item in items:
        if RAY_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("ray"):
            item.add_marker(pytest.mark.ray)
        if item.get_closest_marker("ray") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray runtime for the whole test session (start-up costs seconds)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, ray_session):
    """The smoke grid, reduced, run once per test session: (root, args, seconds)."""
    from ablate_helpers import run_reduced_smoke

    return run_reduced_smoke(tmp_path_factory)
