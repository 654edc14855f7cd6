"""Engine `constrained`: one objective under outcome constraints, by CONFIG or constrained log-NEI
(ALGORITHMS.md §3).

- `config` (default; "Constrained Efficient Global Optimization of Expensive Black-box Functions", Xu et al.,
  2023): one GP per outcome; the next point maximizes the optimistic objective (UCB) among points whose
  constraints are optimistically met (LCB of each violation <= 0). The auxiliary problem is solved over
  2000·d Sobol points, the best one refined by a shrinking local search.
- sqrt(beta) defaults to 1, not the authors' 3: at a budget of 50 (benchmarks/quality_constrained.py, 3 seeds)
  the mean best feasible value fell as sqrt(beta) went from 3 to 1 on ConstrainedGramacy (0.815 to 0.714),
  ConstrainedHartmann (-2.69 to -3.30) and PressureVessel (6344 to 6115); 0.5 was better still on two of the
  three but stalled on Hartmann in one seed of three.
- Infeasibility (D5): the test keeps sqrt(beta) = 3 (`infeasibility_sqrt_beta`), so a declaration still means
  that no point is feasible even at three standard deviations of optimism. When the search finds no
  optimistically feasible point, it suggests the point of least optimistic violation; a round (a fit on new
  data) in which the test finds none is counted, and after `infeasible_rounds` consecutive rounds the study's
  engine status says `likely_infeasible` with the evidence. Any feasible round resets the count.
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
    sqrt_beta: float = Field(default=1.0, gt=0, le=100, description="config: width of the optimistic bounds, in "
                                                                    "posterior standard deviations.")
    infeasibility_sqrt_beta: float = Field(default=3.0, gt=0, le=100,
                                           description="config: width of the bounds in the infeasibility test: "
                                                       "no point may be feasible even this optimistically.")
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
