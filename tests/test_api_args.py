"""The Python API refuses what it cannot render or edit honestly (issue 27): NaN or infinite
shifts and eps, images that are not one finite CT slice, and ill-typed or out-of-range arguments
are one ConfigError naming the argument, before anything is computed or written."""
import numpy as np
import pytest

import raylatent
from fake_run import fake_run
from raylatent.config import ConfigError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return raylatent.load_run(fake_run(tmp_path_factory.mktemp("api") / "run", seeds=(0,), K100=8))


@pytest.fixture(scope="module")
def vae_trial(run):
    return next(t for t in run.trials if t.startswith("vae-") and run.record(t)["reconstructor"] != "none")


@pytest.mark.parametrize("kw,says", [
    ({"shifts": [0, float("nan")]}, "shifts value nan"),
    ({"shifts": [float("inf")]}, "shifts value inf"),
    ({"shifts": []}, "shifts: 0 values"),
    ({"shifts": "abc"}, "shifts value 'a'"),
    ({"n_latents": 0}, "n_latents 0"),
    ({"n_latents": 10 ** 6}, "n_latents 1000000"),
    ({"direction": -1}, "direction -1"),
    ({"direction": 1.5}, "direction 1.5"),
    ({"direction": True}, "direction True"),
    ({"window": "bone"}, "window 'bone'"),
    ({"seed": -3}, "seed -3"),
])
def test_render_refuses_what_it_cannot_draw(run, vae_trial, kw, says):
    args = {"direction": 0, **kw}
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace("[", r"\[")):
        run.render(vae_trial, **args)


@pytest.mark.parametrize("image,eps,says", [
    (np.zeros((1, 1)), 1.0, r"image of shape \(1, 1\)"),
    (np.zeros((0, 0)), 1.0, r"image of shape \(0, 0\)"),
    (np.zeros((64, 64, 3)), 1.0, r"image of shape \(64, 64, 3\)"),
    (np.full((64, 64), np.nan), 1.0, "4096 of 4096 pixels are NaN"),
    (np.zeros((64, 64)), float("inf"), "eps inf"),
    (np.zeros((64, 64)), float("nan"), "eps nan"),
])
def test_edit_refuses_what_it_cannot_edit_and_writes_nothing(run, vae_trial, tmp_path, image, eps, says):
    out = tmp_path / "edited.dcm"
    with pytest.raises(ConfigError, match=says):
        run.edit(image, vae_trial, direction=0, eps=eps, out=out)
    assert not out.exists()


def test_a_sane_render_still_works(run, vae_trial):
    img = run.render(vae_trial, direction=0, shifts=[-1, 0, 1], n_latents=2)
    assert img.shape[:2] == (2, 3) and img.dtype == np.uint8
