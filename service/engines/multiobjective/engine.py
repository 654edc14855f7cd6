"""Engine `multiobjective`: Pareto-front search with qLogNEHVI or ParEGO (labels D2, D11, D12: docs/decisions.md).

- `nehvi` (default up to 4 objectives): log noisy expected hypervolume improvement, the expected
  growth of the dominated hypervolume integrated over the posterior of the observed front too, so
  noisy results are not taken at face value; pending trials enter the same integral (X_pending).
- `parego` (default from 5 objectives, where hypervolume box decompositions explode): each suggestion
  draws fresh weights on the simplex and maximizes qLogNEI of the augmented Chebyshev scalarization.
- Reference point (D12): each objective's `threshold`, else the observed front's nadir minus a tenth
  of its range, recomputed every round.
- Outcome constraints: one GP per constrained metric, and the acquisition weighs the probability of
  feasibility. Failed and infeasible trials follow D2 like engine `gp`.
- Cost objectives (`cost: true`, e.g. train_seconds) are modeled as log(cost): the efficiency preset of
  "Bayesian Optimization for Selecting Efficient Machine Learning Models" as a Pareto front (D11).

No torch import here: API processes validate options and serve the initial design without the model
stack; workers import `multiobjective.model` for model-based suggestions.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from service.domain.spec import StudySpec
from service.engines.gp.engine import GPOptions, ModelEngine

NEHVI_MAX_OBJECTIVES = 4
Method = Literal["nehvi", "parego"]


class MultiObjectiveOptions(GPOptions):
    method: Method | None = Field(
        default=None, description="nehvi (default up to 4 objectives) or parego (default from 5)."
    )
    raw_samples: int = Field(default=512, ge=16, le=16384)
    power_transform: Literal[False] = Field(
        default=False,
        description="Not offered here: the hypervolume's reference point lives on the objectives' own scale.",
    )


def method_of(spec: StudySpec, options: MultiObjectiveOptions) -> Method:
    if options.method is not None:
        return options.method
    return "nehvi" if len(spec.objectives) <= NEHVI_MAX_OBJECTIVES else "parego"


class MultiObjectiveEngine(ModelEngine[MultiObjectiveOptions]):
    name = "multiobjective"
    model_module = "service.engines.multiobjective.model"
    Options = MultiObjectiveOptions

    def unsupported_reason(self, spec: StudySpec) -> str | None:
        if len(spec.objectives) < 2:
            return "multiobjective needs two or more objectives; use engine 'gp' for one"
        return None
