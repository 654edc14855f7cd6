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

from pydantic import Field

from service.domain.spec import StudySpec
from service.engines.gp import GPOptions, ModelEngine

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


class ConstrainedEngine(ModelEngine):
    name = "constrained"
    model_module = "constrained_model"
    Options = ConstrainedOptions

    def unsupported_reason(self, spec: StudySpec) -> str | None:
        if len(spec.objectives) != 1:
            return "constrained optimizes one objective; use engine 'multiobjective' for several"
        if not spec.constraints:
            return "constrained needs outcome constraints; use engine 'gp' for a study without them"
        return None
