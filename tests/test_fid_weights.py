"""FID Inception weights are loaded weights-only and checked (issue 14): a planted .pth cannot
run code, a wrong file is one line, and the real architecture still loads its state dict."""
import pytest
import torch

from raylatent.config import ConfigError
from raylatent.metrics.fid import INCEPTION_NAME, InceptionFeatures, feature_extractor, load_fid_weights


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling this would create the marker file
        return (open, (self.marker, "w"))


def test_a_malicious_pth_is_refused_and_never_runs(tmp_path):
    marker, bad = tmp_path / "pwned", tmp_path / "evil.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": Evil(str(marker))}, bad)
    with pytest.raises(ConfigError, match="not a plain weights file"):
        load_fid_weights(bad)
    with pytest.raises(ConfigError, match="evil.pth"):
        feature_extractor("inception", str(bad))  # given weights never fall back silently
    assert not marker.exists()


def test_a_wrong_state_dict_is_refused(tmp_path):
    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(ConfigError, match="not the FID Inception state dict"):
        load_fid_weights(other)


def test_the_fid_inception_loads_checked_weights(tmp_path, monkeypatch):
    pfi = pytest.importorskip("pytorch_fid.inception")
    captured = {}
    real_load = torch.nn.Module.load_state_dict

    def grab(self, state, *a, **k):  # the architecture's own (random) weights, as a stand-in file
        captured.update(self.state_dict())
        return real_load(self, self.state_dict())

    with monkeypatch.context() as m:
        m.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(torch.nn.Module, "load_state_dict", grab)
        pfi.fid_inception_v3()
    path = tmp_path / "pt_inception.pth"
    torch.save(captured, path)
    net = InceptionFeatures(str(path))
    assert net.name == INCEPTION_NAME
    assert net(torch.zeros(2, 1, 32, 32)).shape == (2, 2048)
