"""Trials as engines and ranking see them: plain values, no database rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from service.domain.spec import Choice, Param, ParamType, StudySpec, number_problem
from service.errors import FieldProblem, InvalidArgument


class TrialState(StrEnum):
    WAITING = "waiting"  # enqueued by a user, handed out by the next ask
    ACTIVE = "active"  # handed to a worker, being evaluated
    PAUSED = "paused"  # training suspended by the engine, may be resumed
    COMPLETED = "completed"
    FAILED = "failed"
    INFEASIBLE = "infeasible"
    STOPPED = "stopped"  # ended early (by the engine or the user) with its last values


FINISHED_STATES = frozenset({TrialState.COMPLETED, TrialState.FAILED, TrialState.INFEASIBLE, TrialState.STOPPED})
TELLABLE_STATES = frozenset({TrialState.ACTIVE, TrialState.PAUSED, TrialState.WAITING})


@dataclass(frozen=True)
class Measurement:
    step: float
    values: dict[str, float]


@dataclass(frozen=True)
class TrialView:
    number: int
    params: dict[str, Any]
    state: TrialState
    values: dict[str, float] | None = None
    measurements: tuple[Measurement, ...] = field(default_factory=tuple)


class TrialEventKind(StrEnum):
    PAUSED = "paused"
    RESUMED = "resumed"


@dataclass(frozen=True)
class TrialEvent:
    """One entry of a trial's pause and resume history.

    paused: at `step`, with `checkpoint`, leaving `worker_id` (`reason` set when it was not its budget that paused
    it, e.g. a resumed run that went silent). resumed: from `step` to `budget`, by `worker_id`, for the engine's
    `reason`, handing out `checkpoint`.
    """

    kind: TrialEventKind
    at: datetime
    step: float | None
    budget: float | None = None
    worker_id: str | None = None
    checkpoint: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Timings:
    running_seconds: float | None  # None: it paused before its history was kept, so the split is unknown
    paused_seconds: float | None


def timings(
    started_at: datetime | None,
    finished_at: datetime | None,
    resume_from: float | None,
    events: Sequence[TrialEvent],
    now: datetime,
) -> Timings | None:
    """How long a trial trained and how long it sat paused: training runs from its start to its first pause, from
    each resume to the next pause, and from the last resume to its end (or now). None before it started.

    Intervals are clamped at zero: the events of one trial are stamped by different hosts (a resume by the engine
    worker that planned it), whose clocks may disagree by a little.
    """
    if started_at is None:
        return None
    if resume_from is not None and not events:
        return Timings(None, None)
    running = paused = 0.0
    running_since: datetime | None = started_at
    paused_since: datetime | None = None
    for event in events:
        if event.kind is TrialEventKind.PAUSED and running_since is not None:
            running += max(0.0, (event.at - running_since).total_seconds())
            running_since, paused_since = None, event.at
        elif event.kind is TrialEventKind.RESUMED and paused_since is not None:
            paused += max(0.0, (event.at - paused_since).total_seconds())
            running_since, paused_since = max(event.at, paused_since), None
    end = finished_at or now
    if running_since is not None:
        running += max(0.0, (end - running_since).total_seconds())
    if paused_since is not None:
        paused += max(0.0, (end - paused_since).total_seconds())
    return Timings(running, paused)


def check_values(values: dict[str, float], *, field_prefix: str = "values") -> None:
    """Reported numbers must be finite: NaN or inf would poison every model downstream."""
    bad = [
        FieldProblem(f"{field_prefix}.{k}", f"must be a finite number, got {v}")
        for k, v in values.items()
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)
    ]
    if bad:
        raise InvalidArgument(bad)


def check_complete_values(spec: StudySpec, values: dict[str, float]) -> None:
    """A completed trial carries every objective and every constrained metric, all finite (costs positive)."""
    missing = [m for m in spec.metric_names if m not in values]
    if missing:
        raise InvalidArgument(
            [
                FieldProblem(
                    f"values.{m}", "missing: a completed trial must report every objective and constrained metric"
                )
                for m in missing
            ]
        )
    check_values(values)
    costs = [
        FieldProblem(f"values.{o.name}", f"a cost must be > 0, got {values[o.name]}")
        for o in spec.objectives
        if o.cost and values[o.name] <= 0
    ]
    if costs:
        raise InvalidArgument(costs)


def _param_problem(param: Param, value: Any) -> str | None:
    if param.type is ParamType.CATEGORICAL:
        assert param.choices is not None
        if not any(type(value) is type(c) and value == c for c in param.choices):
            return f"{value!r} is not one of {param.choices}"
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number, got {value!r}"
    if problem := number_problem(value):
        return problem
    if param.type is ParamType.INT and value != int(value):
        return f"must be a whole number, got {value}"
    assert param.low is not None and param.high is not None
    if not param.low <= value <= param.high:
        return f"{value} is outside [{param.low}, {param.high}]"
    return None


def normalize_params(spec: StudySpec, params: dict[str, Any]) -> dict[str, Choice]:
    """Check user-given params against the space and return them with ints as ints."""
    problems = [
        FieldProblem(f"params.{name}", "not a parameter of this study")
        for name in params
        if name not in {p.name for p in spec.params}
    ]
    normalized: dict[str, Choice] = {}
    for param in spec.params:
        if param.name not in params:
            problems.append(FieldProblem(f"params.{param.name}", "missing"))
            continue
        value = params[param.name]
        reason = _param_problem(param, value)
        if reason:
            problems.append(FieldProblem(f"params.{param.name}", reason))
        else:
            normalized[param.name] = int(value) if param.type is ParamType.INT else value
    if problems:
        raise InvalidArgument(problems)
    return normalized
