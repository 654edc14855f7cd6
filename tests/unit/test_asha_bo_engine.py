"""Engine asha_bo: asha's promotions, asha's Sobol points before the model, the model's configurations after,
pending runs, mixed spaces and warm starts (pure, CPU only)."""

from __future__ import annotations

import math

import pytest

from service.domain.spec import StudySpec
from service.domain.trial import Measurement, TrialState, TrialView
from service.engines import ENGINES, resolve_engine
from service.engines.asha import AshaEngine
from service.engines.asha_bo.engine import AshaBOEngine, AshaBOOptions, rung_observations, top_rung_observations
from service.engines.base import SuggestRequest
from service.engines.sobol import SobolEngine
from service.errors import InvalidArgument

FIDELITY = {"name": "epoch", "min": 1, "max": 27}
PARAMS = [{"name": "x", "type": "float", "low": 0.0, "high": 1.0}]
OBJECTIVE = [{"name": "loss", "goal": "minimize"}]


def _spec(params: list[dict[str, object]] | None = None, **options: object) -> StudySpec:
    return StudySpec.model_validate(
        {
            "params": params or PARAMS,
            "objectives": OBJECTIVE,
            "fidelity": FIDELITY,
            "engine": "asha_bo",
            "engine_options": options,
        }
    )


def curve(x: float, epoch: float) -> float:
    """Curves whose final value is lowest at x = 0.3, and whose ranking at the first rung already says so."""
    return 4 * (x - 0.3) ** 2 + 0.5 * math.exp(-epoch / 5)


def _run(
    number: int,
    params: dict[str, object],
    epochs: int,
    loss: float | None = None,
    state: TrialState = TrialState.PAUSED,
) -> TrialView:
    x = float(params["x"])  # type: ignore[arg-type]
    values = tuple(
        Measurement(float(e), {"loss": loss if loss is not None else curve(x, e)}) for e in range(1, epochs + 1)
    )
    return TrialView(number, params, state, None, values)


def _request(
    spec: StudySpec,
    trials: list[TrialView],
    count: int = 1,
    memory: dict[str, object] | None = None,
) -> SuggestRequest:
    return SuggestRequest(
        spec,
        resolve_engine(spec).options,
        count,
        seed=11,
        sequence_start=len(trials),
        trials=trials,
        memory=dict(memory or {}),
    )


def _first_rung_runs(count: int) -> list[TrialView]:
    """`count` configurations spread over [0, 1], each trained to the first rung (1 epoch) and paused."""
    return [_run(i, {"x": (i + 0.5) / count}, 1) for i in range(count)]


def test_asha_bo_is_registered_and_needs_a_fidelity_and_one_objective() -> None:
    assert isinstance(ENGINES["asha_bo"], AshaBOEngine)
    with pytest.raises(InvalidArgument) as error:
        resolve_engine(StudySpec.model_validate({"params": PARAMS, "objectives": OBJECTIVE, "engine": "asha_bo"}))
    assert "fidelity" in error.value.problems[0].reason
    with pytest.raises(InvalidArgument) as error:
        resolve_engine(_spec(model="last_rung"))
    assert error.value.problems[0].field == "engine_options.model"


def test_promotions_are_ashas() -> None:
    """Nine runs at the first rung (1 epoch) and three at the second (3 epochs): the same promotions as asha's, in
    the same order, to the same budgets."""
    spec = _spec()
    trials = [*_first_rung_runs(9), *[_run(9 + i, {"x": 0.25 + 0.05 * i}, 3) for i in range(3)]]
    options = resolve_engine(spec).options
    asha_spec = spec.model_copy(update={"engine": "asha"})
    expected = AshaEngine().resumes(asha_spec, resolve_engine(asha_spec).options, trials, 5)
    got = AshaBOEngine().resumes(spec, options, trials, 5)
    assert [(r.number, r.budget) for r in got] == [(r.number, r.budget) for r in expected]
    assert got and got[0].budget == 9.0  # the highest rung first


def test_sobol_points_before_enough_configurations_have_a_rung_value() -> None:
    """Two parameters: the model waits for d + 2 = 4 configurations; before, the points are asha's (the study's
    Sobol sequence at the trial's number)."""
    params = [*PARAMS, {"name": "y", "type": "float", "low": -1.0, "high": 1.0}]
    spec = _spec(params)
    trials = [_run(i, {"x": x, "y": 0.0}, 1) for i, x in enumerate((0.1, 0.5, 0.9))]
    suggested = AshaBOEngine().suggest(_request(spec, trials))
    assert suggested.params == SobolEngine().suggest(_request(spec, trials)).params
    assert suggested.rung == "initial-design"
    options = resolve_engine(spec).options
    assert not AshaBOEngine().needs_worker(spec, options, 0, created=3)
    assert AshaBOEngine().needs_worker(spec, options, 0, created=4)
    assert AshaBOEngine().first_budget(spec, options) == 1.0


@pytest.mark.parametrize("model", ["all_rungs", "top_rung"])
@pytest.mark.parametrize("acquisition", ["thompson", "log_ei"])
def test_new_configurations_come_from_the_model_once_there_is_enough_data(model: str, acquisition: str) -> None:
    """Eighteen configurations at the first rung, the best six of them trained on to the second and the best two
    to the third, as asha would: the model's choice lands near the best final value (x = 0.3), and its
    hyperparameters are kept for next time. `top_rung` models the six values at the second rung (the third has two),
    where a joint draw may still explore past them."""
    spec = _spec(model=model, acquisition=acquisition)
    trials = _first_rung_runs(18)
    ranked = sorted(trials, key=lambda t: abs(float(t.params["x"]) - 0.3))  # type: ignore[arg-type]
    trials = [_run(t.number, t.params, 9 if i < 2 else 3 if i < 6 else 1) for i, t in enumerate(ranked)]
    suggested = AshaBOEngine().suggest(_request(spec, trials))
    (suggestion,) = suggested.params
    assert suggested.rung in ("fit", "fit-warm")
    assert suggested.memory is not None
    kept = suggested.memory["asha_bo"]
    assert isinstance(kept, dict) and "hyperparameters" in kept
    if model == "all_rungs":
        assert abs(float(suggestion["x"]) - 0.3) < 0.15  # type: ignore[arg-type]
    else:
        assert kept["key"] == "top:3.0"
    assert suggested.info == [{"model": model, "acquisition": acquisition}]


def test_the_last_fit_is_reused_until_the_data_grow_and_warm_starts_the_next() -> None:
    spec = _spec()
    trials = _first_rung_runs(20)
    first = AshaBOEngine().suggest(_request(spec, trials))
    again = AshaBOEngine().suggest(_request(spec, [*trials, _run(20, {"x": 0.31}, 1)], memory=first.memory))
    assert again.rung == "reused" and again.memory is None  # None: the stored memory stays as it is
    grown = AshaBOEngine().suggest(
        _request(spec, [*trials, *[_run(20 + i, {"x": 0.03 * i + 0.01}, 1) for i in range(5)]], memory=first.memory)
    )
    assert grown.rung == "fit-warm"


def test_pending_runs_and_a_batch_get_distinct_configurations() -> None:
    """Runs started elsewhere and not measured yet are believed at their prediction: a batch of three avoids them
    and each other."""
    spec = _spec()
    trials = [*_first_rung_runs(10), *[TrialView(10 + i, {"x": 0.3 + 0.01 * i}, TrialState.ACTIVE) for i in range(2)]]
    request = _request(spec, trials, count=3)
    suggestions = AshaBOEngine().suggest(request).params
    xs = [float(s["x"]) for s in suggestions]  # type: ignore[arg-type]
    taken = [0.3, 0.31, *xs]
    assert len(suggestions) == 3
    assert all(abs(a - b) > 1e-3 for i, a in enumerate(taken) for b in taken[i + 1 :])


@pytest.mark.parametrize("model", ["all_rungs", "top_rung"])
def test_mixed_spaces_get_valid_configurations(model: str) -> None:
    """A log-scaled float, a small and a wide integer and a categorical: every suggestion is inside the space."""
    params = [
        {"name": "x", "type": "float", "low": 0.0, "high": 1.0},
        {"name": "lr", "type": "float", "low": 1e-5, "high": 1e-1, "log": True},
        {"name": "layers", "type": "int", "low": 1, "high": 4},
        {"name": "width", "type": "int", "low": 8, "high": 512, "log": True},
        {"name": "optimizer", "type": "categorical", "choices": ["adam", "sgd", "rmsprop"]},
    ]
    spec = _spec(params, model=model)
    seeds = SobolEngine().suggest(SuggestRequest(spec, resolve_engine(spec).options, 12, 3, 0)).params
    trials = [
        _run(i, p, 3 if i % 3 == 0 else 1, loss=abs(float(p["x"]) - 0.3) + (p["optimizer"] == "sgd"))
        for i, p in enumerate(seeds)
    ]
    suggested = AshaBOEngine().suggest(_request(spec, trials, count=2))
    for suggestion in suggested.params:
        assert 0 <= float(suggestion["x"]) <= 1 and 1e-5 <= float(suggestion["lr"]) <= 1e-1  # type: ignore[arg-type]
        assert isinstance(suggestion["layers"], int) and 1 <= suggestion["layers"] <= 4
        assert isinstance(suggestion["width"], int) and 8 <= suggestion["width"] <= 512
        assert suggestion["optimizer"] in ("adam", "sgd", "rmsprop")
    assert suggested.rung in ("fit", "fit-warm")


def test_rung_observations_and_bohbs_top_rung() -> None:
    """Values at each rung a trial reached (a completed trial told without reports counts at the max; failed ones
    not at all); `top_rung` takes the highest rung with at least min_configs values."""
    spec = _spec()
    options = resolve_engine(spec).options
    assert isinstance(options, AshaBOOptions)
    trials = [
        _run(0, {"x": 0.1}, 4),
        _run(1, {"x": 0.2}, 3),
        _run(2, {"x": 0.5}, 1, state=TrialState.FAILED),
        TrialView(3, {"x": 0.7}, TrialState.COMPLETED, {"loss": 0.4}),
    ]
    observed = rung_observations(spec, options, trials)
    assert [(o.params["x"], o.step) for o in observed] == [(0.1, 1.0), (0.1, 3.0), (0.2, 1.0), (0.2, 3.0), (0.7, 27.0)]
    assert observed[1].loss == pytest.approx(curve(0.1, 3))
    step, at = top_rung_observations(spec, options, [*observed, *rung_observations(spec, options, _first_rung_runs(3))])
    assert step == 1.0 and len(at) == 5
    step, at = top_rung_observations(
        spec, options, rung_observations(spec, options, [_run(i, {"x": i / 4}, 3) for i in range(4)])
    )
    assert step == 3.0 and len(at) == 4


def test_a_maximized_objective_is_modelled_as_a_loss() -> None:
    spec = StudySpec.model_validate(
        {
            "params": PARAMS,
            "objectives": [{"name": "acc", "goal": "maximize"}],
            "fidelity": FIDELITY,
            "engine": "asha_bo",
        }
    )
    options = resolve_engine(spec).options
    assert isinstance(options, AshaBOOptions)
    trial = TrialView(0, {"x": 0.5}, TrialState.PAUSED, None, (Measurement(1.0, {"acc": 0.9}),))
    assert [o.loss for o in rung_observations(spec, options, [trial])] == [-0.9]
