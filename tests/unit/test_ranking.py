"""Incumbent and Pareto-set selection."""

from __future__ import annotations

import numpy as np

from service.domain.ranking import best_trials, pareto_mask
from service.domain.spec import StudySpec
from service.domain.trial import TrialState, TrialView

TWO = StudySpec.model_validate(
    {
        "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "objectives": [{"name": "a", "goal": "minimize"}, {"name": "b", "goal": "maximize"}],
        "constraints": [{"name": "c", "op": ">=", "bound": 0}],
    }
)


def _trial(number: int, state: TrialState = TrialState.COMPLETED, **values: float) -> TrialView:
    return TrialView(number, {"x": 0.5}, state, values)


def test_pareto_mask_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    points = rng.integers(0, 6, size=(200, 3)).astype(float)
    brute = [not any(np.all(q >= p) and np.any(q > p) for q in points) for p in points]
    assert pareto_mask(points).tolist() == brute


def test_pareto_set_skips_infeasible_and_unfinished_trials() -> None:
    trials = [
        _trial(0, a=1, b=1, c=1),
        _trial(1, a=0, b=5, c=-1),  # dominates everything but is infeasible
        _trial(2, a=2, b=2, c=0),
        _trial(3, a=3, b=1, c=0),  # dominated by 0 and 2
        _trial(4, TrialState.FAILED, a=0, b=9, c=1),
    ]
    assert [t.number for t in best_trials(TWO, trials)] == [0, 2]


def test_duplicates_on_the_front_are_all_kept() -> None:
    trials = [_trial(0, a=1, b=1, c=0), _trial(1, a=1, b=1, c=0)]
    assert [t.number for t in best_trials(TWO, trials)] == [0, 1]
