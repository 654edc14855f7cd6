"""Engine `gp`: a GP surrogate with noisy log expected improvement.

"A Tutorial on Bayesian Optimization" (Frazier, 2018), noisy EI: NEI(x) = E[(f(x) - max_i f(x_i))+]
averaged over the joint posterior at the observed points, in its log-space form qLogNEI ("Unexpected
Improvements to Expected Improvement", Ament et al., 2023). Trials still running enter as X_pending,
so concurrent workers get jointly diverse suggestions.

- Initial design: the centre of the space, then scrambled Sobol points, 5 in all, before the first model (Ax's
  default strategy does the same). Both the centre and 5 points rather than d + 1 scored higher early on
  benchmarks/quality.py's synthetic functions (README, "Engine defaults the benchmarks chose").
- Outcomes are winsorized before modelling (outcome_transforms): a diverged run no longer flattens the model.
- Observations: completed trials and trials stopped early with values (at the values they were stopped at).
- Failed and infeasible trials (D2): dropped until there are `failure_model_after` of them; then a
  second GP models success (1) vs failure (0) and qLogNEI is weighted by P(success > 0.5).
- The model-failure ladder (modeling.fit_with_ladder); when every rung fails, Sobol, flagged.

This module holds no torch import: API processes validate options and serve the initial design
without loading the model stack; workers import `gp.model` (and the other engines' torch halves, through
ModelEngine) on the first model-based suggestion.
"""

from __future__ import annotations

import importlib
from typing import ClassVar, Literal, TypeVar

from pydantic import Field, ValidationInfo, field_validator

from service.domain.spec import StudySpec
from service.domain.trial import TrialState
from service.engines.base import Engine, ModelEngineOptions, StoppingOptions, Suggestions, SuggestRequest
from service.engines.encoding import DISCRETE_INT_LIMIT
from service.engines.sobol import model_or_sobol


class GPOptions(ModelEngineOptions):
    initial_design: int = Field(
        default=5, ge=1, le=1000, description="Trials before the first model: the centre of the space and Sobol points."
    )
    center_point: bool = Field(
        default=True,
        description="The first trial is the centre of the space; the rest of the initial design are Sobol points.",
    )
    categorical_model: Literal["onehot", "mixed"] = Field(
        default="onehot",
        description="How the GP sees categorical parameters: `onehot`, one-hot columns under the "
        "same stationary kernel as the other inputs (the optimizer still searches the choices exactly); `mixed`, "
        "BoTorch's MixedSingleTaskGP (a sum and a product of a continuous and a categorical kernel).",
    )
    discrete_int_limit: int = Field(
        default=DISCRETE_INT_LIMIT,
        ge=0,
        le=100_000,
        description="Integer parameters with at most "
        "this many values are searched exactly, value by value; wider ones are "
        "optimized as continuous and rounded.",
    )
    winsorize: bool = Field(
        default=True,
        description="Clip outlying bad outcomes before modelling (Tukey's fence "
        "on the bad side; constraints only on the infeasible side beyond the bound).",
    )
    power_transform: bool = Field(
        default=False,
        description="Model the objective after a Yeo-Johnson power "
        "transform fitted to make it look Gaussian (after winsorizing, if that is on).",
    )
    input_warping: bool = Field(
        default=False,
        description="Learn a Kumaraswamy warping of each numeric input axis along with the kernel's hyperparameters.",
    )
    discrete_search: Literal["auto", "alternating"] = Field(
        default="auto",
        description="How the acquisition is searched over categorical and discrete integer parameters: `auto`, by "
        "their number of value combinations (a continuous search per combination up to 10, every point of a fully "
        "discrete space up to 10,000, an alternating search above); `alternating`, always the alternating search of "
        "continuous steps and neighbouring values (faster with a few combinations).",
    )
    num_restarts: int = Field(default=10, ge=1, le=100)
    raw_samples: int = Field(default=1024, ge=16, le=16384)
    acq_timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=600,
        description="A time bound on optimizing the acquisition. Unset, each multistart "
        "run stops at convergence or after 200 L-BFGS iterations, and the runs are optimized as one batch, which "
        "BoTorch can only do without a timeout (twice as fast at d = 8, n = 40).",
    )
    fit_timeout_seconds: float = Field(default=20.0, gt=0, le=600)
    warm_start_fit: bool = Field(
        default=True,
        description="Each fit of the model's hyperparameters starts from the last fit's (faster); off, from "
        "BoTorch's initial values, as a fresh model would (D15).",
    )
    fit_from_both: bool = Field(
        default=False,
        description="With warm_start_fit, fit once from the last fit's hyperparameters and once from BoTorch's "
        "initial values, and keep the fit with the higher marginal likelihood (two fits per suggestion).",
    )
    fit_tolerance: float = Field(
        default=1e-6,
        ge=1e-12,
        le=1e-2,
        description="A hyperparameter fit stops once an L-BFGS iteration improves the marginal likelihood by less than "
        "this, relative (SciPy's default is about 2e-9; 1e-6 fits warm-started models several times faster).",
    )
    max_fit_points: int = Field(
        default=600, ge=50, le=20000, description="Above this many points, hyperparameters are fitted on a subset."
    )
    failure_model_after: int = Field(default=3, ge=1, description="Failures before P(success) is modeled.")

    @field_validator("fit_from_both")
    @classmethod
    def _needs_a_warm_start(cls, value: bool, info: ValidationInfo) -> bool:
        if value and not info.data.get("warm_start_fit", True):
            raise ValueError("needs warm_start_fit: without a warm start there is only one fit to make")
        return value


OBSERVED_STATES = (TrialState.COMPLETED, TrialState.STOPPED)


GPOptionsT = TypeVar("GPOptionsT", bound=GPOptions)


class ModelEngine(Engine[GPOptionsT]):
    """An engine that models the study's results: a Sobol initial design answered inline, then suggestions from
    its torch half (the `suggest` of `model_module`, the `model` module of its package), computed by a worker, over
    the observed trials that reported every metric of the spec: completed ones, and stopped ones with the values
    they were stopped at. A run stopped early is evidence too: its value at the stop is what made the rule give up on
    it, and a model that never sees it proposes the same region again (one 20-trial study spent 11 trials there)."""

    Options: ClassVar[type[StoppingOptions]] = GPOptions
    needs_history = True
    model_module: ClassVar[str]  # the torch half, imported on the first model-based suggestion

    def needs_worker(self, spec: StudySpec, options: GPOptionsT, finished: int, created: int = 0) -> bool:
        return finished >= options.initial_design

    def suggest(self, request: SuggestRequest[GPOptionsT]) -> Suggestions:
        options = request.options
        metrics = request.spec.metric_names
        completed = [
            t for t in request.trials if t.state in OBSERVED_STATES and t.values and all(m in t.values for m in metrics)
        ]

        def from_model() -> Suggestions:
            module = importlib.import_module(self.model_module)
            suggestions: Suggestions = module.suggest(request, options, completed)
            return suggestions

        return model_or_sobol(
            request, self.name, len(completed), options.initial_design, from_model, options.center_point
        )


class GPEngine(ModelEngine[GPOptions]):
    name = "gp"
    model_module = "service.engines.gp.model"

    def unsupported_reason(self, spec: StudySpec) -> str | None:
        if len(spec.objectives) > 1:
            return "gp optimizes one objective; use engine 'multiobjective' for several"
        if spec.constraints:
            return "gp does not model outcome constraints; use engine 'constrained'"
        return None
