"""Engine `gp`: a GP surrogate with noisy log expected improvement.

"A Tutorial on Bayesian Optimization" (Frazier, 2018), noisy EI: NEI(x) = E[(f(x) - max_i f(x_i))+]
averaged over the joint posterior at the observed points, in its log-space form qLogNEI ("Unexpected
Improvements to Expected Improvement", Ament et al., 2023). Trials still running enter as X_pending,
so concurrent workers get jointly diverse suggestions (ALGORITHMS.md §1, §0.3).

- Initial design: scrambled Sobol, d + 1 points (min 5, max 10) before the first model. ALGORITHMS.md
  suggests 2·d (5..20); on Hartmann6 and Ackley-10 at a budget of 50 the smaller design cut the
  mean final regret from 0.18 to 0.09 and from 6.0 to 4.1 (benchmarks/quality.py, 5 seeds).
- Failed and infeasible trials (D2): dropped until there are `failure_model_after` of them; then a
  second GP models success (1) vs failure (0) and qLogNEI is weighted by P(success > 0.5).
- The model-failure ladder (modeling.fit_with_ladder); when every rung fails, Sobol, flagged.

This module holds no torch import: API processes validate options and serve the initial design
without loading the model stack; workers import `gp_model` (and the other engines' torch halves, through
ModelEngine) on the first model-based suggestion.
"""

from __future__ import annotations

import importlib
from typing import ClassVar

from pydantic import BaseModel, Field

from service.domain.spec import Choice, StudySpec
from service.domain.trial import TrialState
from service.engines.base import Engine, ModelEngineOptions, SuggestRequest
from service.engines.sobol import model_or_sobol


class GPOptions(ModelEngineOptions):
    initial_design: int | None = Field(default=None, ge=1, le=1000,
                                       description="Sobol points before the first model (default d + 1, 5..10).")
    num_restarts: int = Field(default=10, ge=1, le=100)
    raw_samples: int = Field(default=1024, ge=16, le=16384)
    acq_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    fit_timeout_seconds: float = Field(default=20.0, gt=0, le=600)
    max_fit_points: int = Field(default=600, ge=50, le=20000,
                                description="Above this many points, hyperparameters are fitted on a subset.")
    failure_model_after: int = Field(default=3, ge=1, description="Failures before P(success) is modeled.")


def initial_design_size(spec: StudySpec, options: GPOptions) -> int:
    if options.initial_design is not None:
        return options.initial_design
    return min(max(len(spec.params) + 1, 5), 10)


class ModelEngine(Engine):
    """An engine that models the study's results: a Sobol initial design answered inline, then suggestions
    from its torch half (`service.engines.<model_module>.suggest`), computed by a worker, over the completed
    trials that reported every metric of the spec."""

    Options: ClassVar[type[BaseModel]] = GPOptions
    needs_history = True
    model_module: ClassVar[str]

    def needs_worker(self, spec: StudySpec, options: BaseModel, finished: int, created: int = 0) -> bool:
        assert isinstance(options, GPOptions)
        return finished >= initial_design_size(spec, options)

    def suggest(self, request: SuggestRequest) -> list[dict[str, Choice]]:
        options = request.options
        assert isinstance(options, GPOptions)
        metrics = request.spec.metric_names
        completed = [t for t in request.trials
                     if t.state is TrialState.COMPLETED and t.values and all(m in t.values for m in metrics)]

        def from_model() -> list[dict[str, Choice]]:
            module = importlib.import_module(f"service.engines.{self.model_module}")
            suggestions: list[dict[str, Choice]] = module.suggest(request, options, completed)
            return suggestions

        return model_or_sobol(request, self.name, len(completed), initial_design_size(request.spec, options),
                              from_model)


class GPEngine(ModelEngine):
    name = "gp"
    model_module = "gp_model"

    def unsupported_reason(self, spec: StudySpec) -> str | None:
        if len(spec.objectives) > 1:
            return "gp optimizes one objective; use engine 'multiobjective' for several"
        if spec.constraints:
            return "gp does not model outcome constraints; use engine 'constrained'"
        return None
