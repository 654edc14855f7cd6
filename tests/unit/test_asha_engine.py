"""Engine asha: its rungs and its promotions (pure); pausing and resuming through the SDK is in
tests/system/test_pause_resume.py."""

from __future__ import annotations

import pytest

from service.domain.spec import StudySpec
from service.domain.trial import Measurement, TrialState, TrialView
from service.engines import resolve_engine
from service.engines.asha import AshaEngine, AshaOptions, rungs

FIDELITY = {"name": "epoch", "min": 1, "max": 27}
PARAMS = [{"name": "x", "type": "float", "low": 0.0, "high": 1.0}]
OBJECTIVE = [{"name": "loss", "goal": "minimize"}]


def _spec(**options: object) -> StudySpec:
    return StudySpec.model_validate(
        {"params": PARAMS, "objectives": OBJECTIVE, "fidelity": FIDELITY, "engine": "asha", "engine_options": options}
    )


def curve(x: float, epoch: int) -> float:
    """A learning curve whose asymptote is best at x = 0.3; worse configurations also start slower."""
    return (x - 0.3) ** 2 + (0.5 + x) / epoch


def _trial(number: int, x: float, last_epoch: int, state: TrialState) -> TrialView:
    return TrialView(
        number,
        {"x": x},
        state,
        None,
        tuple(Measurement(float(e), {"loss": curve(x, e)}) for e in range(1, last_epoch + 1)),
    )


def test_rungs_rise_by_eta_to_the_fidelity_max() -> None:
    assert rungs(_spec(), AshaOptions()) == [1.0, 3.0, 9.0, 27.0]
    assert rungs(_spec(), AshaOptions(eta=2, min_step=4)) == [4.0, 8.0, 16.0, 27.0]
    assert AshaEngine().first_budget(_spec(), AshaOptions()) == 1.0


def test_rungs_are_whole_steps_on_a_whole_step_fidelity() -> None:
    def spec(low: float, high: float) -> StudySpec:
        return StudySpec.model_validate(
            {
                "params": PARAMS,
                "objectives": OBJECTIVE,
                "engine": "asha",
                "fidelity": {"name": "epoch", "min": low, "max": high},
            }
        )

    assert rungs(spec(1, 30), AshaOptions()) == [1.0, 3.0, 10.0, 30.0]  # not 1.11, 3.33, 10
    assert rungs(spec(1, 100), AshaOptions()) == [4.0, 11.0, 33.0, 100.0]
    assert rungs(spec(1, 5), AshaOptions(eta=2, min_step=1.2)) == [1.0, 2.0, 5.0]  # 1.2, 2.4, 4.8: 4.8 rounds to 5
    assert rungs(spec(0.5, 10.5), AshaOptions()) == [0.5, 1.5, 4.5, 10.5]  # a continuous axis keeps fractions


def test_promotions_take_the_top_third_of_a_rung_highest_rung_first() -> None:
    spec, options = _spec(), AshaOptions()
    engine = AshaEngine()
    xs = [0.3, 0.9, 0.8, 0.7, 0.35, 0.6]
    trials = [_trial(i, x, 1, TrialState.PAUSED) for i, x in enumerate(xs)]  # six runs paused at rung 1
    assert [(r.number, r.budget) for r in engine.resumes(spec, options, trials, 5)] == [(0, 3.0), (4, 3.0)]
    # Trial 0 resumed to rung 3 and paused there, with two more at rung 3: the top third of those three (trial 0)
    # goes on to rung 9 before anything else is promoted from rung 1.
    trials[0] = _trial(0, 0.3, 3, TrialState.PAUSED)
    trials += [_trial(6, 0.9, 3, TrialState.PAUSED), _trial(7, 0.95, 3, TrialState.PAUSED)]
    assert [(r.number, r.budget) for r in engine.resumes(spec, options, trials, 5)] == [(0, 9.0), (4, 3.0)]
    # Active runs count towards a rung but are not resumed; fewer than eta runs promote nothing.
    assert (
        engine.resumes(
            spec,
            options,
            [
                _trial(0, 0.3, 1, TrialState.ACTIVE),
                _trial(1, 0.9, 1, TrialState.PAUSED),
                _trial(2, 0.8, 1, TrialState.PAUSED),
            ],
            5,
        )
        == []
    )
    assert engine.resumes(spec, options, trials[:2], 5) == []


def test_asha_needs_a_fidelity_and_one_objective() -> None:
    from service.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="needs a fidelity"):
        resolve_engine(StudySpec.model_validate({"params": PARAMS, "objectives": OBJECTIVE, "engine": "asha"}))
    with pytest.raises(InvalidArgument, match="eta"):
        resolve_engine(_spec(eta=1))
