"""The labelling sweep (`directions.label_latents`, `directions.label_steps`): validated, swept as
set by every labelled set (trials, pools, controls), in a stage's key only when set off its default
(so runs made before the setting existed keep their keys), and priced by the dry run."""
import pytest
import torch

from raylatent.config import ConfigError
from raylatent.discovery.config import DirectionsConfig
from raylatent.gridfile import load_grid
from raylatent.interpret.labels import Sweep


class Counting(torch.nn.Module):
    """A toy generator that draws a lung-free disc and remembers how many images it drew."""

    latent_dim = 8

    def __init__(self):
        super().__init__()
        self.drawn = 0

    def forward(self, z):
        self.drawn += z.shape[0]
        n, s = z.shape[0], 32
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, s), torch.linspace(-1, 1, s), indexing="ij")
        r = 0.5 + 0.1 * torch.tanh(z[:, :1, None])
        return torch.where((xx ** 2 + yy ** 2)[None] < r ** 2, 0.0, -1.0)[:, None].expand(n, 1, s, s).clone()


@pytest.mark.parametrize("latents, steps", [(2, 3), (4, 5)])
def test_a_set_is_swept_as_its_sweep_says(latents, steps):
    from raylatent.interpret.reading import label_directions

    G, K = Counting(), 3
    A = torch.eye(8)[:, :K]
    out = label_directions(G, A, sweep=Sweep(latents, steps))
    assert len(out["directions"]) == K
    # the base latents, a population of 64 for the spread, then latents x steps per direction
    assert G.drawn == latents + 64 + K * latents * steps


def test_the_chance_pool_takes_the_sweep():
    from raylatent.interpret.chance import pool_scores

    G = Counting()
    pool_scores(G, 8, 4, sweep=Sweep(2, 3))
    assert G.drawn == 2 + 64 + 4 * 2 * 3


@pytest.mark.parametrize("override, words", [
    ("directions.label_latents=3", "even whole number"),
    ("directions.label_latents=0", "even whole number"),
    ("directions.label_steps=2", "three shifts"),
    ("directions.label_steps=x", "expected a number"), ("directions.label_steps=3.5", "whole number"),
])
def test_a_bad_sweep_is_a_one_line_error(override, words):
    with pytest.raises(ConfigError) as e:
        load_grid("smoke", [override])
    assert words in str(e.value) and "directions.label_" in str(e.value) and "\n" not in str(e.value)


def test_the_sweep_enters_the_stage_key_only_when_set(tmp_path):
    from raylatent.ablate import Plan

    def key(*sets):
        p = Plan(load_grid("smoke", list(sets)), tmp_path, tmp_path)
        p.digests, p.fingerprint = {"gan": "g"}, "f"
        return p.resolve_directions(log=lambda *_: None).name

    settings = load_grid("smoke").to_dict()["directions"]
    kept = DirectionsConfig.key_settings(settings)
    # at its defaults the key reads the section as it was before the sweep was a setting
    assert kept == {k: v for k, v in settings.items() if k not in ("label_latents", "label_steps")}
    default = key()
    assert key("directions.label_latents=8", "directions.label_steps=5") == default
    assert key("directions.label_latents=2") != default != key("directions.label_steps=3")
    assert load_grid("smoke", ["directions.label_latents=2"]).directions.sweep() == Sweep(2, 5)


def test_a_pool_scored_with_another_sweep_is_scored_again():
    from raylatent.tune.stage import pool_matches

    entry = {"pool": 8, "factors": None, "labeller": None, "scores": []}
    from raylatent.interpret.labels import FACTORS, LABELLER_VERSION

    entry.update(factors=list(FACTORS), labeller=LABELLER_VERSION)
    assert pool_matches(entry, 8, Sweep())  # a pool saved before the sweep was a setting: the default
    assert not pool_matches(entry, 8, Sweep(2, 3))
    assert pool_matches({**entry, "sweep": [2, 3]}, 8, Sweep(2, 3))
    assert not pool_matches({**entry, "sweep": [2, 3]}, 8, Sweep())
    assert not pool_matches(entry, 16, Sweep())


def test_the_dry_run_prices_the_sweep_and_each_kinds_network(monkeypatch):
    """The labelling is timed with the grid's sweep, and each kind's own network draws the sweep's
    images (at 128^2 the DCGAN's drawing is most of the cost; the phantom's is not)."""
    import raylatent.interpret.labels as labels
    from raylatent.dryrun import grid as dry

    swept, drawn = [], []
    real = labels.score_directions
    monkeypatch.setattr(labels, "score_directions",
                        lambda G, A, n_latents, n_eps, **kw: swept.append((n_latents, n_eps)) or real(G, A, n_latents=n_latents, n_eps=n_eps, **kw))
    monkeypatch.setattr(dry, "_time", lambda fn, n=1, repeats=1: (fn(), 1.0)[1])

    import raylatent.models as models

    made = models.make_generator_from

    def make(kind, g):
        net = made(kind, g)
        gen = models.as_generator(net)
        forward = gen.forward
        gen.forward = lambda z: drawn.append((kind, z.shape[0])) or forward(z)
        return net

    monkeypatch.setattr(models, "make_generator_from", make)
    grid = load_grid("smoke", ["data.size=32", "generators.gan_width=8", "directions.label_latents=2",
                               "directions.label_steps=3"])
    out = dry.calibrate_labelling(grid, ["gan", "vae"])
    assert swept and set(swept) == {(2, 3)}
    assert ("gan", 6) in drawn and ("vae", 6) in drawn and ("phantom", 6) in drawn
    assert set(out) == {"gan", "vae"}
