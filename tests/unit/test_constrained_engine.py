"""Engine constrained alone: CONFIG's auxiliary problem, the infeasibility declaration, constrained LogNEI."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from service.domain.spec import StudySpec
from service.domain.trial import TrialState, TrialView
from service.engines import auto_engine_name, resolve_engine
from service.engines.base import Suggestions, SuggestRequest
from service.engines.encoding import to_unit
from service.errors import InvalidArgument

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
FAST = {"initial_design": 5, "raw_samples": 64, "num_restarts": 2, "pool_points": 500}
Metrics = Callable[[dict[str, object]], dict[str, float]]


def spec_of(constraints: list[dict[str, object]], **options: object) -> StudySpec:
    return StudySpec.model_validate(
        {
            "params": [
                {"name": "x", "type": "float", "low": 0, "high": 1},
                {"name": "y", "type": "float", "low": 0, "high": 1},
            ],
            "objectives": [{"name": "loss", "goal": "minimize"}],
            "constraints": constraints,
            "engine_options": {**FAST, **options},
        }
    )


def bowl(params: dict[str, object]) -> dict[str, float]:
    """Unconstrained minimum at (0.3, 0.7); with x >= 0.5 the optimum is (0.5, 0.7), loss 0.04."""
    x, y = float(params["x"]), float(params["y"])  # type: ignore[arg-type]
    return {"loss": (x - 0.3) ** 2 + (y - 0.7) ** 2, "x_value": x}


def never_feasible(params: dict[str, object]) -> dict[str, float]:
    x, y = float(params["x"]), float(params["y"])  # type: ignore[arg-type]
    return {"loss": (x - 0.3) ** 2, "c": 2 + math.sin(3 * x) + y**2}  # c in [2, 4]; c <= 0 is wanted


def step(spec: StudySpec, trials: list[TrialView], memory: dict[str, object], count: int = 1) -> Suggestions:
    resolved = resolve_engine(spec)
    return resolved.engine.suggest(
        SuggestRequest(spec, resolved.options, count, 4, len(trials), trials=trials, memory=dict(memory))
    )


def run(spec: StudySpec, metrics: Metrics, n: int) -> tuple[list[TrialView], list[Suggestions]]:
    """`n` suggestions in turn, each told at once, the engine's memory kept in between as a worker keeps it."""
    trials: list[TrialView] = []
    seen: list[Suggestions] = []
    memory: dict[str, object] = {}
    for _ in range(n):
        suggested = step(spec, trials, memory)
        (params,) = suggested.params
        memory = suggested.memory if suggested.memory is not None else memory
        seen.append(suggested)
        trials.append(TrialView(len(trials), params, TrialState.COMPLETED, metrics(params)))
    return trials, seen


def test_auto_picks_constrained_for_one_objective_with_constraints() -> None:
    spec = spec_of([{"name": "x_value", "op": ">=", "bound": 0.5}])
    assert auto_engine_name(spec) == "constrained"
    assert resolve_engine(spec).engine.name == "constrained"


def test_config_finds_the_constrained_optimum_of_a_tiny_problem() -> None:
    spec = spec_of([{"name": "x_value", "op": ">=", "bound": 0.5}], method="config")
    trials, seen = run(spec, bowl, 16)
    assert seen[-1].info == [{"method": "config", "optimistically_feasible": True}]
    for trial in trials[-3:]:  # settled on the constrained optimum, not the unconstrained one at (0.3, 0.7)
        x, y = float(trial.params["x"]), float(trial.params["y"])  # type: ignore[arg-type]
        assert abs(x - 0.5) < 0.03 and abs(y - 0.7) < 0.05
    assert seen[-1].status is not None and seen[-1].status["likely_infeasible"] is False


def test_infeasible_problem_is_declared_after_three_rounds_with_evidence() -> None:
    spec = spec_of([{"name": "c", "op": "<=", "bound": 0}], method="config")
    trials, seen = run(spec, never_feasible, 9)
    statuses = [s.status for s in seen]
    assert statuses[:5] == [None] * 5  # initial design: no model, no verdict
    assert [s["rounds"] for s in statuses[5:]] == [1, 2, 3, 4]  # type: ignore[index]
    assert [s["likely_infeasible"] for s in statuses[5:]] == [False, False, True, True]  # type: ignore[index]
    evidence = statuses[-1]["infeasibility"]  # type: ignore[index]
    best = min(trials[:-1], key=lambda t: t.values["c"])  # type: ignore[index]
    assert evidence["least_violating_trial"] == best.number
    assert evidence["violations"] == {"c <= 0": pytest.approx(best.values["c"])}  # type: ignore[index]
    assert evidence["rounds"] == 4 and evidence["least_optimistic_violation"] > 0
    # The engine keeps suggesting the point of least optimistic violation: in the better half of c's range [2, 4]
    # (its minimum is at x = y = 0; the model sees c on a bilog scale, where uncertainty weighs more).
    assert seen[-1].info[0]["optimistically_feasible"] is False  # type: ignore[index]
    assert never_feasible(trials[-1].params)["c"] < 3.0

    memory = next(s.memory for s in reversed(seen) if s.memory is not None)
    again = step(spec, trials[:-1], memory)  # a pool refill on the same data: not a new round
    assert again.status is not None and again.status["rounds"] == 4


def test_cei_studies_are_declared_infeasible_too() -> None:
    spec = spec_of([{"name": "c", "op": "<=", "bound": 0}])  # cei is the default
    _, seen = run(spec, never_feasible, 9)
    assert [s.status["likely_infeasible"] for s in seen[5:]] == [False, False, True, True]  # type: ignore[index]
    assert seen[-1].info == [{"method": "cei", "searching": "feasibility"}]  # D17: no feasible point yet


def test_a_feasible_round_resets_the_count() -> None:
    spec = spec_of([{"name": "x_value", "op": ">=", "bound": 0.5}])
    trials, _ = run(spec, bowl, 6)
    suggested = step(spec, trials, {"infeasible": {"rounds": 2, "data": 0}})
    assert suggested.status == {"likely_infeasible": False, "rounds": 0, "infeasibility": None}


@pytest.mark.parametrize("method", ["cei", "config"])
def test_concurrent_suggestions_spread_out_and_failures_become_a_constraint(method: str) -> None:
    spec = spec_of([{"name": "x_value", "op": ">=", "bound": 0.5}], failure_model_after=2, method=method)
    trials, seen = run(spec, bowl, 8)
    rng = random.Random(1)
    trials += [TrialView(len(trials) + i, {"x": rng.random(), "y": rng.random()}, TrialState.FAILED) for i in range(2)]
    trials.append(TrialView(len(trials), dict(trials[-3].params), TrialState.ACTIVE))
    assert seen[-1].memory is not None
    batch = step(spec, trials, seen[-1].memory, count=3)
    assert "success" in (batch.memory or {})
    points = to_unit(spec, [*batch.params, trials[-1].params])
    gaps = [abs(points[i] - points[j]).max() for i in range(4) for j in range(i + 1, 4)]
    assert min(gaps) > 1e-3


def test_cei_method_gives_feasibility_weighted_suggestions() -> None:
    spec = spec_of([{"name": "x_value", "op": ">=", "bound": 0.5}])
    trials, seen = run(spec, bowl, 10)
    assert seen[-1].info == [{"method": "cei"}]
    assert seen[-1].status is not None and seen[-1].status["likely_infeasible"] is False
    late = [t.values for t in trials[5:] if t.values]
    assert sum(v["x_value"] >= 0.45 for v in late) >= 3


def corner(params: dict[str, object]) -> dict[str, float]:
    """The bowl's loss, feasible only in the corner x, y >= 0.8 (4% of the box): Sobol's first points miss it."""
    x, y = float(params["x"]), float(params["y"])  # type: ignore[arg-type]
    return {"loss": (x - 0.3) ** 2 + (y - 0.7) ** 2, "x_value": x, "y_value": y}


def test_feasibility_first_searches_for_a_feasible_point_then_for_the_objective() -> None:
    constraints = [{"name": "x_value", "op": ">=", "bound": 0.8}, {"name": "y_value", "op": ">=", "bound": 0.8}]
    spec = spec_of(constraints)  # feasibility_first is the default (D17)
    trials, seen = run(spec, corner, 12)
    feasible = [i for i, t in enumerate(trials) if t.values and min(t.values["x_value"], t.values["y_value"]) >= 0.8]
    assert feasible and feasible[0] >= 5, "the initial design alone should not find the corner"
    first = feasible[0]
    searching = [s.info[0].get("searching") for s in seen[5 : first + 1]]
    assert searching == ["feasibility"] * len(searching)
    assert all(s.info == [{"method": "cei"}] for s in seen[first + 1 :])

    _, weighted = run(spec_of(constraints, feasibility_first=False), corner, 6)
    assert weighted[-1].info == [{"method": "cei"}]


def test_only_a_completed_feasible_trial_ends_the_search_for_feasibility() -> None:
    constraints = [{"name": "x_value", "op": ">=", "bound": 0.8}, {"name": "y_value", "op": ">=", "bound": 0.8}]
    spec = spec_of(constraints)
    trials, _ = run(spec, corner, 5)  # the initial design: none in the corner
    params = {"x": 0.9, "y": 0.9}
    for state, searching in [(TrialState.STOPPED, True), (TrialState.COMPLETED, False)]:
        # A trial stopped early met the constraints when it stopped; its final values might not have.
        suggested = step(spec, [*trials, TrialView(5, params, state, corner(params))], {})
        assert (suggested.info[0].get("searching") == "feasibility") is searching  # type: ignore[index]


def test_constrained_refuses_what_it_cannot_serve() -> None:
    with pytest.raises(InvalidArgument, match="needs outcome constraints"):
        resolve_engine(StudySpec.model_validate({**spec_of([]).model_dump(), "engine": "constrained"}))
    with pytest.raises(InvalidArgument) as error:
        resolve_engine(spec_of([{"name": "c", "op": "<=", "bound": 0}], method="eci", sqrt_beta=0))
    assert {p.field for p in error.value.problems} == {"engine_options.method", "engine_options.sqrt_beta"}
