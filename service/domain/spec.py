"""The study spec: search space, objectives, constraints, fidelity and engine choice.

Pydantic checks the shape of each piece; `spec_problems` finds what only the whole spec can tell
(duplicate names, clashes between objectives and constraints) and reports every problem at once,
each with the path of the field a user has to change.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from service.errors import FieldProblem

NAME_PATTERN = r"^[A-Za-z0-9_.:/\-]+$"
STUDY_NAME_PATTERN = r"^[A-Za-z0-9_.\-]+$"  # study names appear in URL paths
Choice = str | int | float | bool
# Numbers in a spec stay this far from float64's limits, so that what engines compute from them (a range
# high - low, a point low + u (high - low)) is finite too: bounds of +-1e308 made every ask fail.
MAX_MAGNITUDE = 1e300
WHOLE_FLOAT_LIMIT = 2**53  # an int parameter's bounds: every whole number up to here is a float64


def number_problem(value: float) -> str | None:
    """Why a number cannot be in a spec (or a trial's params); None if it can. Ints of any length are fine to ask."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if abs(value) > MAX_MAGNITUDE:
        return f"must be within +-{MAX_MAGNITUDE:g}"
    return None


def _require_spec_number(value: float | None) -> float | None:
    if value is not None and not isinstance(value, bool) and (problem := number_problem(value)):
        raise ValueError(problem)
    return value


Name = Annotated[str, Field(min_length=1, max_length=128, pattern=NAME_PATTERN)]
Finite = AfterValidator(_require_spec_number)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamType(StrEnum):
    FLOAT = "float"
    INT = "int"
    CATEGORICAL = "categorical"


class Goal(StrEnum):
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


class Param(_Strict):
    """One dimension of the search space."""

    name: Name
    type: ParamType
    low: Annotated[int | float | None, Finite] = Field(default=None, description="Lower bound, inclusive.")
    high: Annotated[int | float | None, Finite] = Field(default=None, description="Upper bound, inclusive.")
    log: bool = Field(default=False, description="Search on a log scale (float/int, needs low > 0).")
    choices: list[Annotated[str, Field(max_length=1024)] | int | float | bool] | None = Field(
        default=None, max_length=10_000, description="The values of a categorical parameter (at most 10,000)."
    )


class Objective(_Strict):
    """A metric to optimize.

    `threshold` is the worst value still worth having: with several objectives the thresholds form
    the hypervolume reference point (objectives without one get an inferred reference). `cost` marks
    a resource metric (seconds, dollars, FLOPs): it must be minimized and positive, and the models
    see it on a log scale, where training costs spread evenly.
    """

    name: Name
    goal: Goal
    threshold: Annotated[float | None, Finite] = Field(
        default=None, description="Worst acceptable value; the hypervolume reference point for this objective."
    )
    cost: bool = Field(
        default=False,
        description="A positive resource metric (e.g. train_seconds), minimized and modeled on a log scale.",
    )


class Constraint(_Strict):
    """An outcome constraint on a reported metric: the trial is feasible when `metric op bound` holds."""

    name: Name
    op: Literal["<=", ">="]
    bound: Annotated[float, Finite]


class Fidelity(_Strict):
    """The training-progress axis (step or epoch) along which intermediate values are reported."""

    name: Name
    min: float = Field(ge=0)
    max: Annotated[float, Finite]

    @property
    def whole_steps(self) -> bool:
        """Whether the axis counts whole steps (epochs): both ends are integers, so budgets should be too."""
        return float(self.min).is_integer() and float(self.max).is_integer()


class StudySpec(_Strict):
    """Everything that defines a study; immutable once the study exists."""

    params: list[Param] = Field(min_length=1, max_length=1000)
    objectives: list[Objective] = Field(min_length=1, max_length=16)
    constraints: list[Constraint] = Field(default_factory=list, max_length=64)
    fidelity: Fidelity | None = None
    engine: str = Field(default="auto", description="auto, random, sobol, or another installed engine.")
    engine_options: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    stale_after: float = Field(
        default=1800.0,
        ge=1,
        le=30 * 86400,
        description="Seconds an active trial may go without a report or heartbeat before it is failed as stale "
        "(a resumed trial goes back to paused instead).",
    )
    retry_failed: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Re-queue the params of a failed trial (told failed, or stale) up to this many times.",
    )

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    @property
    def metric_names(self) -> list[str]:
        """Metrics a completed trial must report: objectives, then constrained metrics."""
        names = [o.name for o in self.objectives]
        names += [c.name for c in self.constraints if c.name not in names]
        return names


def _param_problems(index: int, param: Param) -> list[FieldProblem]:
    at = f"params[{index}]"
    problems: list[FieldProblem] = []
    if param.type is ParamType.CATEGORICAL:
        for attr in ("low", "high"):
            if getattr(param, attr) is not None:
                problems.append(FieldProblem(f"{at}.{attr}", "not allowed for a categorical parameter"))
        if param.log:
            problems.append(FieldProblem(f"{at}.log", "not allowed for a categorical parameter"))
        if not param.choices:
            problems.append(FieldProblem(f"{at}.choices", "a categorical parameter needs at least one choice"))
        elif len({(type(c).__name__, c) for c in param.choices}) != len(param.choices):
            problems.append(FieldProblem(f"{at}.choices", "choices must be unique"))
        for i, choice in enumerate(param.choices or ()):
            if isinstance(choice, int | float) and not isinstance(choice, bool) and (problem := number_problem(choice)):
                problems.append(FieldProblem(f"{at}.choices[{i}]", problem))
        return problems

    if param.choices is not None:
        problems.append(FieldProblem(f"{at}.choices", f"only categorical parameters have choices, not {param.type}"))
    for attr in ("low", "high"):
        value = getattr(param, attr)
        if value is None:
            problems.append(FieldProblem(f"{at}.{attr}", f"required for a {param.type} parameter"))
        elif param.type is ParamType.INT and value != int(value):
            problems.append(FieldProblem(f"{at}.{attr}", f"must be a whole number for an int parameter, got {value}"))
        elif param.type is ParamType.INT and abs(value) > WHOLE_FLOAT_LIMIT:
            problems.append(FieldProblem(f"{at}.{attr}", f"must be within +-2**53 for an int parameter, got {value}"))
    if param.low is not None and param.high is not None:
        if param.low >= param.high:
            problems.append(FieldProblem(f"{at}.low", f"must be less than high ({param.low} >= {param.high})"))
        if param.log and param.low <= 0:
            problems.append(FieldProblem(f"{at}.low", f"must be > 0 on a log scale, got {param.low}"))
    return problems


def spec_problems(spec: StudySpec) -> list[FieldProblem]:
    """Every semantic problem of the spec (engine choice and options are the engines' to check)."""
    problems: list[FieldProblem] = []
    for i, param in enumerate(spec.params):
        problems += _param_problems(i, param)

    param_names = [p.name for p in spec.params]
    for i, name in enumerate(param_names):
        if name in param_names[:i]:
            problems.append(FieldProblem(f"params[{i}].name", f"duplicate parameter name {name!r}"))
    objective_names = [o.name for o in spec.objectives]
    for i, name in enumerate(objective_names):
        if name in objective_names[:i]:
            problems.append(FieldProblem(f"objectives[{i}].name", f"duplicate objective name {name!r}"))

    for i, objective in enumerate(spec.objectives):
        if objective.cost and objective.goal is not Goal.MINIMIZE:
            problems.append(FieldProblem(f"objectives[{i}].goal", "a cost objective is minimized"))
        if objective.cost and objective.threshold is not None and objective.threshold <= 0:
            problems.append(
                FieldProblem(
                    f"objectives[{i}].threshold",
                    f"a cost is positive: the threshold must be > 0, got {objective.threshold}",
                )
            )

    seen_constraints: set[tuple[str, str]] = set()
    for i, constraint in enumerate(spec.constraints):
        if constraint.name in objective_names:
            problems.append(
                FieldProblem(
                    f"constraints[{i}].name",
                    f"{constraint.name!r} is an objective; a constraint must be on another metric",
                )
            )
        if (constraint.name, constraint.op) in seen_constraints:
            problems.append(
                FieldProblem(f"constraints[{i}]", f"duplicate constraint {constraint.name} {constraint.op}")
            )
        seen_constraints.add((constraint.name, constraint.op))

    if spec.fidelity is not None:
        if spec.fidelity.max <= spec.fidelity.min:
            problems.append(FieldProblem("fidelity.max", f"must be greater than min ({spec.fidelity.min})"))
        if spec.fidelity.name in spec.metric_names:
            problems.append(FieldProblem("fidelity.name", f"{spec.fidelity.name!r} is already a metric name"))
    return problems
