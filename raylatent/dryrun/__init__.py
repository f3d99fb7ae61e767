"""`--dry-run`: what a grid (`grid.py`) or a search grid (`search.py`) will run and cost, from a short
calibration on real hardware; the front door (`ablate`) picks the one its grid needs."""
from raylatent.dryrun.grid import (FIXED_S, calibrate_training, config_key, dry_run, estimate, n_train_slices,
                                   simulate)
from raylatent.dryrun.search import asha_evaluations, dry_run_search, search_costs

__all__ = ["FIXED_S", "asha_evaluations", "calibrate_training", "config_key", "dry_run", "dry_run_search", "estimate",
           "n_train_slices", "search_costs", "simulate"]
