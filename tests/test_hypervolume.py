"""Dominated hypervolume, reference points and the hypervolume history, against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from botorch.utils.multi_objective.hypervolume import Hypervolume

from service.domain.hypervolume import (
    estimated_trace,
    hypervolume,
    hypervolume_history,
    hypervolume_trace,
    oriented_reference,
    reference_point,
)
from service.domain.spec import StudySpec
from service.domain.trial import TrialState, TrialView

MINIMIZE_BOTH = StudySpec.model_validate({
    "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
    "objectives": [{"name": "loss", "goal": "minimize", "threshold": 10},
                   {"name": "seconds", "goal": "minimize", "threshold": 10, "cost": True}],
    "constraints": [{"name": "memory", "op": "<=", "bound": 4}],
})


def test_two_objective_staircase() -> None:
    front = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    assert hypervolume(front, np.zeros(2)) == pytest.approx(3 * 1 + 2 * 1 + 1 * 1)
    with_dominated = np.vstack([front, [[1.0, 1.0], [2.0, 2.0]]])
    assert hypervolume(with_dominated, np.zeros(2)) == pytest.approx(6.0)
    # Points not strictly beyond the reference add nothing; the reference shifts every box.
    assert hypervolume(np.array([[5.0, -1.0], [1.0, 3.0]]), np.zeros(2)) == pytest.approx(3.0)
    assert hypervolume(front, np.array([1.0, 1.0])) == pytest.approx(1.0)  # boxes on the boundary are flat


def test_three_objective_inclusion_exclusion() -> None:
    # Three boxes of volume 2 overlapping pairwise and jointly in the unit cube: 3*2 - 3*1 + 1.
    front = np.array([[2.0, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 1.0, 2.0]])
    assert hypervolume(front, np.zeros(3)) == pytest.approx(4.0)
    assert hypervolume(np.array([[2.0, 2.0, 2.0]]), np.ones(3)) == pytest.approx(1.0)
    assert hypervolume(np.empty((0, 3)), np.zeros(3)) == 0.0


@pytest.mark.parametrize("objectives", [2, 3, 4])
def test_matches_botorch_on_random_fronts(objectives: int) -> None:
    rng = np.random.default_rng(objectives)
    directions = np.abs(rng.normal(size=(40, objectives)))
    points = directions / np.linalg.norm(directions, axis=1, keepdims=True)  # a concave front
    points = np.vstack([points, points * 0.8])  # plus dominated points
    reference = np.full(objectives, 0.1)
    expected = Hypervolume(torch.tensor(reference)).compute(torch.tensor(points[:40]))
    assert hypervolume(points, reference) == pytest.approx(expected, rel=1e-9)


def test_reference_point_from_thresholds_in_the_maximized_orientation() -> None:
    reference = reference_point(MINIMIZE_BOTH, np.empty((0, 2)))
    assert reference.tolist() == [-10.0, -10.0]
    assert oriented_reference(MINIMIZE_BOTH, reference) == {"loss": 10.0, "seconds": 10.0}


def test_inferred_reference_is_the_nadir_minus_a_tenth_of_the_range() -> None:
    spec = MINIMIZE_BOTH.model_copy(update={"objectives": [o.model_copy(update={"threshold": None})
                                                           for o in MINIMIZE_BOTH.objectives]})
    front = np.array([[-1.0, -5.0], [-3.0, -2.0]])  # maximized: loss 1 / 3, seconds 5 / 2
    assert reference_point(spec, front).tolist() == pytest.approx([-3.2, -5.3])
    assert oriented_reference(spec, reference_point(spec, front)) == pytest.approx({"loss": 3.2, "seconds": 5.3})
    assert oriented_reference(spec, reference_point(spec, np.empty((0, 2)))) == {"loss": None, "seconds": None}


def test_inferred_reference_keeps_a_width_where_the_front_does_not_vary() -> None:
    spec = MINIMIZE_BOTH.model_copy(update={"objectives": [o.model_copy(update={"threshold": None})
                                                           for o in MINIMIZE_BOTH.objectives]})
    flat = np.array([[-1.0, -5.0], [-3.0, -5.0]])  # every point took 5 seconds: a tenth of |5| below
    assert reference_point(spec, flat).tolist() == pytest.approx([-3.2, -5.5])
    single_at_zero = np.array([[0.0, -2.0]])  # a tenth of max(|value|, 1)
    assert reference_point(spec, single_at_zero).tolist() == pytest.approx([-0.1, -2.2])
    assert hypervolume(single_at_zero, reference_point(spec, single_at_zero)) == pytest.approx(0.1 * 0.2)


def _trial(number: int, state: TrialState = TrialState.COMPLETED, **values: float) -> TrialView:
    return TrialView(number, {"x": 0.5}, state, values or None)


def test_history_has_one_value_per_completed_trial_and_skips_infeasible_points() -> None:
    trials = [
        _trial(0, loss=6, seconds=8, memory=1),  # box 4 x 2 = 8
        _trial(1, loss=1, seconds=1, memory=9),  # would dominate everything, but breaks the memory bound
        _trial(2, TrialState.FAILED),
        _trial(3, loss=8, seconds=4, memory=1),  # adds 2 x (6 - 2) = 8 below the first box
        _trial(4, loss=7, seconds=9, memory=1),  # dominated by 0: no change
        _trial(5, loss=12, seconds=1, memory=1),  # beyond the loss threshold: no change
        _trial(6, TrialState.ACTIVE),
        _trial(7, loss=2, seconds=2, memory=2),  # dominates 0 and 3: 8 x 8
    ]
    history = hypervolume_history(MINIMIZE_BOTH, trials)
    assert history.numbers == [0, 1, 3, 4, 5, 7]
    assert history.values == pytest.approx([8.0, 8.0, 16.0, 16.0, 16.0, 64.0])
    assert history.final == pytest.approx(64.0)


def test_estimated_trace_tracks_the_exact_one_and_many_objectives_are_estimated() -> None:
    rng = np.random.default_rng(3)
    points = -rng.random((60, 3))  # maximized; the reference lies below every point
    counted = rng.random(60) > 0.2
    reference = np.full(3, -1.0)
    exact = hypervolume_trace(points, counted, reference)
    estimate = estimated_trace(points, counted, reference)
    assert bool(np.all(np.diff(estimate) >= 0))
    assert np.allclose(estimate, exact, rtol=0.03, atol=1e-3)

    spec = StudySpec.model_validate({
        "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "objectives": [{"name": f"f{i}", "goal": "minimize", "threshold": 1.0} for i in range(8)]})
    trials = [TrialView(i, {"x": 0.5}, TrialState.COMPLETED, {f"f{j}": float(v) for j, v in enumerate(row)})
              for i, row in enumerate(rng.random((60, 8)))]
    history = hypervolume_history(spec, trials)
    assert history.approximate and len(history.values) == 60 and 0 < history.final < 1
