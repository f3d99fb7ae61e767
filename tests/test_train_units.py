"""Generator-training pieces without Ray: schedules, augmentation, FID, checkpoint choice."""
import numpy as np
import pytest
import torch

from raylatent.config import ConfigError, GeneratorsConfig
from raylatent.metrics.fid import RandomConvFeatures, feature_extractor, fid, frechet_distance, statistics
from raylatent.models import VAE
from raylatent.models.inversion import encode, reverse_search
from raylatent.models.schedules import instance_noise_sigma, random_affine, smoothed_real_targets
from raylatent.train.stage import pick_best
from toy_generators import BlobGenerator


def test_instance_noise_steps_down_and_is_off_from_the_midpoint():
    s = [instance_noise_sigma(e, 50) for e in range(50)]
    assert s[0] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(s, s[1:]))  # never rises
    assert len(set(s[:25])) == 5  # five steps before the midpoint
    assert all(x == 0 for x in s[25:]) and s[24] > 0


def test_label_smoothing_is_one_sided_in_range():
    t = smoothed_real_targets(10000, generator=torch.Generator().manual_seed(0))
    assert t.min() >= 0.9 and t.max() <= 1.0 and abs(float(t.mean()) - 0.95) < 0.005


def test_random_affine_is_small_and_per_sample():
    x = torch.zeros(4, 1, 32, 32) - 1
    x[:, :, 12:20, 12:20] = 1
    same = random_affine(x, degrees=0.0, scale=(1.0, 1.0))
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    y = random_affine(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= -1 - 1e-5
    assert not torch.allclose(y[0], y[1])  # each sample its own transform
    assert (y - x).abs().mean() < 0.2  # a small perturbation


def test_frechet_distance_matches_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    v1, v2 = rng.uniform(0.5, 2, 4), rng.uniform(0.5, 2, 4)
    closed = float(((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum())
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(closed, rel=1e-9)
    # a rotated (non-diagonal) pair: the distance is invariant under a common rotation
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    rot = frechet_distance(q @ mu1, q @ np.diag(v1) @ q.T, q @ mu2, q @ np.diag(v2) @ q.T)
    assert rot == pytest.approx(closed, rel=1e-6)
    assert frechet_distance(mu1, np.diag(v1), mu1, np.diag(v1)) == pytest.approx(0, abs=1e-6)


def test_frechet_distance_on_singular_covariances_is_quiet_and_exact():
    """Fewer samples than features (the smoke grid's FID: 256 x 256) make both covariances singular."""
    import warnings

    rng = np.random.default_rng(1)
    (m1, s1), (m2, s2) = (statistics(rng.normal(size=(12, 20)) * rng.uniform(0.5, 2, 20)) for _ in range(2))
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(w.clip(0))) @ v.T  # S1^(1/2): the symmetric form of the same trace
    exact = float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2)
                  - 2 * np.sqrt(np.linalg.eigvalsh(r1 @ s2 @ r1).clip(0)).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert frechet_distance(m1, s1, m2, s2) == pytest.approx(exact, rel=1e-6)


def test_fid_ranks_and_names_its_network():
    ex = feature_extractor("inception")  # offline here: the fallback, by name
    assert "fallback" in ex.name or "inception" in ex.name
    ex = RandomConvFeatures()
    g = torch.Generator().manual_seed(0)
    real = torch.rand(128, 1, 32, 32, generator=g) * 2 - 1
    close = (real + 0.05 * torch.randn(real.shape, generator=g)).clamp(-1, 1)
    far = torch.zeros(128, 1, 32, 32) - 0.8 + 0.05 * torch.randn(128, 1, 32, 32, generator=g)
    stats = statistics(np.concatenate([ex(real[i:i + 64]).numpy() for i in (0, 64)]))
    assert fid(ex, stats, close) < fid(ex, stats, far)


def test_fid_network_choice_is_explicit(tmp_path, monkeypatch):
    from raylatent.metrics.fid import FALLBACK_NAME

    assert feature_extractor("fallback").name == FALLBACK_NAME
    # no cached Inception weights (an empty hub): the fallback, and it says so
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert feature_extractor("inception").name == FALLBACK_NAME
    with pytest.raises(ConfigError, match="fid_weights"):
        GeneratorsConfig(fid_weights=str(tmp_path / "missing.pth"))


def test_pick_best_is_min_fid_of_the_kept():
    cands = [("a", {"epoch": 3, "fid": 10.0}), ("b", {"epoch": 4, "fid": 7.5}), ("c", {"epoch": 5, "fid": 9.0})]
    assert pick_best(cands)[0] == "b"
    with pytest.raises(ValueError):
        pick_best([])


def test_config_validation_names_the_key():
    with pytest.raises(ConfigError, match="keep_last"):
        GeneratorsConfig(epochs=3, keep_last=5)
    with pytest.raises(ConfigError, match="kinds"):
        GeneratorsConfig(kinds=("gan", "diffusion"))


def test_latents_for_memorisation_figure():
    torch.manual_seed(0)
    vae = VAE(8, 32, 4)
    assert encode(vae, torch.rand(3, 1, 32, 32)).shape == (3, 8)
    G = BlobGenerator(8, 16)  # a generator whose output really depends on z
    target_z = torch.randn(2, 8)
    with torch.no_grad():
        target = G(target_z)
    z = reverse_search(G, target, steps=150, restarts=2)
    with torch.no_grad():
        err = ((G(z) - target) ** 2).mean()
        base = ((G(torch.zeros(2, 8)) - target) ** 2).mean()
    assert err < 0.25 * base
