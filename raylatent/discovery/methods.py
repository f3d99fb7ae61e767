"""Discovery methods: the one place that says, per method, how a trial finds its directions.

A method is registered here under the name results.json carries in its `deformator` column. It is
one of four roles:
- `learned`: Voynov & Babenko's joint training of directions A and a reconstructor R, one Tune trial
  per configuration; `directions(latent_dim, K, generator)` builds its A (models/directions.py), and
  the shared `Discovery` (step.py) trains it: one step, held-out evaluation, export, checkpoint.
- `reference`: the same trial with A fixed at random (only R learns): the baseline every learned
  number is read against (paper Figs 9-10).
- `closed-form`: at most K directions computed once per generator (`fit(G, K, kind, zreg, seed)`),
  no reconstructor, no RCA: SeFa, GANSpace and the Hessian joint diagonalisation (hessian_jd.py);
  `seed` picks the latents a method samples (0 in a grid; the methods benchmark varies it).
- `control`: positive controls computed once per generator (`fit` as closed-form; None where the
  generator has no such set): a direction per factor that should be found, held to every grid K's
  chance threshold (discovery/controls.py): `axes` (the true axes of a truth-declaring generator)
  and `supervised` (a linear model of each attribute on z).

Every method exports through `Directions.arrays()` / `save_directions`: a d x K matrix of unit
columns `A` that plain numpy reads, plus what its exact shift needs, which `rebuild` turns back
into the set (models/directions.py), so every reader follows the path the trial learned. A new
method (a non-linear path whose shift depends on z, say) is a `Directions` subclass (its
`forward(z, k, eps)`, `arrays` and `from_arrays`) and one `register(...)` call; its own settings
(`settings`: name -> default, `check`) are set in the grid's deformator entry and validated here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from raylatent.models import directions as D
from raylatent.models import warped as W


@dataclass(frozen=True)
class Method:
    name: str
    title: str                 # how the report names it
    role: str                  # learned | reference | closed-form | control
    directions: Callable | None = None   # (latent_dim, K, torch.Generator) -> Directions (trials)
    fit: Callable | None = None          # (G, K, kind, zreg, seed=0) -> d x K matrix, or (matrix, names) (control)
    needs_K_equal_d: bool = False        # the grid must set K = latent_dim
    settings: dict[str, Any] = field(default_factory=dict)  # its own grid-entry settings and their defaults
    check: Callable[[dict], None] | None = None  # raises ValueError on settings it cannot run with
    fit_images: Callable[[int, int], int] | None = None  # (latent_dim, K) -> images `fit` draws through G (dry run)
    fit_size: Callable[[int, int], int] | None = None    # (latent_dim, K) -> most directions `fit` returns
                                                         # (dry run; None: min(K, latent_dim))

    def most_directions(self, latent_dim: int, K: int) -> int:
        """The most directions a closed-form `fit` returns, which the dry run prices the labelling of."""
        return self.fit_size(latent_dim, K) if self.fit_size else min(K, latent_dim)

    @property
    def defaults(self) -> dict[str, Any]:
        """Every setting a grid entry may give it: a learned method's criteria, then its own."""
        return {**(CRITERIA if self.role == "learned" else {}), **self.settings}

    def check_settings(self, given: dict) -> dict:
        """The method's settings: its defaults updated with `given` (a grid entry's), each of its
        default's type, then the criteria's and its own checks; ValueError names what is wrong."""
        defaults = self.defaults
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise ValueError(f"{self.name} has no setting {', '.join(unknown)} "
                             f"({'its settings: ' + ', '.join(sorted(defaults)) if defaults else 'it takes none'})")
        out = {**defaults, **given}
        for k, v in given.items():
            want = type(defaults[k])
            ok = isinstance(v, bool) if want is bool else (
                isinstance(v, (int, float)) and not isinstance(v, bool) and (want is float or isinstance(v, want)))
            if not ok and want in (int, float, bool):
                raise ValueError(f"{self.name}: {k} {v!r} (a {want.__name__}, e.g. {defaults[k]!r})")
            if want is float:
                out[k] = float(v)
        if self.role == "learned":
            check_criteria(out)
        if self.check:
            self.check(out)
        return out

    def variant(self, given: dict) -> str:
        """The name a grid entry's cell runs under: the method's, with each setting that differs
        from its default appended (`proj+hessian0.1`), so the same method at the same K with other
        settings is another trial, another results.json row and another Table 1 column."""
        out, defaults = self.check_settings(given), self.defaults
        return self.name + "".join(f"{VARIANT}{_token(k, out[k])}" for k in sorted(out) if out[k] != defaults[k])

    @property
    def trained(self) -> bool:
        """Trained in a Tune trial (with a reconstructor and held-out RCA / Ls)."""
        return self.role in ("learned", "reference")


ROLES = ("learned", "reference", "closed-form", "control")
VARIANT = "+"  # joins a method's name and the settings a grid entry gives it (`proj+hessian0.1`)
# every learned method's optional disentangling terms (discovery/criteria.py), set in its grid entry
CRITERIA: dict[str, Any] = {"hessian": 0.0}


def check_criteria(s: dict) -> None:
    """ValueError on criteria a learned method cannot train with."""
    if not 0 <= s["hessian"] <= 1e6:
        raise ValueError(f"hessian {s['hessian']}: the Hessian penalty's weight, >= 0 (0 = off)")


def _token(key: str, value) -> str:
    if isinstance(value, bool):
        return key if value else f"no_{key}"
    return f"{key}{value:g}" if isinstance(value, float) else f"{key}{value}"


ONCE_PER_GENERATOR = ("closed-form", "control")  # computed beside the trials, no reconstructor
METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.role not in ROLES:
        raise ValueError(f"method {method.name}: role {method.role!r} (one of {ROLES})")
    if (method.directions is None) == (method.fit is None):
        raise ValueError(f"method {method.name}: give exactly one of directions (trained) or fit (closed form)")
    METHODS[method.name] = method
    return method


def method_of(name: str) -> Method:
    """The method a name runs: a registered name, or one with settings appended (`proj+hessian0.1`)."""
    base = name.split(VARIANT, 1)[0]
    if base not in METHODS:
        raise ValueError(f"discovery method {name!r}: must be one of {', '.join(sorted(METHODS))}")
    return METHODS[base]


def title_of(name: str) -> str:
    """How the report names a cell's method: its title, with the settings its name carries."""
    base, _, settings = name.partition(VARIANT)
    return method_of(base).title + (f" [{settings.replace(VARIANT, ', ')}]" if settings else "")


def names(role: str | None = None) -> tuple[str, ...]:
    return tuple(n for n, m in METHODS.items() if role is None or m.role == role)


def reference() -> str:
    """The reference (random-directions) method's name."""
    return names("reference")[0]


def _sefa(G, K: int, kind: str, zreg=None, seed: int = 0) -> torch.Tensor:
    from raylatent.discovery.baselines import sefa

    return sefa(G.first_linear.detach(), min(K, G.latent_dim))


def _ganspace(G, K: int, kind: str, zreg=None, seed: int = 0) -> torch.Tensor:
    from raylatent.discovery.baselines import first_layer_of, ganspace

    return ganspace(first_layer_of(G), G.latent_dim, min(K, G.latent_dim), seed=seed)


def _hessian_jd(G, K: int, kind: str, zreg=None, seed: int = 0) -> torch.Tensor:
    from raylatent.discovery.hessian_jd import hessian_jd

    return hessian_jd(G, K, seed=seed)


def _hessian_jd_images(latent_dim: int, K: int) -> int:
    from raylatent.discovery.hessian_jd import images_drawn

    return images_drawn(latent_dim, K)


def _hessian_jd_size(latent_dim: int, K: int) -> int:
    from raylatent.discovery.hessian_jd import RANK

    return min(K, RANK, latent_dim)


def _axes(G, K: int, kind: str, zreg=None, seed: int = 0):
    from raylatent.discovery.controls import true_axes

    return true_axes(G, kind)


def _supervised(G, K: int, kind: str, zreg=None, seed: int = 0):
    from raylatent.discovery.controls import SEED, supervised

    return supervised(G, zreg, seed=SEED + seed)


register(Method("ortho", "Orthogonal", "learned", directions=D.OrthoDirections, needs_K_equal_d=True))
register(Method("proj", "Unit Length (the authors' projective deformator)", "learned",
                directions=D.ProjDirections))
register(Method("unit", "Unit-norm columns (ours, not the paper's)", "learned", directions=D.UnitDirections))
register(Method("warped", "WarpedGANSpace: non-linear RBF paths (ours, not the paper's)", "learned",
                directions=W.WarpedDirections, settings=W.SETTINGS, check=W.check_settings))
register(Method("random", "Random directions (A fixed, only R learns)", "reference",
                directions=lambda d, K, g: D.RandomDirections(d, K, g, ortho=K <= d)))
register(Method("sefa", "SeFa (closed form)", "closed-form", fit=_sefa))
register(Method("ganspace", "GANSpace (closed form)", "closed-form", fit=_ganspace))
register(Method("hessjd", "Hessian joint diagonalisation (closed form; ours, not the paper's)", "closed-form",
                fit=_hessian_jd, fit_images=_hessian_jd_images, fit_size=_hessian_jd_size))
register(Method("axes", "True axes (positive control)", "control", fit=_axes))
register(Method("supervised", "Supervised, a linear model per attribute (positive control)", "control",
                fit=_supervised))


def make_directions(name: str, latent_dim: int, K: int, seed: int = 0, settings: dict | None = None) -> D.Directions:
    """A trained method's direction set, initialised from `seed`, with its own `settings` (the
    grid entry's; defaults where not given)."""
    m = method_of(name)
    if m.directions is None:
        raise ValueError(f"discovery method {name!r} is closed-form: it has no trainable directions")
    own = {k: v for k, v in m.check_settings(settings or {}).items() if k in m.settings}  # not the criteria
    return m.directions(latent_dim, K, torch.Generator().manual_seed(seed), **own)
