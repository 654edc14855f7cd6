"""Engine `asha`: asynchronous successive halving in which a promotion resumes a paused run.

"A System for Massively Parallel Hyperparameter Tuning" (Li et al., 2020): rungs at steps r_k = min_step · eta^k
(the last one at the fidelity's max). A new trial trains to r_0 and pauses there; whenever a worker asks, the
highest rung with a paused trial in the top 1/eta of every trial that reached that rung promotes it, and the
trial *resumes* from its checkpoint to the next rung instead of starting over. With nothing to promote, a new
configuration starts (a scrambled Sobol point). Runs are never stopped: those not promoted stay paused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

from pydantic import Field

from service.domain.spec import Goal, StudySpec
from service.domain.trial import TrialState, TrialView
from service.engines.base import Engine, Resume, Suggestions, SuggestRequest
from service.engines.sobol import sobol_points
from service.engines.stopping import StoppingOptions


class AshaOptions(StoppingOptions):
    eta: int = Field(default=3, ge=2, le=10, description="Reduction factor: the top 1/eta of a rung is promoted.")
    min_step: float | None = Field(
        default=None, gt=0, description="The first rung (default: the fidelity's max / eta^3, at least its min)."
    )


def rungs(spec: StudySpec, options: AshaOptions) -> list[float]:
    """The rung steps, rising to the fidelity's max (always the last rung); whole steps on a whole-step fidelity
    (1..30 gives 1, 3, 10, 30, not 1.11, 3.33, ...), where a training loop counts epochs."""
    assert spec.fidelity is not None
    top, whole = spec.fidelity.max, spec.fidelity.whole_steps
    first = options.min_step or max(spec.fidelity.min, top / options.eta**3)
    first = min(max(first, spec.fidelity.min), top)
    steps: list[float] = []
    step = first
    while step < top * (1 - 1e-9):
        rung = float(max(round(step), steps[-1] + 1 if steps else spec.fidelity.min)) if whole else step
        if rung >= top:
            break
        steps.append(rung)
        step *= options.eta
    return [*steps, top]


def _progress(trial: TrialView) -> float:
    return max((m.step for m in trial.measurements), default=-math.inf)


def _value_at(trial: TrialView, metric: str, step: float) -> float | None:
    """The metric as last reported at or before `step` (None if never)."""
    seen = [m for m in trial.measurements if m.step <= step + 1e-9 and metric in m.values]
    return max(seen, key=lambda m: m.step).values[metric] if seen else None


AshaOptionsT = TypeVar("AshaOptionsT", bound=AshaOptions)


class RungEngine(Engine[AshaOptionsT]):
    """What asha and asha_bo share: runs start at the first rung, and promotions resume them rung by rung."""

    resumes_paused = True

    def unsupported_reason(self, spec: StudySpec) -> str | None:
        if spec.fidelity is None:
            return f"{self.name} needs a fidelity: trials train step by step and pause at each rung"
        if len(spec.objectives) > 1:
            return f"{self.name} ranks one objective; this study has several"
        return None

    def first_budget(self, spec: StudySpec, options: AshaOptionsT) -> float | None:
        return rungs(spec, options)[0]

    def suggest(self, request: SuggestRequest[AshaOptionsT]) -> Suggestions:
        return Suggestions(sobol_points(request))

    def resumes(self, spec: StudySpec, options: AshaOptionsT, trials: Sequence[TrialView], count: int) -> list[Resume]:
        """Promotions, best first: from the highest rung down, paused trials in the top 1/eta of their rung, ranked
        by their value at the rung."""
        objective = spec.objectives[0]
        sign = 1.0 if objective.goal is Goal.MINIMIZE else -1.0

        def at_rung(trial: TrialView, rung: float) -> float | None:
            value = _value_at(trial, objective.name, rung)
            return None if value is None else sign * value

        return promotions(rungs(spec, options), options.eta, trials, _progress, at_rung, count, "asha:")


class AshaEngine(RungEngine[AshaOptions]):
    name = "asha"
    Options = AshaOptions


def promotions(
    steps: list[float],
    eta: int,
    trials: Sequence[TrialView],
    progress: Callable[[TrialView], float],
    score: Callable[[TrialView, float], float | None],
    count: int,
    label: str,
) -> list[Resume]:
    """Up to `count` promotions, from the highest rung down: a paused trial among the top 1/eta (lowest `score`,
    then lowest number) of the trials that reached its rung goes on to the next rung. A trial without a score at a
    rung does not count there."""
    chosen: list[Resume] = []
    for k in range(len(steps) - 2, -1, -1):
        rung, above = steps[k], steps[k + 1]
        reached = [(s, t) for t in trials if progress(t) >= rung - 1e-9 and (s := score(t, rung)) is not None]
        keep = len(reached) // eta
        for _, trial in sorted(reached, key=lambda pair: (pair[0], pair[1].number))[:keep]:
            if trial.state is TrialState.PAUSED and progress(trial) < above - 1e-9:
                chosen.append(
                    Resume(
                        trial.number,
                        above,
                        f"{label} top {keep} of {len(reached)} at step {rung:g}, promoted to {above:g}",
                    )
                )
                if len(chosen) == count:
                    return chosen
    return chosen
