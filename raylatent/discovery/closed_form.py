"""The records of the direction sets computed once per generator, beside the trials: the
closed-form methods (SeFa and GANSpace from the generator's first layer, the Hessian joint
diagonalisation from its images; at most K directions each) and the positive
controls (true axes, supervised; a direction per factor, controls.py). Each is exported and
labelled exactly as a trial's, with no reconstructor and so no RCA or Ls."""
from __future__ import annotations

from pathlib import Path

from raylatent.discovery.export import save_directions
from raylatent.discovery.methods import METHODS, ONCE_PER_GENERATOR
from raylatent.discovery.records import (DIRECTIONS, LABELS, NO_RECONSTRUCTOR, Trial, TrialRecord, folder_of,
                                         label_summary, write_json)
from raylatent.models.directions import rebuild


def closed_form_records(generators: dict, digests: dict, K: int, zreg, out: Path, chance=None,
                        couplings=None, control_Ks=(), sweep=None) -> list[TrialRecord]:
    """Every closed-form method (at most K directions each, at most the latent size) and every control
    (when `control_Ks` names the grid's K) on every generator ({kind: z -> image module});
    `chance(kind, K)`, if given, calibrates which factors count as found. A control's record is
    judged at the largest of `control_Ks`, and carries the factors it finds at each (`found_by_K`).
    Every set is labelled with the trials' `sweep` (interpret/labels.Sweep)."""
    from raylatent.interpret.reading import label_directions, truth_of

    records = []
    for kind, G in generators.items():
        G = G.eval()
        for method in (m for m in METHODS.values() if m.role in ONCE_PER_GENERATOR):
            control = method.role == "control"
            if (control and not control_Ks) or (not control and K <= 0):
                continue
            fitted = method.fit(G, K, kind, zreg)
            if fitted is None:  # a control this generator has no such set for (no true axes)
                continue
            A, names = fitted if control else (fitted, None)
            n = rebuild(A).K  # a matrix's columns, or a curved set's paths
            if n == 0:
                continue
            trial = Trial(kind, NO_RECONSTRUCTOR, method.name, int(n), 0)
            dest = folder_of(out, trial)
            dest.mkdir(parents=True, exist_ok=True)
            save_directions(dest / DIRECTIONS, A, {"baseline": method.name, "generator": kind,
                                                   "generator_digest": digests[kind],
                                                   **({"factors": names} if names else {})})
            labels = label_directions(G, A, zreg, truth_of(kind, G), couplings=couplings, sweep=sweep)
            if names:
                labels["control_factors"] = names  # column i is the control's direction for this factor
            write_json(dest / LABELS, labels)
            judged_K = max(control_Ks) if control else trial.K
            by_K = ({str(k): [f for f, v in label_summary(labels, chance(kind, k))["factors"].items() if v["found"]]
                     for k in sorted(control_Ks)} if control and chance else None)
            records.append(TrialRecord(trial=trial.name, generator=kind, reconstructor=NO_RECONSTRUCTOR,
                                       deformator=method.name, K=trial.K, seed=0, iterations=0, rca=None, ls=None,
                                       shift_mae=None, gamma=None, wall_s=0.0, node_id=None,
                                       directions=trial.directions_file, truth=labels.get("truth"),
                                       found_by_K=by_K,
                                       **label_summary(labels, chance(kind, judged_K) if chance else None)))
    return records
