"""The gp engine alone: no server, no database."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from botorch.exceptions.errors import ModelFittingError

from service.domain.spec import Constraint, Goal, Objective, StudySpec
from service.domain.trial import TrialState, TrialView, normalize_params
from service.engines import resolve_engine
from service.engines.base import Suggestions, SuggestRequest
from service.engines.encoding import to_unit
from service.engines.gp import model as gp_model
from service.engines.shared import modeling, optimizing
from service.engines.sobol import SobolEngine
from service.errors import InvalidArgument

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
FAST = {"initial_design": 4, "raw_samples": 64, "num_restarts": 2}
MIXED = StudySpec.model_validate(
    {
        "params": [
            {"name": "x", "type": "float", "low": -2, "high": 2},
            {"name": "lr", "type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            {"name": "k", "type": "int", "low": 1, "high": 6},
            {"name": "act", "type": "categorical", "choices": ["relu", "tanh", "gelu"]},
        ],
        "objectives": [{"name": "loss", "goal": "minimize"}],
        "engine": "gp",
        "engine_options": FAST,
    }
)
CONTINUOUS = StudySpec.model_validate(
    {
        "params": [{"name": f"x{i}", "type": "float", "low": 0, "high": 1} for i in range(3)],
        "objectives": [{"name": "score", "goal": "maximize"}],
        "engine": "gp",
        "engine_options": FAST,
    }
)


def loss(params: dict[str, object]) -> float:
    x, lr, k = float(params["x"]), float(params["lr"]), int(params["k"])  # type: ignore[arg-type]
    return (x - 0.5) ** 2 + (math.log10(lr) + 2) ** 2 + (k - 3) ** 2 / 10 + (0 if params["act"] == "gelu" else 1)


def history(spec: StudySpec, n: int, failures: int = 0, pending: int = 0) -> list[TrialView]:
    rng = np.random.default_rng(0)
    plain = spec.model_copy(update={"engine": "random", "engine_options": {}})
    resolved = resolve_engine(plain)
    points = resolved.engine.suggest(SuggestRequest(plain, resolved.options, n + failures + pending, 3, 0)).params
    trials = []
    for i, params in enumerate(points):
        if i < n:
            value = loss(params) if spec is MIXED else -sum((float(v) - 0.3) ** 2 for v in params.values())
            metric = spec.objectives[0].name
            trials.append(TrialView(i, params, TrialState.COMPLETED, {metric: value + 0.01 * rng.normal()}))
        elif i < n + failures:
            trials.append(TrialView(i, params, TrialState.FAILED))
        else:
            trials.append(TrialView(i, params, TrialState.ACTIVE))
    return trials


def suggest(
    spec: StudySpec, trials: list[TrialView], count: int = 1, memory: dict[str, object] | None = None, seed: int = 1
) -> tuple[list[dict[str, object]], Suggestions]:
    resolved = resolve_engine(spec)
    request = SuggestRequest(spec, resolved.options, count, seed, len(trials), trials=trials, memory=dict(memory or {}))
    suggested = resolved.engine.suggest(request)
    return suggested.params, suggested  # type: ignore[return-value]


def test_initial_design_is_inline_and_needs_no_worker() -> None:
    resolved = resolve_engine(MIXED)
    assert not resolved.engine.needs_worker(MIXED, resolved.options, 3)
    assert resolved.engine.needs_worker(MIXED, resolved.options, 4)
    _, suggested = suggest(MIXED, history(MIXED, 2))
    assert suggested.rung == "initial-design"


def test_initial_design_starts_at_the_centre_of_the_space_then_follows_the_sobol_sequence() -> None:
    centre = {"x": 0.0, "lr": pytest.approx(10**-2.5), "k": 4, "act": "tanh"}  # log midpoint, middle choice
    (first, second), _ = suggest(MIXED, [], count=2)
    assert first == centre
    sobol = SobolEngine().suggest(SuggestRequest(MIXED, resolve_engine(MIXED).options, 3, 1, 0)).params
    assert second == sobol[0]
    (third,), _ = suggest(MIXED, history(MIXED, 2))  # trial 2 takes Sobol point 1, whoever asks
    assert third == sobol[1]
    without = MIXED.model_copy(update={"engine_options": {**FAST, "center_point": False}})
    assert suggest(without, [], count=2)[0] == sobol[:2]


def test_stopped_trials_are_observations_for_the_model() -> None:
    trials = history(MIXED, 4)
    stopped = [TrialView(t.number, t.params, TrialState.STOPPED, t.values) for t in trials[:2]]
    _, suggested = suggest(MIXED, trials[2:] + stopped)  # 2 completed + 2 stopped: the design of 4 is done
    assert suggested.rung == "fit"
    _, suggested = suggest(MIXED, [*trials[2:], TrialView(9, trials[0].params, TrialState.STOPPED)])
    assert suggested.rung == "initial-design"  # a run stopped without values says nothing the model can use


def test_mixed_space_suggestions_are_valid_and_warm_start_the_next_fit() -> None:
    trials = history(MIXED, 12)
    (params,), suggested = suggest(MIXED, trials)
    assert normalize_params(MIXED, params) == params
    assert suggested.rung == "fit" and "objective" in suggested.memory
    (again,), warm = suggest(MIXED, trials, memory=suggested.memory)
    assert warm.rung == "fit-warm" and normalize_params(MIXED, again) == again


def test_a_fit_that_does_not_start_from_the_last_one_ignores_the_memory_but_keeps_it() -> None:
    spec = MIXED.model_copy(update={"engine_options": {**FAST, "warm_start_fit": False}})
    trials = history(MIXED, 12)
    (first,), fresh = suggest(spec, trials)
    (again,), refit = suggest(spec, trials, memory=fresh.memory)
    assert refit.rung == "fit" and again == first  # the same fit from the same start: the same suggestion
    assert refit.memory["objective"] == fresh.memory["objective"]


def continuous_data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded inputs and scores of `n` trials of the CONTINUOUS study."""
    trials = history(CONTINUOUS, n)
    X = modeling.Features.of(CONTINUOUS).encode([t.params for t in trials], torch.device("cpu"))
    Y = torch.tensor([[t.values["score"]] for t in trials], dtype=modeling.DTYPE)  # type: ignore[index]
    return X, Y


def test_a_tighter_fit_tolerance_fits_the_marginal_likelihood_better() -> None:
    X, Y = continuous_data(12)

    def fitted_likelihood(tolerance: float) -> float:
        return modeling.marginal_log_likelihood(
            modeling.fit_with_ladder(
                X,
                Y,
                {},
                one_hot=True,
                warm_start=None,
                timeout_seconds=20,
                max_fit_points=600,
                seed=0,
                tolerance=tolerance,
            ).model
        )

    assert fitted_likelihood(1e-12) > fitted_likelihood(1e-1)  # the same start, stopped later
    with pytest.raises(InvalidArgument, match="fit_tolerance"):
        resolve_engine(CONTINUOUS.model_copy(update={"engine_options": {"fit_tolerance": 0}}))


def test_fitting_from_both_starts_keeps_the_higher_marginal_likelihood() -> None:
    X, Y = continuous_data(12)
    arguments: dict[str, Any] = dict(timeout_seconds=20, max_fit_points=600, seed=0, max_iterations=5)
    fresh = modeling.fit_with_ladder(X, Y, {}, one_hot=True, warm_start=None, **arguments)
    poor_start = {
        name: [[8.0] * len(value[0])] if "lengthscale" in name else value
        for name, value in fresh.hyperparameters.items()
    }  # every lengthscale far too long: a flat model a short fit cannot leave
    warm = modeling.fit_with_ladder(X, Y, {}, one_hot=True, warm_start=poor_start, **arguments)
    both = modeling.fit_with_ladder(X, Y, {}, one_hot=True, warm_start=poor_start, also_from_initial=True, **arguments)
    assert warm.rung == "fit-warm" and both.rung == "fit"  # the fit from the initial values won
    assert modeling.marginal_log_likelihood(both.model) > modeling.marginal_log_likelihood(warm.model)
    with pytest.raises(InvalidArgument, match="fit_from_both"):  # without a warm start it would do nothing
        resolve_engine(
            CONTINUOUS.model_copy(update={"engine_options": {"fit_from_both": True, "warm_start_fit": False}})
        )


@pytest.mark.parametrize(
    "options",
    [{"input_warping": True}, {"power_transform": True}, {"discrete_int_limit": 0}, {"discrete_int_limit": 1000}],
)
def test_model_variants_fit_a_mixed_space_and_give_valid_suggestions(options: dict[str, object]) -> None:
    spec = MIXED.model_copy(update={"engine_options": {**FAST, **options}})
    trials = history(MIXED, 12)
    (params,), suggested = suggest(spec, trials)
    assert suggested.rung == "fit" and normalize_params(MIXED, params) == params
    (again,), warm = suggest(spec, trials, memory=suggested.memory)  # the warping's parameters warm-start too
    assert warm.rung == "fit-warm" and normalize_params(MIXED, again) == again


def test_integers_up_to_the_limit_are_searched_value_by_value() -> None:
    assert list(modeling.Features.of(MIXED).discrete_dims) == [2]  # k has 6 values, under the default 20
    assert not modeling.Features.of(MIXED, discrete_int_limit=5).discrete_dims


def small_space(params: list[dict[str, Any]], options: dict[str, object] | None = None) -> StudySpec:
    return StudySpec.model_validate(
        {
            "params": params,
            "objectives": [{"name": "loss", "goal": "minimize"}],
            "engine": "gp",
            "engine_options": {**FAST, **(options or {})},
        }
    )


def random_trials(spec: StudySpec, n: int, value: Any) -> list[TrialView]:
    plain = spec.model_copy(update={"engine": "random", "engine_options": {}})
    resolved = resolve_engine(plain)
    points = resolved.engine.suggest(SuggestRequest(plain, resolved.options, n, 5, 0)).params
    return [TrialView(i, p, TrialState.COMPLETED, {"loss": value(p)}) for i, p in enumerate(points)]


KERNEL = {"name": "kernel", "type": "categorical", "choices": ["rbf", "poly", "sigmoid"]}


@pytest.mark.parametrize(("search", "expected"), [("auto", "per combination"), ("alternating", "alternating")])
def test_a_few_discrete_combinations_get_a_continuous_search_each(
    search: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = small_space([{"name": "C", "type": "float", "low": 1e-2, "high": 1e2, "log": True}, KERNEL])
    spec = spec.model_copy(update={"engine_options": {**FAST, "discrete_search": search}})
    calls: list[tuple[str, int]] = []
    per_combination, alternating = optimizing.optimize_acqf_mixed, optimizing.optimize_acqf_mixed_alternating

    def spy_per_combination(*args: Any, **kwargs: Any) -> Any:
        calls.append(("per combination", len(kwargs["fixed_features_list"])))
        return per_combination(*args, **kwargs)

    def spy_alternating(*args: Any, **kwargs: Any) -> Any:
        calls.append(("alternating", 0))
        return alternating(*args, **kwargs)

    monkeypatch.setattr(optimizing, "optimize_acqf_mixed", spy_per_combination)
    monkeypatch.setattr(optimizing, "optimize_acqf_mixed_alternating", spy_alternating)
    trials = random_trials(spec, 8, lambda p: (math.log10(p["C"]) - 1) ** 2 + (p["kernel"] != "rbf"))
    batch, _ = suggest(spec, trials, count=2)
    assert [name for name, _ in calls] == [expected]
    assert expected == "alternating" or calls[0][1] == 3  # rbf, poly and sigmoid, each searched in full
    assert all(normalize_params(spec, p) == p for p in batch) and batch[0] != batch[1]


def test_a_small_fully_discrete_space_is_scored_point_by_point_skipping_observed_ones() -> None:
    spec = small_space([{"name": "k", "type": "int", "low": 1, "high": 6}, KERNEL])  # 18 points
    trials = random_trials(spec, 10, lambda p: (p["k"] - 4) ** 2 + (p["kernel"] != "poly"))
    seen = {(t.params["k"], t.params["kernel"]) for t in trials}
    batch, _ = suggest(spec, trials, count=3)
    chosen = {(p["k"], p["kernel"]) for p in batch}
    assert len(chosen) == 3 and not chosen & seen
    if (4, "poly") not in seen:
        assert (4, "poly") in chosen  # the optimum, which the model has every reason to try


def test_a_failed_point_of_a_small_discrete_space_is_not_suggested_again() -> None:
    spec = small_space([{"name": "k", "type": "int", "low": 1, "high": 6}, KERNEL])  # 18 points
    trials = [t for t in random_trials(spec, 12, lambda p: (p["k"] - 4) ** 2 + (p["kernel"] != "poly"))]
    trials = [t for t in trials if (t.params["k"], t.params["kernel"]) != (4, "poly")][:10]
    (first,), _ = suggest(spec, trials)
    assert (first["k"], first["kernel"]) == (4, "poly")  # the optimum, untried
    # It crashed: one failure is below failure_model_after, so the model is unchanged, but the point is taken.
    crashed = TrialView(len(trials), first, TrialState.FAILED)
    (again,), _ = suggest(spec, [*trials, crashed])
    assert (again["k"], again["kernel"]) != (4, "poly")


def test_the_alternating_setting_never_scores_every_point(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = small_space([{"name": "k", "type": "int", "low": 1, "high": 6}, KERNEL], {"discrete_search": "alternating"})

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("every point was scored")

    monkeypatch.setattr(optimizing, "optimize_acqf_discrete", refuse)
    trials = random_trials(spec, 10, lambda p: (p["k"] - 4) ** 2 + (p["kernel"] != "poly"))
    (params,), _ = suggest(spec, trials)
    assert normalize_params(spec, params) == params


def test_a_fully_discrete_space_with_fewer_points_left_than_asked_still_answers() -> None:
    spec = small_space([{"name": "k", "type": "int", "low": 1, "high": 3}, KERNEL])  # 9 points
    trials = random_trials(spec, 12, lambda p: float(p["k"]))
    seen = {(t.params["k"], t.params["kernel"]) for t in trials}
    asked = 10 - len(seen)  # one more than the points left: the alternating search answers
    batch, _ = suggest(spec, trials, count=asked)
    assert len(batch) == asked and all(normalize_params(spec, p) == p for p in batch)


def test_same_seed_same_suggestion() -> None:
    trials = history(CONTINUOUS, 10)
    assert suggest(CONTINUOUS, trials)[0] == suggest(CONTINUOUS, trials)[0]


def test_batches_and_pending_trials_are_kept_apart() -> None:
    trials = history(CONTINUOUS, 10, pending=3)
    batch, _ = suggest(CONTINUOUS, trials, count=4)
    points = to_unit(CONTINUOUS, batch)
    taken = to_unit(CONTINUOUS, [t.params for t in trials])
    for i, point in enumerate(points):
        assert np.abs(taken - point).max(axis=1).min() >= 1e-3
        for other in points[:i]:
            assert np.abs(other - point).max() >= 1e-3


def test_maximization_moves_toward_the_optimum() -> None:
    trials = history(CONTINUOUS, 15)
    best_seen = max(t.values["score"] for t in trials)  # type: ignore[index]
    (params,), _ = suggest(CONTINUOUS, trials)
    predicted = -sum((float(v) - 0.3) ** 2 for v in params.values())
    assert predicted > best_seen - 0.05  # exploits: lands near or beyond the incumbent


def test_three_failures_bring_in_a_success_model() -> None:
    (_,), suggested = suggest(CONTINUOUS, history(CONTINUOUS, 8, failures=2))
    assert "success" not in suggested.memory
    (params,), suggested = suggest(CONTINUOUS, history(CONTINUOUS, 8, failures=3))
    assert "success" in suggested.memory and normalize_params(CONTINUOUS, params) == params


def test_failed_fit_uses_the_last_good_hyperparameters(monkeypatch: pytest.MonkeyPatch) -> None:
    trials = history(CONTINUOUS, 10)
    _, good = suggest(CONTINUOUS, trials)

    def broken_fit(*args: object, **kwargs: object) -> None:
        raise ModelFittingError("all attempts failed")

    monkeypatch.setattr(modeling, "fit_gpytorch_mll", broken_fit)
    _, suggested = suggest(CONTINUOUS, trials, memory=good.memory)
    assert suggested.rung == "last-good"
    _, cold = suggest(CONTINUOUS, trials)
    assert cold.rung == "prior-modes"


def test_when_every_rung_fails_the_engine_falls_back_to_sobol(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_model(*args: object, **kwargs: object) -> None:
        raise modeling.EngineFailure("fit: singular; prior-modes: singular posterior")

    monkeypatch.setattr(gp_model, "fit_with_ladder", no_model)
    (params,), suggested = suggest(CONTINUOUS, history(CONTINUOUS, 10))
    assert suggested.rung == "sobol-fallback" and "singular" in (suggested.fallback_reason or "")
    assert normalize_params(CONTINUOUS, params) == params


def test_gp_refuses_what_it_cannot_model() -> None:
    with pytest.raises(InvalidArgument, match="constrained"):
        resolve_engine(CONTINUOUS.model_copy(update={"constraints": [Constraint(name="mem", op="<=", bound=1)]}))
    with pytest.raises(InvalidArgument, match="multiobjective"):
        resolve_engine(
            CONTINUOUS.model_copy(
                update={"objectives": [*CONTINUOUS.objectives, Objective(name="cost", goal=Goal.MINIMIZE)]}
            )
        )
