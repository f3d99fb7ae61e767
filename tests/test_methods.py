"""The discovery-method interface: every registered method exports what its shift needs, a new
method is one registration, and closed-form methods are recorded like trials (without RCA)."""
import json

import numpy as np
import pytest
import torch

from raylatent.config import ConfigError, DirectionsConfig
from raylatent.discovery import methods as M
from raylatent.discovery.export import load_shift_arrays, save_directions
from raylatent.discovery.records import FIELDS, Trial, TrialRecord
from raylatent.discovery.step import Discovery, DiscoveryConfig
from raylatent.models.directions import Directions, shift_fn
from toy_generators import BlobGenerator


@pytest.mark.parametrize("name", [n for n, m in M.METHODS.items() if m.trained])
def test_every_trained_method_exports_its_exact_shift(tmp_path, name):
    d = 8
    K = d if M.method_of(name).needs_K_equal_d else 5
    A = M.make_directions(name, d, K, seed=2)
    save_directions(tmp_path / "a.npz", A.arrays(), {"method": name})
    arrays = load_shift_arrays(tmp_path / "a.npz")
    assert arrays["A"].shape == (d, K)
    assert np.allclose(np.linalg.norm(arrays["A"], axis=0), 1.0, atol=1e-5)
    k, eps = torch.tensor([0, K - 1, 1]), torch.tensor([-3.0, 2.0, 0.7])
    with torch.no_grad():
        assert torch.allclose(shift_fn(arrays)(k, eps), A(k, eps), atol=1e-5)


class FirstAxes(Directions):
    """A toy method: the first K latent axes, fixed (only R learns)."""

    kind = "first-axes"

    def __init__(self, latent_dim: int, K: int, generator=None):
        super().__init__(latent_dim, K)
        self.register_buffer("A", torch.eye(latent_dim)[:, :K])

    def matrix(self):
        return self.A


@pytest.fixture
def first_axes():
    M.register(M.Method("first-axes", "First latent axes (test)", "learned", directions=FirstAxes))
    yield "first-axes"
    del M.METHODS["first-axes"]


def test_a_new_method_is_one_registration(first_axes):
    with pytest.raises(ConfigError, match="deformator"):
        DirectionsConfig(generators=("gan",), deformators=({"deformator": "no-such-method", "K": 4},))
    d = DirectionsConfig(generators=("gan",), reconstructors=("lenet",), deformators=({"deformator": first_axes, "K": 4},),
                         random_baseline=False)
    assert [t.deformator for t in d.trials()] == [first_axes]
    disc = Discovery(BlobGenerator(8, 16), DiscoveryConfig(K=4, deformator=first_axes, reconstructor="resnet",
                                                          recon_width=0.25, batch=8))
    before = disc.A.matrix().clone()
    disc.step()
    assert disc.step_count == 1 and torch.equal(disc.A.matrix(), before)  # fixed: nothing for A to learn


def test_a_method_gives_exactly_one_way_to_find_directions():
    with pytest.raises(ValueError, match="exactly one"):
        M.register(M.Method("broken", "Broken", "learned"))
    with pytest.raises(ValueError, match="role"):
        M.register(M.Method("broken", "Broken", "magic", fit=lambda G, K: None))
    assert "broken" not in M.METHODS


def test_trial_name_and_record_round_trip():
    t = Trial("vae", "lenet", "proj", 100, 3, 600)
    assert t.name == "vae-lenet-proj-K100-s3" and Trial.from_dict({**t.to_dict(), "extra": 1}) == t
    assert t.directions_file == f"trials/{t.name}/directions.npz"
    rec = TrialRecord(trial=t.name, generator=t.generator, reconstructor=t.reconstructor, deformator=t.deformator,
                      K=t.K, seed=t.seed, iterations=600, rca=0.5, ls=0.1, shift_mae=0.4, gamma=0.25, wall_s=1.0,
                      node_id="n", directions=t.directions_file)
    row = rec.to_dict()
    assert list(row) == [f for f in FIELDS if f not in ("labels", "factors", "factors_found", "truth", "found_by_K")]
    assert json.loads(json.dumps(row)) == row


def test_closed_form_records_carry_their_generator_and_no_rca(tmp_path):
    from raylatent.discovery.closed_form import closed_form_records
    from raylatent.discovery.export import load_directions

    class Linear(torch.nn.Module):  # SeFa's and GANSpace's inputs: a first linear map of z
        def __init__(self):
            super().__init__()
            self.latent_dim = 8
            self.first_linear = torch.diag(torch.tensor([4.0, 3.0, 2.0, 1.0])) @ torch.eye(4, 8)  # F x d
            self.blob = BlobGenerator(8, 32)

        def first_layer(self, z):
            return z @ self.first_linear.T

        def forward(self, z):
            return self.blob(z)

    recs = closed_form_records({"gan": Linear()}, {"gan": "abc123"}, K=3, zreg=None, out=tmp_path)
    closed = [n for n, m in M.METHODS.items() if m.role == "closed-form"]
    assert sorted(r.deformator for r in recs) == sorted(closed)
    for r in recs:
        assert r.rca is None and r.reconstructor == "none" and r.K == 3 and len(r.labels) == 3
        A, cfg = load_directions(tmp_path / r.directions)
        assert cfg["generator_digest"] == "abc123" and cfg["generator"] == "gan"
        # the first linear map's strongest input axes, in order: latent axes 0, 1, 2 (GANSpace: up to its
        # sampling noise, 4096 latents)
        assert np.allclose(np.abs(A), np.eye(8)[:, :3], atol=0.05), r.deformator
