"""The multiobjective engine alone: no server, no database."""

from __future__ import annotations

import math

import numpy as np
import pytest

from service.domain.spec import StudySpec
from service.domain.trial import TrialState, TrialView, normalize_params
from service.engines import auto_engine_name, resolve_engine
from service.engines.base import Suggestions, SuggestRequest
from service.engines.encoding import to_unit
from service.engines.multiobjective import model as multiobjective_model
from service.engines.multiobjective.engine import MultiObjectiveOptions, method_of
from service.errors import InvalidArgument

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
FAST = {"initial_design": 4, "raw_samples": 64, "num_restarts": 2}


def make_spec(objectives: int = 2, **overrides: object) -> StudySpec:
    return StudySpec.model_validate(
        {
            "params": [
                {"name": "x", "type": "float", "low": 0, "high": 1},
                {"name": "y", "type": "float", "low": 0, "high": 1},
                {"name": "act", "type": "categorical", "choices": ["relu", "tanh"]},
            ],
            "objectives": [{"name": f"f{i}", "goal": "minimize"} for i in range(objectives)],
            "engine": "multiobjective",
            "engine_options": FAST,
            **overrides,
        }
    )


def outcome(params: dict[str, object]) -> dict[str, float]:
    """Two conflicting objectives (distance to (0.2, 0.2) and to (0.8, 0.8)) and a metric `c` = x."""
    x, y = float(params["x"]), float(params["y"])  # type: ignore[arg-type]
    bonus = 0.0 if params["act"] == "relu" else 0.1
    return {"f0": (x - 0.2) ** 2 + (y - 0.2) ** 2 + bonus, "f1": (x - 0.8) ** 2 + (y - 0.8) ** 2 + bonus, "c": x}


def history(spec: StudySpec, n: int, pending: int = 0, failures: int = 0) -> list[TrialView]:
    plain = spec.model_copy(update={"engine": "random", "engine_options": {}})
    resolved = resolve_engine(plain)
    points = resolved.engine.suggest(SuggestRequest(plain, resolved.options, n + pending + failures, 5, 0)).params
    trials = [TrialView(i, p, TrialState.COMPLETED, outcome(p)) for i, p in enumerate(points[:n])]
    trials += [TrialView(n + i, p, TrialState.ACTIVE) for i, p in enumerate(points[n : n + pending])]
    trials += [TrialView(n + pending + i, p, TrialState.FAILED) for i, p in enumerate(points[n + pending :])]
    return trials


def suggest(
    spec: StudySpec, trials: list[TrialView], count: int = 1, memory: dict[str, object] | None = None
) -> tuple[list[dict[str, object]], Suggestions]:
    resolved = resolve_engine(spec)
    request = SuggestRequest(spec, resolved.options, count, 1, len(trials), trials=trials, memory=dict(memory or {}))
    suggested = resolved.engine.suggest(request)
    return suggested.params, suggested  # type: ignore[return-value]


def test_auto_picks_multiobjective_and_the_method_follows_the_objective_count() -> None:
    assert auto_engine_name(make_spec(2, engine="auto")) == "multiobjective"
    assert method_of(make_spec(4), MultiObjectiveOptions()) == "nehvi"
    assert method_of(make_spec(5), MultiObjectiveOptions()) == "parego"
    assert method_of(make_spec(5), MultiObjectiveOptions(method="nehvi")) == "nehvi"
    with pytest.raises(InvalidArgument, match="two or more objectives"):
        resolve_engine(make_spec(1))
    with pytest.raises(InvalidArgument) as error:
        resolve_engine(make_spec(2, engine_options={"method": "ehvi"}))
    assert error.value.problems[0].field == "engine_options.method"


def test_the_power_transform_is_refused_and_the_integer_limit_is_accepted() -> None:
    with pytest.raises(InvalidArgument) as error:  # accepted and ignored would mislead: it is refused
        resolve_engine(make_spec(2, engine_options={"power_transform": True}))
    assert error.value.problems[0].field == "engine_options.power_transform"
    assert resolve_engine(make_spec(2, engine_options={"discrete_int_limit": 5})).options.discrete_int_limit == 5


def test_initial_design_is_inline_then_a_worker_models_each_outcome() -> None:
    spec = make_spec()
    resolved = resolve_engine(spec)
    assert not resolved.engine.needs_worker(spec, resolved.options, 3)
    assert resolved.engine.needs_worker(spec, resolved.options, 4)
    _, suggested = suggest(spec, history(spec, 3))
    assert suggested.rung == "initial-design"
    (params,), suggested = suggest(spec, history(spec, 10))
    assert normalize_params(spec, params) == params
    assert suggested.rung == "fit" and suggested.memory["outcomes"]["names"] == ["f0", "f1"]
    _, warm = suggest(spec, history(spec, 10), memory=suggested.memory)
    assert warm.rung == "fit-warm"


@pytest.mark.parametrize("method", ["nehvi", "parego"])
def test_batches_with_pending_trials_are_valid_and_kept_apart(method: str) -> None:
    spec = make_spec(engine_options={**FAST, "method": method})
    trials = history(spec, 10, pending=2)
    batch, _ = suggest(spec, trials, count=3)
    assert len(batch) == 3 and all(normalize_params(spec, p) == p for p in batch)
    points, taken = to_unit(spec, batch), to_unit(spec, [t.params for t in trials])
    for i, point in enumerate(points):
        assert np.abs(taken - point).max(axis=1).min() >= 1e-3
        assert all(np.abs(other - point).max() >= 1e-3 for other in points[:i])


def test_suggestions_land_between_the_two_optima() -> None:
    """The Pareto set of `outcome` is the relu segment from (0.2, 0.2) to (0.8, 0.8)."""
    spec = make_spec()
    batch, _ = suggest(spec, history(spec, 16), count=3)
    distances = [abs(float(p["x"]) - float(p["y"])) for p in batch]  # type: ignore[arg-type]
    assert np.mean(distances) < 0.25  # random points average 1/3


def test_outcome_constraints_are_modeled_and_respected() -> None:
    spec = make_spec(constraints=[{"name": "c", "op": "<=", "bound": 0.4}])
    batch, suggested = suggest(spec, history(spec, 14), count=3)
    assert suggested.memory["outcomes"]["names"] == ["f0", "f1", "c"]
    assert all(float(p["x"]) <= 0.45 for p in batch)  # type: ignore[arg-type]


def test_three_failures_bring_in_a_success_model() -> None:
    spec = make_spec()
    _, suggested = suggest(spec, history(spec, 10, failures=3))
    assert "success" in suggested.memory


def test_reference_point_uses_thresholds_and_models_costs_on_a_log_scale() -> None:
    spec = StudySpec.model_validate(
        {
            "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
            "objectives": [
                {"name": "accuracy", "goal": "maximize", "threshold": 0.5},
                {"name": "train_seconds", "goal": "minimize", "cost": True},
            ],
            "engine": "multiobjective",
        }
    )
    trials = [
        TrialView(0, {"x": 0.1}, TrialState.COMPLETED, {"accuracy": 0.9, "train_seconds": 100.0}),
        TrialView(1, {"x": 0.2}, TrialState.COMPLETED, {"accuracy": 0.8, "train_seconds": 10.0}),
    ]
    columns = multiobjective_model.objective_columns(spec, trials)
    assert columns.ravel().tolist() == pytest.approx([0.9, -math.log(100.0), 0.8, -math.log(10.0)])
    reference = multiobjective_model.model_reference_point(spec, trials)
    # accuracy: its threshold; seconds: the worst cost plus a tenth of the range (109), as -log.
    assert reference == pytest.approx([0.5, -math.log(109.0)])
