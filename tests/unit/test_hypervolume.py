"""Dominated hypervolume, reference points and the hypervolume history, against hand-computed cases."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
import torch
from botorch.utils.multi_objective.hypervolume import Hypervolume

from service.domain.hypervolume import (
    Cancelled,
    estimated_trace,
    hypervolume,
    hypervolume_history,
    hypervolume_trace,
    oriented_reference,
    reference_point,
)
from service.domain.spec import StudySpec
from service.domain.trial import TrialState, TrialView
from service.web.disconnect import unless_disconnected

MINIMIZE_BOTH = StudySpec.model_validate(
    {
        "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "objectives": [
            {"name": "loss", "goal": "minimize", "threshold": 10},
            {"name": "seconds", "goal": "minimize", "threshold": 10, "cost": True},
        ],
        "constraints": [{"name": "memory", "op": "<=", "bound": 4}],
    }
)


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
    spec = MINIMIZE_BOTH.model_copy(
        update={"objectives": [o.model_copy(update={"threshold": None}) for o in MINIMIZE_BOTH.objectives]}
    )
    front = np.array([[-1.0, -5.0], [-3.0, -2.0]])  # maximized: loss 1 / 3, seconds 5 / 2
    assert reference_point(spec, front).tolist() == pytest.approx([-3.2, -5.3])
    assert oriented_reference(spec, reference_point(spec, front)) == pytest.approx({"loss": 3.2, "seconds": 5.3})
    assert oriented_reference(spec, reference_point(spec, np.empty((0, 2)))) == {"loss": None, "seconds": None}


def test_inferred_reference_keeps_a_width_where_the_front_does_not_vary() -> None:
    spec = MINIMIZE_BOTH.model_copy(
        update={"objectives": [o.model_copy(update={"threshold": None}) for o in MINIMIZE_BOTH.objectives]}
    )
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

    spec = StudySpec.model_validate(
        {
            "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
            "objectives": [{"name": f"f{i}", "goal": "minimize", "threshold": 1.0} for i in range(8)],
        }
    )
    trials = [
        TrialView(i, {"x": 0.5}, TrialState.COMPLETED, {f"f{j}": float(v) for j, v in enumerate(row)})
        for i, row in enumerate(rng.random((60, 8)))
    ]
    history = hypervolume_history(spec, trials)
    assert history.approximate and len(history.values) == 60 and 0 < history.final < 1


def _five_objectives(rows: np.ndarray) -> tuple[StudySpec, list[TrialView]]:
    spec = StudySpec.model_validate(
        {
            "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
            "objectives": [{"name": f"f{i}", "goal": "minimize", "threshold": 1.0} for i in range(5)],
        }
    )
    return spec, [
        TrialView(i, {"x": 0.5}, TrialState.COMPLETED, {f"f{j}": float(v) for j, v in enumerate(row)})
        for i, row in enumerate(rows)
    ]


def test_a_short_five_objective_history_stays_exact() -> None:
    rows = np.random.default_rng(4).random((20, 5))
    spec, trials = _five_objectives(rows)
    history = hypervolume_history(spec, trials)
    assert not history.approximate
    assert history.values == pytest.approx(hypervolume_trace(-rows, np.ones(20, dtype=bool), np.full(5, -1.0)))


def test_a_long_five_objective_history_is_estimated_in_a_bounded_time() -> None:
    """The exact history of 200 trials with 5 objectives took 31 s through the API (1,500 trials: 363 s)."""
    directions = np.abs(np.random.default_rng(5).normal(size=(200, 5)))
    rows = 1 - 0.9 * directions / np.linalg.norm(directions, axis=1, keepdims=True)  # all on the front
    spec, trials = _five_objectives(rows)
    started = time.perf_counter()
    history = hypervolume_history(spec, trials)
    assert time.perf_counter() - started < 5
    assert history.approximate and len(history.values) == 200
    assert bool(np.all(np.diff(history.values) >= 0))
    assert history.values[59] == pytest.approx(hypervolume(-rows[:60], np.full(5, -1.0)), rel=0.02)


@pytest.mark.parametrize("objectives", [3, 8])  # the exact computation, and the estimate
def test_a_cancelled_history_stops(objectives: int) -> None:
    spec = StudySpec.model_validate(
        {
            "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
            "objectives": [{"name": f"f{i}", "goal": "minimize", "threshold": 1.0} for i in range(objectives)],
        }
    )
    trials = [
        TrialView(i, {"x": 0.5}, TrialState.COMPLETED, {f"f{j}": float(v) for j, v in enumerate(row)})
        for i, row in enumerate(np.random.default_rng(6).random((30, objectives)))
    ]
    with pytest.raises(Cancelled):
        hypervolume_history(spec, trials, cancelled=lambda: True)


class _GoneClient:
    """A request whose client has disconnected."""

    async def is_disconnected(self) -> bool:
        return True


async def test_a_computation_stops_when_its_client_disconnects() -> None:
    stopped = threading.Event()

    def endless(cancelled: object) -> None:
        while not cancelled():  # type: ignore[operator]
            time.sleep(0.01)
        stopped.set()
        raise Cancelled

    with pytest.raises(Cancelled):
        await unless_disconnected(_GoneClient(), lambda cancelled: asyncio.to_thread(endless, cancelled))  # type: ignore[arg-type]
    assert stopped.is_set()
