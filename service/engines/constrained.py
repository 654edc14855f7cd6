"""Engine `constrained`: one objective under outcome constraints, by CONFIG or constrained log-NEI
(ALGORITHMS.md §3).

- `config` (default; "Constrained Efficient Global Optimization of Expensive Black-box Functions", Xu et al.,
  2023): one GP per outcome; the next point maximizes the optimistic objective (UCB, sqrt(beta) = 3 as in the
  authors' code) among points whose constraints are optimistically met (LCB of each violation <= 0). The
  auxiliary problem is solved over 2000·d Sobol points, the best one refined by a shrinking local search.
- Infeasibility (D5): when no point is optimistically feasible, the engine suggests the point of least
  optimistic violation and counts the round; after `infeasible_rounds` consecutive rounds (each on new data)
  the study's engine status says `likely_infeasible` with the evidence. Any feasible round resets the count.
- Concurrency (D6): models are conditioned on pending trials by Kriging believer, so their optimistic bonus
  vanishes there and concurrent asks spread out.
- `cei`: qLogNEI weighted by the probability of feasibility (Frazier's constrained EI, noise-aware).
- Failed and infeasible-told trials follow D2: dropped until `failure_model_after`, then P(success) is one more
  (optimistic, for config) constraint.

No torch import here; workers import `constrained_model` for model-based suggestions.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from service.domain.spec import Choice, StudySpec
from service.domain.trial import TrialState
from service.engines.base import Engine, SuggestRequest
from service.engines.gp import GPOptions, initial_design_size
from service.engines.sobol import model_or_sobol

Method = Literal["config", "cei"]


class ConstrainedOptions(GPOptions):
    method: Method = Field(default="config", description="config (optimistic constrained UCB) or cei "
                                                         "(qLogNEI weighted by feasibility).")
    sqrt_beta: float = Field(default=3.0, gt=0, le=100, description="config: width of the optimistic bounds, in "
                                                                    "posterior standard deviations.")
    infeasible_rounds: int = Field(default=3, ge=1, le=1000,
                                   description="config: consecutive rounds with no optimistically feasible point "
                                               "before the study is declared likely infeasible.")
    pool_points: int = Field(default=2000, ge=10, le=100_000,
                             description="config: Sobol points per dimension for the auxiliary problem (capped "
                                         "at 20,000 in all).")


class ConstrainedEngine(Engine):
    name = "constrained"
    Options = ConstrainedOptions
    needs_history = True

    def unsupported_reason(self, spec: StudySpec) -> str | None:
        if len(spec.objectives) != 1:
            return "constrained optimizes one objective; use engine 'multiobjective' for several"
        if not spec.constraints:
            return "constrained needs outcome constraints; use engine 'gp' for a study without them"
        return None

    def needs_worker(self, spec: StudySpec, options: BaseModel, finished: int) -> bool:
        assert isinstance(options, ConstrainedOptions)
        return finished >= initial_design_size(spec, options)

    def suggest(self, request: SuggestRequest) -> list[dict[str, Choice]]:
        options = request.options
        assert isinstance(options, ConstrainedOptions)
        metrics = request.spec.metric_names
        completed = [t for t in request.trials
                     if t.state is TrialState.COMPLETED and t.values and all(m in t.values for m in metrics)]

        def from_model() -> list[dict[str, Choice]]:
            from service.engines import constrained_model

            return constrained_model.suggest(request, options, completed)

        return model_or_sobol(request, self.name, len(completed), initial_design_size(request.spec, options),
                              from_model)
