"""The median stopping rule, available to every engine of a study with a fidelity (`stopping: "median"`).

"Google Vizier: A Service for Black-Box Optimization" (Golovin et al., 2017): stop a trial whose best
objective value by step t is worse than the median of the completed trials' best values by the same
step. A grace period (`stopping_grace`, in steps) and a minimum number of completed trials to compare
with (`stopping_min_trials`) keep it from judging on too little evidence.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from service.domain.spec import Goal, StudySpec
from service.domain.trial import TrialState, TrialView
from service.engines.decisions import CONTINUE, Action, Decision, NoOptions

StoppingRule = Literal["none", "median"]


class StoppingOptions(NoOptions):
    """Options every engine takes: an early-stopping rule for trials that report intermediate values."""

    stopping: StoppingRule = Field(
        default="none", description="`median`: stop trials worse than the median of completed trials at the same step."
    )
    stopping_min_trials: int = Field(
        default=5, ge=1, le=1000, description="Completed trials needed before a trial can be stopped."
    )
    stopping_grace: float = Field(default=0.0, ge=0, description="No trial is stopped before this step.")


def stopping_problem(spec: StudySpec, options: StoppingOptions) -> str | None:
    """Why the chosen stopping rule cannot serve `spec`, or None."""
    if options.stopping == "none":
        return None
    if spec.fidelity is None:
        return "median stopping needs a fidelity: trials must report values along a step axis"
    if len(spec.objectives) > 1:
        return "median stopping compares one objective; this study has several"
    return None


def _best_by(trial: TrialView, metric: str, step: float, sign: float) -> float | None:
    """The trial's best (lowest after `sign`) reported value of `metric` at steps <= `step`."""
    seen = [sign * m.values[metric] for m in trial.measurements if m.step <= step and metric in m.values]
    return min(seen) if seen else None


def median_stopping(
    spec: StudySpec, options: StoppingOptions, trial: TrialView, trials: Sequence[TrialView]
) -> Decision:
    if not trial.measurements:
        return CONTINUE
    step = max(m.step for m in trial.measurements)
    if step < options.stopping_grace:
        return CONTINUE
    objective = spec.objectives[0]
    sign = 1.0 if objective.goal is Goal.MINIMIZE else -1.0  # compare as losses: lower is better
    mine = _best_by(trial, objective.name, step, sign)
    others = [
        v
        for t in trials
        if t.state is TrialState.COMPLETED
        and t.number != trial.number
        and (v := _best_by(t, objective.name, step, sign)) is not None
    ]
    if mine is None or len(others) < options.stopping_min_trials:
        return CONTINUE
    median = statistics.median(others)
    if mine <= median:
        return CONTINUE
    return Decision(
        Action.STOP,
        f"median stopping: best {objective.name} by step {step:g} is "
        f"{sign * mine:.6g}, worse than the median {sign * median:.6g} of "
        f"{len(others)} completed trials",
    )
