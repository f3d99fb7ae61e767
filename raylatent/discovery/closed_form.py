"""The closed-form methods' records: directions computed from a generator's weights once (SeFa,
GANSpace; see methods.py), exported and labelled exactly as a trial's, with no reconstructor and
so no RCA or Ls."""
from __future__ import annotations

from pathlib import Path

from raylatent.discovery.export import save_directions
from raylatent.discovery.methods import METHODS
from raylatent.discovery.records import (DIRECTIONS, LABELS, NO_RECONSTRUCTOR, Trial, TrialRecord, folder_of,
                                         label_summary, write_json)


def closed_form_records(generators: dict, digests: dict, K: int, zreg, out: Path,
                        chance=None) -> list[TrialRecord]:
    """Every closed-form method on every generator ({kind: z -> image module}), K directions each
    (at most the latent size); `chance(kind, K)`, if given, calibrates which factors count as found."""
    from raylatent.interpret.reading import label_directions, truth_of

    records = []
    for kind, G in generators.items():
        G = G.eval()
        for method in (m for m in METHODS.values() if m.role == "closed-form"):
            A = method.fit(G, K)
            trial = Trial(kind, NO_RECONSTRUCTOR, method.name, int(A.shape[1]), 0)
            dest = folder_of(out, trial)
            dest.mkdir(parents=True, exist_ok=True)
            save_directions(dest / DIRECTIONS, A, {"baseline": method.name, "generator": kind,
                                                   "generator_digest": digests[kind]})
            labels = label_directions(G, A, zreg, truth_of(kind, G))
            write_json(dest / LABELS, labels)
            records.append(TrialRecord(trial=trial.name, generator=kind, reconstructor=NO_RECONSTRUCTOR,
                                       deformator=method.name, K=trial.K, seed=0, iterations=0, rca=None, ls=None,
                                       shift_mae=None, gamma=None, wall_s=0.0, node_id=None,
                                       directions=trial.directions_file, truth=labels.get("truth"),
                                       **label_summary(labels, chance(kind, trial.K) if chance else None)))
    return records
