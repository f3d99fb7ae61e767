"""A direction set's reading: what each direction does and which factors it recovers, as the
directions stage stores it beside the directions (labels.json) and results.json summarises."""
from __future__ import annotations

import torch


def label_directions(G, A: torch.Tensor | dict, zreg=None, truth=None, couplings=None, sweep=None) -> dict:
    """Scores, labels and factor recovery for every direction of A (a matrix, or an export's
    arrays, so the authors' proj directions are swept along their real path; see labels.py),
    purity net of the measured `couplings` (interpret/couplings.py), each swept as `sweep` says
    (labels.Sweep; None: the labeller's default); with `truth` = (true axes d x F, factor names),
    the scores against those axes too."""
    from raylatent.interpret.labels import Sweep, factor_recovery, score_directions
    from raylatent.interpret.truth import score_truth

    G = G.cpu().float()
    sweep = sweep or Sweep()
    scores = score_directions(G, A, n_latents=sweep.latents, n_eps=sweep.steps, zreg=zreg, couplings=couplings)
    out = {"directions": scores, "factors": factor_recovery(scores)}
    if truth is not None:
        out["truth"] = score_truth(A, truth)
    return out


def truth_of(kind: str, G):
    """(true axes, factor names) where the generator kind knows them, else None."""
    from raylatent.models.registry import kind_of

    fn = kind_of(kind).truth
    return fn(G) if fn else None
