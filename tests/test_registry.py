"""Generator kinds come from one registry: a new kind registered in one place is accepted by the
configuration, built, trained one step, inverted and validated in results without other edits."""
import re
from dataclasses import asdict, dataclass
from typing import ClassVar

import pytest
import torch
from torch import nn

from raylatent.config import ConfigError, GeneratorsConfig
from raylatent.gridfile import load_grid
from raylatent.models import as_generator, kind_names, kind_of, make_generator_from
from raylatent.models.registry import GENERATORS, GeneratorKind, register


class ToyGenerator(nn.Module):
    def __init__(self, latent_dim, size, width):
        super().__init__()
        self.latent_dim, self.size, self.width = latent_dim, size, width
        self.lin = nn.Linear(latent_dim, size * size)

    def first_layer(self, z):
        return self.lin(z)

    @property
    def first_linear(self):
        return self.lin.weight

    def forward(self, z):
        return torch.tanh(self.lin(z)).view(-1, 1, self.size, self.size)


@dataclass
class ToySettings:
    """The toy kind's own settings: what a grid's generators section gains when it registers."""

    toy_width: int = 3
    lr_toy: float = 0.1
    RANGES: ClassVar[dict] = {"toy_width": (1, 64), "lr_toy": (0, 1, "(]")}


class ToyTraining:
    def __init__(self, model, cfg):
        self.modules = {"model": model}
        self.optimizers = {"opt": torch.optim.SGD(model.parameters(), lr=cfg.lr_toy)}

    def step(self, x, sigma, gen, device):
        model, opt = self.modules["model"], self.optimizers["opt"]
        loss = ((model(torch.zeros(x.shape[0], model.latent_dim)) - x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    def eval_metrics(self, model, images, device):
        return {}


@pytest.fixture
def toy_kind():
    kind = register(GeneratorKind(
        name="toy", title="Toy", model_class=ToyGenerator, width_field="toy_width", settings=ToySettings,
        build=ToyGenerator, generator_of=lambda m: m, training=ToyTraining,
        invert=lambda m, images: torch.zeros(images.shape[0], m.latent_dim), inversion="zeros",
        loss_keys=("loss",)))
    yield kind
    GENERATORS.pop("toy")


def test_the_papers_kinds_are_registered():
    assert kind_names()[:2] == ("gan", "vae") and "phantom" in kind_names()  # the paper's, then ground truth
    assert kind_of("vae").has_encoder and not kind_of("gan").has_encoder
    with pytest.raises(ValueError, match=f"generator 'toy': must be one of {', '.join(sorted(kind_names()))}$"):
        kind_of("toy")


def test_a_registered_kind_works_everywhere_without_other_edits(toy_kind, tmp_path):
    from raylatent.dryrun import calibrate_training
    from raylatent.report.records import load_records

    # its own settings are the grid's: set, validated and read back like the paper's kinds' (gan_width)
    grid = load_grid("smoke", ["generators.kinds=[toy]", "directions.generators=[toy]", "data.size=32",
                               "generators.toy_width=5", "generators.lr_toy=0.05"])
    cfg = grid.generators
    assert (cfg.toy_width, cfg.lr_toy, cfg.gan_width) == (5, 0.05, 32)
    with pytest.raises(ConfigError, match="generators.toy_width"):
        load_grid("smoke", ["generators.kinds=[toy]", "directions.generators=[toy]", "generators.toy_width=0"])
    from raylatent.models.export import generators_config

    assert generators_config(asdict(cfg)) == cfg  # a checkpoint's stored configuration reads back with them
    model = make_generator_from("toy", cfg)
    assert isinstance(model, ToyGenerator) and as_generator(model) is model and model.width == 5
    training = kind_of("toy").training(model, cfg)
    assert training.optimizers["opt"].param_groups[0]["lr"] == 0.05
    x = torch.zeros(4, 1, 32, 32)
    first = training.step(x, 0.0, torch.Generator(), "cpu")["loss"]
    assert training.step(x, 0.0, torch.Generator(), "cpu")["loss"] < first  # it trains
    assert calibrate_training(grid, "toy", 4) > 0
    rec = {"generator": "toy", "reconstructor": "lenet", "deformator": "proj", "K": 8, "seed": 0, "iterations": 1,
           "rca": 0.5, "ls": 0.1, "directions": "trials/toy-lenet-proj-K8-s0/directions.npz"}
    (tmp_path / "results.json").write_text(__import__("json").dumps([rec]))
    assert load_records(tmp_path / "results.json")[0]["trial"] == "toy-lenet-proj-K8-s0"


def test_an_unregistered_kind_is_a_one_line_config_error():
    known = re.escape(", ".join(sorted(kind_names())))
    with pytest.raises(ConfigError, match=rf"generators.kinds: \['toy'\] \(known: {known}\)"):
        GeneratorsConfig(kinds=("toy",))


def test_a_registered_kind_gets_its_rows_in_table1(toy_kind):
    """Table 1's rows come from the registered kinds: the paper's four rows, then a new kind's, per
    reconstructor it ran, with no paper numbers beside it."""
    from raylatent.report.tables import ROWS, table1

    recs = [{"trial": f"toy-{rec}-proj-K32-s0", "generator": "toy", "reconstructor": rec, "deformator": "proj",
             "K": 32, "seed": 0, "iterations": 10, "rca": rca, "ls": 0.1} for rec, rca in (("lenet", 0.61), ("resnet", 0.73))]
    table, cells = table1(recs)
    lines = [ln for ln in table.splitlines() if ln.startswith("| Toy")]
    assert [ln.split("|")[1].strip() for ln in lines] == ["Toy ResNet (ours)", "Toy LeNet (ours)"]
    assert "0.730" in lines[0] and "0.610" in lines[1] and "(paper)" not in "".join(lines)
    assert cells[("toy", "lenet", "proj", 32)]["rca"] == pytest.approx(0.61)
    assert len([ln for ln in table.splitlines() if "(ours)" in ln]) == len(ROWS) + 2
