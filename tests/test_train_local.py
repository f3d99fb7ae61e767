"""The in-process trainer a search trial uses when it samples generator fields (train/local.py):
the same epoch and held-out measurement as the DDP loop, the best FID of the last N exported
like the generators stage does, and an interrupted training continued, not restarted."""
import json

import pytest
import torch

from raylatent.config import ConfigError, GeneratorsConfig
from raylatent.models.export import WEIGHTS, load_exported
from raylatent.train.local import train_in_process


def _data(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Blobs of varying size on a dark background, in [-1, 1] like the shards."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    r = 0.3 + 0.4 * torch.rand(n, 1, 1, generator=g)
    return torch.where(xx ** 2 + yy ** 2 < r ** 2, 0.5, -1.0)[:, None].float()


def _cfg(**kw) -> GeneratorsConfig:
    return GeneratorsConfig(**{**dict(kinds=("gan",), size=32, gan_width=8, vae_width=4, epochs=3, keep_last=2,
                                      batch_size=8, fid_network="fallback", fid_samples=16), **kw})


class Stop(Exception):
    pass


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_trains_exports_the_best_fid_of_the_last_n(kind, tmp_path):
    cfg = _cfg(kinds=(kind,))
    train, test = _data(32), _data(16, seed=1)
    lines = []
    summary = train_in_process(kind, cfg, train, test, tmp_path, log=lines.append)
    assert len(summary["history"]) == len(lines) == cfg.epochs
    kept = summary["history"][-cfg.keep_last:]
    assert [c["epoch"] for c in summary["candidates"]] == [m["epoch"] for m in kept]
    best = min(kept, key=lambda m: (m["fid"], -m["epoch"]))
    assert summary["chosen_epoch"] == best["epoch"] and summary["fid"] == best["fid"]
    assert all(m["batches"] == len(train) // cfg.batch_size for m in summary["history"])  # full batches only
    # the export loads like the generators stage's, holds the chosen epoch, and learnt something
    model = load_exported(tmp_path, kind)
    assert torch.load(tmp_path / kind / WEIGHTS, weights_only=True)["epoch"] == best["epoch"]
    torch.manual_seed(cfg.seed)
    from raylatent.models import make_generator_from

    init = make_generator_from(kind, cfg)
    moved = [not torch.equal(a, b) for a, b in zip(model.state_dict().values(), init.state_dict().values())
             if a.is_floating_point()]
    assert sum(moved) > len(moved) // 2
    assert json.loads((tmp_path / kind / "metrics.json").read_text())["chosen_epoch"] == best["epoch"]
    assert [p.name for p in tmp_path.iterdir()] == [kind]  # no work folder left behind
    # a rerun returns the record without training (and clears a work folder a kill left behind)
    (tmp_path / f".{kind}.progress").mkdir()
    assert train_in_process(kind, cfg, train, test, tmp_path, log=lambda *a: pytest.fail("retrained")) == summary
    assert [p.name for p in tmp_path.iterdir()] == [kind]


def test_an_interrupted_training_continues_from_its_last_epoch(tmp_path):
    cfg = _cfg(epochs=4, keep_last=3)
    train, test = _data(24), _data(16, seed=1)

    def stop_after_two(line):
        if line.startswith("gan epoch 2/"):
            raise Stop

    with pytest.raises(Stop):
        train_in_process("gan", cfg, train, test, tmp_path, log=stop_after_two)
    assert not (tmp_path / "gan").exists()  # nothing exported from half a training
    lines = []
    summary = train_in_process("gan", cfg, train, test, tmp_path, log=lines.append)
    assert lines == ["gan epoch 3/4: FID " + f"{summary['history'][2]['fid']:.2f}",
                     "gan epoch 4/4: FID " + f"{summary['history'][3]['fid']:.2f}"]
    assert [m["epoch"] for m in summary["history"]] == [0, 1, 2, 3]
    assert [m["started_at_epoch"] for m in summary["history"]] == [0, 0, 2, 2]
    # every kept epoch's model was on disk to choose from, the two before the interruption too
    assert [c["epoch"] for c in summary["candidates"]] == [1, 2, 3]


def test_refuses_what_it_cannot_train(tmp_path):
    with pytest.raises(ConfigError, match="fixed by construction"):
        train_in_process("phantom", _cfg(kinds=("phantom",)), _data(16), _data(8), tmp_path)
    with pytest.raises(ConfigError, match="fewer than one batch") as e:
        train_in_process("gan", _cfg(batch_size=32), _data(16), _data(8), tmp_path)
    assert "\n" not in str(e.value)
