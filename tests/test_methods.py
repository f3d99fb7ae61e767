"""The discovery-method interface: every registered method exports what its shift needs, a new
method is one registration, and closed-form methods are recorded like trials (without RCA)."""
import json
from dataclasses import asdict

import numpy as np
import pytest
import torch

from raylatent.config import ConfigError, DirectionsConfig
from raylatent.discovery import methods as M
from raylatent.discovery.export import load_shift_arrays, save_directions
from raylatent.discovery.records import FIELDS, Trial, TrialRecord
from raylatent.discovery.step import Discovery, DiscoveryConfig
from raylatent.models.directions import Directions, rebuild
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
    z, k, eps = torch.randn(3, d), torch.tensor([0, K - 1, 1]), torch.tensor([-3.0, 2.0, 0.7])
    with torch.no_grad():
        assert torch.allclose(rebuild(arrays)(z, k, eps), A(z, k, eps), atol=1e-5)


class Bent(Directions):
    """A toy non-linear path (registered by the test): the shift at z leans towards tanh(z),
    eps * unit(a_k + bend * tanh(z)), so a reader that ignores z gets other images."""

    model = "test-bent"

    def __init__(self, latent_dim: int, K: int, generator=None, bend: float = 0.5):
        super().__init__(latent_dim, K)
        self.A = torch.nn.Parameter(torch.randn(latent_dim, K, generator=generator))
        self.bend = bend

    def matrix(self):
        return self.A / self.A.norm(dim=0, keepdim=True)

    def forward(self, z, k, eps):
        v = self.matrix().T[k] + self.bend * torch.tanh(z)
        return eps[:, None] * v / v.norm(dim=1, keepdim=True)

    def arrays(self):
        return {"A": self.matrix(), "raw": self.A, "bend": torch.tensor(self.bend), "model": self.model}

    @classmethod
    def from_arrays(cls, arrays):
        raw = torch.as_tensor(np.asarray(arrays["raw"]))
        out = cls(raw.shape[0], raw.shape[1], bend=float(np.asarray(arrays["bend"])))
        with torch.no_grad():
            out.A.copy_(raw)
        return out


def _check_bend(settings: dict) -> None:
    if not 0 <= settings["bend"] <= 10:
        raise ValueError(f"bend {settings['bend']}: in 0..10")


@pytest.fixture
def bent(monkeypatch):
    """The method registered, and every call of its shift recorded (the latents it was asked at)."""
    M.register(M.Method("test-bent", "Bent path (test)", "learned", directions=Bent,
                        settings={"bend": 0.5}, check=_check_bend))
    calls = []
    forward = Bent.forward

    def spy(self, z, k, eps):
        calls.append(z.detach().clone())
        return forward(self, z, k, eps)

    monkeypatch.setattr(Bent, "forward", spy)
    yield calls
    del M.METHODS["test-bent"]


def _asked_at_latents(calls: list) -> bool:
    """The shift was asked at real, varying latents (not at zeros, not one latent for all)."""
    return bool(calls) and all(c.abs().sum() > 0 and c.std(dim=0).max() > 0 for c in calls)


def test_a_new_method_is_one_registration(tmp_path, bent):
    """A method whose shift depends on z, registered in this test (one Directions subclass, one
    register call, its grid entry), runs through the grid's validation, a discovery step, the
    held-out evaluation, export and rebuild, labelling, a render and Run.render, each following
    its path at the latents it shifts."""
    from raylatent.api import load_run
    from raylatent.data.dicom import model_to_hu
    from raylatent.discovery.evaluate import evaluate
    from raylatent.discovery.export import traversal
    from raylatent.interpret.reading import label_directions
    from raylatent.config import GeneratorsConfig
    from raylatent.models import as_generator, make_generator_from
    from raylatent.monitor import sweep_images

    def grid(**entry):
        return DirectionsConfig(generators=("gan",), reconstructors=("lenet",), random_baseline=False,
                                deformators=({"deformator": "test-bent", "K": 4, **entry},))

    for bad, why in (({"bend": "x"}, "bend"), ({"wobble": 1.0}, "no setting wobble"), ({"bend": -1.0}, "0..10")):
        with pytest.raises(ConfigError, match=why):
            grid(**bad)
    with pytest.raises(ConfigError, match="no setting"):  # the paper's methods take no settings
        DirectionsConfig(deformators=({"deformator": "proj", "K": 4, "bend": 1.0},))
    with pytest.raises(ConfigError, match="twice"):
        DirectionsConfig(deformators=({"deformator": "proj", "K": 4}, {"deformator": "proj", "K": 4}))
    d = grid(bend=0.8)
    (t,) = d.trials()
    cfg = DiscoveryConfig.for_trial(d, t)
    # the cell runs under the method's name with its non-default settings: its own trial, row and column
    assert (t.deformator, cfg.settings) == ("test-bent+bend0.8", {"hessian": 0.0, "bend": 0.8})
    assert cfg.to_dict()["settings"] == cfg.settings and M.method_of(t.deformator).name == "test-bent"
    torch.manual_seed(0)
    gcfg = GeneratorsConfig(size=32, latent_dim=8, gan_width=4, epochs=1, keep_last=1)
    model = make_generator_from("gan", gcfg)
    G = as_generator(model).eval()
    disc = Discovery(G, DiscoveryConfig(**{**cfg.to_dict(), "batch": 8, "recon_width": 0.5}))
    assert isinstance(disc.A, Bent) and disc.A.bend == 0.8
    before = disc.A.A.detach().clone()
    disc.step()
    assert not torch.equal(disc.A.A, before) and _asked_at_latents(bent)  # A learned through its own path
    bent.clear()
    assert 0 <= evaluate(disc, n=16)["rca"] <= 1 and _asked_at_latents(bent)

    path = save_directions(tmp_path / "t" / "trials" / "x" / "directions.npz", disc.A.arrays(), cfg.to_dict())
    arrays = load_shift_arrays(path)
    z, k, eps = torch.randn(5, 8), torch.tensor([0, 1, 2, 3, 1]), torch.tensor([-2.0, -0.5, 0.5, 1.0, 2.0])
    with torch.no_grad():
        exact = disc.A(z, k, eps)
        torch.testing.assert_close(rebuild(arrays)(z, k, eps), exact)
        assert float((rebuild({"A": arrays["A"]})(z, k, eps) - exact).norm()) > 0.1  # a linear reader would be wrong

    bent.clear()
    labels = label_directions(G, arrays)
    assert len(labels["directions"]) == 4 and _asked_at_latents(bent)
    bent.clear()
    imgs = traversal(G, arrays, z[:2], [-1.5, 2.0], [3])
    with torch.no_grad():
        want = G(z[:2] + Bent.from_arrays(arrays)(z[:2], torch.tensor([3, 3]), torch.tensor([2.0, 2.0])))
    torch.testing.assert_close(imgs[0, 1], want, rtol=1e-5, atol=1e-5)
    assert len(sweep_images(G, arrays, z[:2], 2.0, 2)) == 2 and _asked_at_latents(bent)

    # Run.render on a run holding this trial and its generator: the API follows the path too
    gdir = tmp_path / "g" / "gan"
    gdir.mkdir(parents=True)
    torch.save({"model": model.state_dict(), "kind": "gan", "epoch": 0, "config": json.dumps(asdict(gcfg))}, gdir / "generator.pt")
    from raylatent.discovery.records import Trial

    trial = Trial("gan", "lenet", "test-bent", 4, 0)  # a full record, as load_run validates it
    (tmp_path / "t" / trial.directions_file).parent.mkdir(parents=True)
    (tmp_path / "t" / "trials" / "x" / "directions.npz").rename(tmp_path / "t" / trial.directions_file)
    (tmp_path / "t" / "results.json").write_text(json.dumps([{
        "trial": trial.name, "generator": "gan", "reconstructor": "lenet", "deformator": "test-bent", "K": 4, "seed": 0,
        "iterations": 10, "rca": 0.5, "ls": 0.1, "shift_mae": None, "gamma": None, "wall_s": 1.0, "node_id": None,
        "directions": trial.directions_file}]))
    (tmp_path / "latest.json").write_text(json.dumps({"stages": {"generators": "g", "directions": "t"}}))
    run = load_run(tmp_path)
    bent.clear()
    hu = run.render(trial.name, direction=2, shifts=(1.5,), n_latents=2, window=None)
    z0 = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))  # the API's latents (seed 0)
    with torch.no_grad():
        want = G(z0 + Bent.from_arrays(arrays)(z0, torch.tensor([2, 2]), torch.tensor([1.5, 1.5])))
    np.testing.assert_allclose(hu[:, 0], model_to_hu(want[:, 0].numpy()), rtol=1e-4, atol=1e-2)
    assert _asked_at_latents(bent)


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
        assert np.allclose(np.linalg.norm(A, axis=0), 1.0, atol=1e-5), r.deformator
        if r.deformator in ("sefa", "ganspace"):
            # the first linear map's strongest input axes, in order: latent axes 0, 1, 2 (GANSpace: up to
            # its sampling noise, 4096 latents); the Hessian method reads the images, not this map
            assert np.allclose(np.abs(A), np.eye(8)[:, :3], atol=0.05), r.deformator
