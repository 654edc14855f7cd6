"""The median stopping rule alone, on hand-made learning curves."""

from __future__ import annotations

import pytest

from service.domain.spec import StudySpec
from service.domain.trial import Measurement, TrialState, TrialView
from service.engines import resolve_engine
from service.engines.base import Action
from service.errors import InvalidArgument

SPEC = StudySpec.model_validate(
    {
        "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "objectives": [{"name": "loss", "goal": "minimize"}],
        "fidelity": {"name": "epoch", "min": 1, "max": 10},
        "engine": "random",
        "engine_options": {"stopping": "median", "stopping_min_trials": 3, "stopping_grace": 2},
    }
)


def curve(number: int, losses: list[float], state: TrialState = TrialState.COMPLETED) -> TrialView:
    measurements = tuple(Measurement(float(step), {"loss": v}) for step, v in enumerate(losses, start=1))
    return TrialView(
        number, {"x": 0.5}, state, {"loss": losses[-1]} if state is TrialState.COMPLETED else None, measurements
    )


def decide(trial: TrialView, others: list[TrialView], spec: StudySpec = SPEC) -> Action:
    resolved = resolve_engine(spec)
    return resolved.engine.decide(spec, resolved.options, trial, [*others, trial]).action


COMPLETED = [curve(0, [1.0, 0.8, 0.6]), curve(1, [0.9, 0.5, 0.4]), curve(2, [1.2, 1.0, 0.9])]


def test_a_trial_worse_than_the_median_at_the_same_step_is_stopped() -> None:
    # Medians of the completed trials' best by step: 1.0 at step 1, 0.8 at 2, 0.6 at 3.
    assert decide(curve(3, [1.1, 0.85], TrialState.ACTIVE), COMPLETED) is Action.STOP
    assert decide(curve(3, [1.1, 0.75], TrialState.ACTIVE), COMPLETED) is Action.CONTINUE
    # Its best so far counts, not its latest value: a noisy bump does not stop it.
    assert decide(curve(3, [0.7, 0.9], TrialState.ACTIVE), COMPLETED) is Action.CONTINUE


def test_grace_period_and_minimum_evidence() -> None:
    assert decide(curve(3, [5.0], TrialState.ACTIVE), COMPLETED) is Action.CONTINUE  # step 1 < grace 2
    assert decide(curve(3, [5.0, 5.0], TrialState.ACTIVE), COMPLETED[:2]) is Action.CONTINUE  # 2 < 3 trials
    running = [curve(4, [0.1, 0.1], TrialState.ACTIVE), curve(5, [0.1, 0.1], TrialState.STOPPED)]
    assert decide(curve(3, [5.0, 5.0], TrialState.ACTIVE), [*COMPLETED[:2], *running]) is Action.CONTINUE


def test_maximized_objectives_compare_the_other_way() -> None:
    spec = SPEC.model_copy(update={"objectives": [SPEC.objectives[0].model_copy(update={"goal": "maximize"})]})
    assert decide(curve(3, [1.1, 0.85], TrialState.ACTIVE), COMPLETED, spec) is Action.CONTINUE
    assert decide(curve(3, [0.1, 0.2], TrialState.ACTIVE), COMPLETED, spec) is Action.STOP


def test_median_stopping_needs_a_fidelity_and_one_objective() -> None:
    with pytest.raises(InvalidArgument, match="needs a fidelity") as error:
        resolve_engine(SPEC.model_copy(update={"fidelity": None}))
    assert error.value.problems[0].field == "engine_options.stopping"
