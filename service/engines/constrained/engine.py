"""Engine `constrained`: one objective under outcome constraints, by constrained log-NEI or CONFIG
(Xu et al., ICML 2023; labels D2, D5, D6, D17: docs/decisions.md).

- `cei` (default): qLogNEI weighted by the probability of feasibility (Frazier's constrained EI, noise-aware), as
  Ax's default strategy does; one multi-output GP over the objective and the constraint metrics, each metric on a
  bilog scale around its bound. It scored above CONFIG on benchmarks/quality.py's constrained family (README,
  "Engine defaults the benchmarks chose").
- Feasibility first (D17): under `cei`, until a completed trial meets every constraint the acquisition is the
  probability of feasibility alone. With no feasible incumbent the weighted improvement still trades feasibility
  for objective, and on the spring, welded beam and Hartmann problems it ended 8 runs of 30 without a feasible
  point where feasibility first ended 4 (README, "Engine defaults the benchmarks chose").
- `config` ("Constrained Efficient Global Optimization of Expensive Black-box Functions", Xu et al., 2023): the
  next point maximizes the optimistic objective (UCB) among points whose constraints are optimistically met (LCB
  of each violation <= 0). The auxiliary problem is solved over 2000·d Sobol points, the best one refined by a
  shrinking local search. sqrt(beta) defaults to 1, not the authors' 3: 1 found better feasible values at a
  budget of 50 (D5; README, "Engine defaults the benchmarks chose").
- Infeasibility (D5), whatever the method: a test with sqrt(beta) = 3 (`infeasibility_sqrt_beta`) looks for an
  optimistically feasible point, so a declaration still means that no point is feasible even at three standard
  deviations of optimism; a round (a fit on new data) in which it finds none is counted, and after
  `infeasible_rounds` consecutive rounds the study's engine status says `likely_infeasible` with the evidence.
  Any feasible round resets the count. Under `config`, a search that finds no optimistically feasible point
  suggests the point of least optimistic violation.
- Concurrency (D6): `cei` takes the running trials as pending points; `config` conditions the models on them by
  Kriging believer, so their optimistic bonus vanishes there and concurrent asks spread out.
- Failed and infeasible-told trials follow D2: dropped until `failure_model_after`, then P(success) is one more
  (optimistic, for config) constraint.

No torch import here; workers import `constrained.model` for model-based suggestions.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from service.domain.spec import StudySpec
from service.engines.gp.engine import GPOptions, ModelEngine

Method = Literal["config", "cei"]


class ConstrainedOptions(GPOptions):
    method: Method = Field(
        default="cei", description="cei (qLogNEI weighted by feasibility) or config (optimistic constrained UCB)."
    )
    feasibility_first: bool = Field(
        default=True,
        description="cei: until a completed trial meets every constraint, maximize the probability of feasibility "
        "alone (qLogProbabilityOfFeasibility) instead of the feasibility-weighted improvement (D17).",
    )
    sqrt_beta: float = Field(
        default=1.0,
        gt=0,
        le=100,
        description="config: width of the optimistic bounds, in posterior standard deviations.",
    )
    infeasibility_sqrt_beta: float = Field(
        default=3.0,
        gt=0,
        le=100,
        description="config: width of the bounds in the infeasibility test: "
        "no point may be feasible even this optimistically.",
    )
    infeasible_rounds: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="config: consecutive rounds with no optimistically feasible point "
        "before the study is declared likely infeasible.",
    )
    pool_points: int = Field(
        default=2000,
        ge=10,
        le=100_000,
        description="config: Sobol points per dimension for the auxiliary problem (capped at 20,000 in all).",
    )


class ConstrainedEngine(ModelEngine[ConstrainedOptions]):
    name = "constrained"
    model_module = "service.engines.constrained.model"
    Options = ConstrainedOptions

    def unsupported_reason(self, spec: StudySpec) -> str | None:
        if len(spec.objectives) != 1:
            return "constrained optimizes one objective; use engine 'multiobjective' for several"
        if not spec.constraints:
            return "constrained needs outcome constraints; use engine 'gp' for a study without them"
        return None
