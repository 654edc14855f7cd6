"""Engine `asha_bo`: asynchronous successive halving whose new configurations come from a GP.

asha's rungs and promotions, unchanged ("A System for Massively Parallel Hyperparameter Tuning", Li et al., 2020):
a new trial trains to the first rung and pauses; an ask first promotes, from the highest rung down, a paused trial
in the top 1/eta of the trials that reached its rung, and it resumes from its checkpoint. Only where asha starts a
scrambled Sobol point does this engine ask a model, as model-based Hyperband does ("BOHB", Falkner et al., 2018):

- `all_rungs` (default): one GP over (configuration, step) with every rung value of every trial: the step, scaled
  as log(step / r_0) / log(max / r_0), is one more input, so the many low-rung values inform the prediction at the
  max that the few full runs alone could not; the new configuration is the best of a Sobol pool at the max step.
- `top_rung` (BOHB's): a GP over the values at the highest rung with at least `min_configs` of them.

The pool is scored by a Thompson sample of the joint posterior (`thompson`, default: draws spread over the region
the model finds promising, so concurrent asks differ) or by log expected improvement over the best predicted final
value (`log_ei`). Configurations started elsewhere and not measured yet are believed at their predicted final
value (Kriging believer), as are the ones chosen before in the same answer. Until `min_configs` configurations have
a rung value (default d + 2), and when every rung of the model ladder fails, new configurations are asha's Sobol
points, so the engine starts exactly as asha does.

This module holds no torch import: API processes validate options and serve the Sobol start; workers import
`asha_bo.model` for the model's suggestions.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from service.domain.spec import Choice, Goal, StudySpec
from service.domain.trial import TrialState, TrialView
from service.engines.asha import AshaOptions, RungEngine, rungs
from service.engines.base import ModelEngineOptions, Suggestions, SuggestRequest
from service.engines.sobol import model_or_sobol


class AshaBOOptions(AshaOptions, ModelEngineOptions):
    """asha's `eta`, `min_step` and `stopping`, the ready pool's options, and the model's."""

    model: Literal["all_rungs", "top_rung"] = Field(
        default="all_rungs",
        description="`all_rungs`: one GP over (configuration, log step) with every trial's value "
        "at every rung it reached, predicting at the max step; `top_rung` (BOHB's): a GP over the values at the "
        "highest rung with at least `min_configs` of them.",
    )
    acquisition: Literal["thompson", "log_ei"] = Field(
        default="thompson",
        description="How the candidate pool is scored: `thompson`, the best point of one joint "
        "posterior draw; `log_ei`, log expected improvement over the best predicted value.",
    )
    min_configs: int | None = Field(
        default=None,
        ge=2,
        le=1000,
        description="Configurations with a rung value "
        "before the first model suggestion (default: the number of parameters + 2); "
        "before that, asha's Sobol points.",
    )
    candidate_pool: int = Field(
        default=512, ge=16, le=8192, description="Sobol points of the space the new configuration is chosen from."
    )
    winsorize: bool = Field(default=True, description="Clip outlying bad values (a diverged run) before modelling.")
    fit_timeout_seconds: float = Field(default=20.0, gt=0, le=600, description="A time bound on one GP fit.")
    max_fit_points: int = Field(
        default=600,
        ge=50,
        le=20000,
        description="Above this many observations, hyperparameters are fitted on a subset.",
    )


@dataclass(frozen=True)
class Observation:
    """One value the model sees: a configuration's objective at a step, as a loss (lower is better)."""

    params: dict[str, Choice]
    step: float
    loss: float


def min_configs(spec: StudySpec, options: AshaBOOptions) -> int:
    return options.min_configs if options.min_configs is not None else len(spec.params) + 2


def rung_observations(spec: StudySpec, options: AshaBOOptions, trials: Sequence[TrialView]) -> list[Observation]:
    """Each trial's value at every rung it reached (the value last reported at or before the rung), and a completed
    trial's told value at the max when it reported none there. Failed and infeasible trials say nothing."""
    assert spec.fidelity is not None
    objective = spec.objectives[0]
    sign = 1.0 if objective.goal is Goal.MINIMIZE else -1.0
    steps = rungs(spec, options)
    found: list[Observation] = []
    for trial in trials:
        if trial.state in (TrialState.FAILED, TrialState.INFEASIBLE):
            continue
        progress = max((m.step for m in trial.measurements), default=-math.inf)
        for step in steps:
            seen = [m for m in trial.measurements if m.step <= step + 1e-9 and objective.name in m.values]
            if progress >= step - 1e-9 and seen:
                found.append(
                    Observation(trial.params, step, sign * max(seen, key=lambda m: m.step).values[objective.name])
                )
        told = (trial.values or {}).get(objective.name)
        if trial.state is TrialState.COMPLETED and told is not None and progress < steps[-1] - 1e-9:
            found.append(Observation(trial.params, steps[-1], sign * told))
    return found


def configurations(observations: Sequence[Observation]) -> int:
    """How many distinct configurations the observations cover."""
    return len({tuple(sorted((k, repr(v)) for k, v in o.params.items())) for o in observations})


def top_rung_observations(
    spec: StudySpec, options: AshaBOOptions, observations: Sequence[Observation]
) -> tuple[float, list[Observation]]:
    """BOHB's choice: the values at the highest rung with at least `min_configs` of them (the first rung when none
    has, so the caller's count decides whether to model at all)."""
    steps = rungs(spec, options)
    for step in reversed(steps):
        at = [o for o in observations if abs(o.step - step) <= 1e-9]
        if len(at) >= min_configs(spec, options):
            return step, at
    return steps[0], [o for o in observations if abs(o.step - steps[0]) <= 1e-9]


class AshaBOEngine(RungEngine[AshaBOOptions]):
    name = "asha_bo"
    Options = AshaBOOptions
    needs_history = True

    def unsupported_reason(self, spec: StudySpec) -> str | None:
        if spec.constraints:
            return "asha_bo does not model outcome constraints"
        return super().unsupported_reason(spec)

    def needs_worker(self, spec: StudySpec, options: AshaBOOptions, finished: int, created: int = 0) -> bool:
        """A worker fits the model once enough configurations could have reported a rung value."""
        return created >= min_configs(spec, options)

    def suggest(self, request: SuggestRequest[AshaBOOptions]) -> Suggestions:
        """asha's Sobol points until `min_configs` configurations have a rung value (with `top_rung`: at one rung),
        then the model's choice."""
        spec, options = request.spec, request.options
        observed = rung_observations(spec, options, request.trials)
        if options.model == "top_rung":
            step, observed = top_rung_observations(spec, options, observed)
        else:
            step = math.nan
        pending = [
            t.params
            for t in request.trials
            if t.state in (TrialState.ACTIVE, TrialState.PAUSED, TrialState.WAITING) and not t.measurements
        ]

        def from_model() -> Suggestions:
            module = importlib.import_module("service.engines.asha_bo.model")
            suggestions: Suggestions = module.suggest(request, options, observed, pending, step)
            return suggestions

        return model_or_sobol(
            request, self.name, configurations(observed), min_configs(spec, options), from_model, center_point=False
        )
