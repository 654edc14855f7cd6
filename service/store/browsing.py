"""Reads for people browsing studies: server-side sorted, filtered, counted pages and per-study summaries.

Sorting and range filters on a parameter or metric read the JSON column in SQL (JSONB on PostgreSQL,
JSON1 on SQLite), so a 50,000-trial study pages without loading its trials into the process.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, cast, exists, func, or_, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.spec import Goal, ParamType, StudySpec
from service.domain.trial import TrialState
from service.store.models import MeasurementRow, StudyRow, TrialRow
from service.store.records import StudyRecord, TrialRecord
from service.store.studies import study_record
from service.store.trials import TRIAL_COLUMNS, measurements_of, trial_record


@dataclass(frozen=True)
class Range:
    """`field` is `param:NAME` or `value:METRIC`; either bound may be None."""

    field: str
    low: float | None
    high: float | None


@dataclass(frozen=True)
class TrialQuery:
    states: Sequence[TrialState] = ()
    ranges: Sequence[Range] = ()
    sort: str = "number"  # number, state, finished_at, param:NAME or value:METRIC
    descending: bool = False
    offset: int = 0
    limit: int = 50


def _field(spec: StudySpec, name: str) -> Any:
    """The SQL expression for a sortable or filterable field; None for one the study does not have."""
    kind, _, key = name.partition(":")
    if kind == "param" and key in {p.name for p in spec.params}:
        element = TrialRow.params[key]
        return element.as_string() if spec.param(key).type is ParamType.CATEGORICAL else element.as_float()
    if kind == "value" and key in spec.metric_names:
        return TrialRow.values[key].as_float()
    columns: dict[str, Any] = {"number": TrialRow.number, "state": TrialRow.state, "finished_at": TrialRow.finished_at}
    return columns.get(name)


def _is_categorical(spec: StudySpec, name: str) -> bool:
    return any(p.name == name and p.type is ParamType.CATEGORICAL for p in spec.params)


def _conditions(study: StudyRecord, query: TrialQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [TrialRow.study_id == study.id]
    if query.states:
        conditions.append(TrialRow.state.in_([s.value for s in query.states]))
    for bound in query.ranges:
        element = _field(study.spec, bound.field)
        categorical = bound.field.startswith("param:") and _is_categorical(study.spec, bound.field[6:])
        if element is None or categorical:  # a range of a categorical parameter means nothing
            continue
        if bound.low is not None:
            conditions.append(element >= bound.low)
        if bound.high is not None:
            conditions.append(element <= bound.high)
    return conditions


async def trial_page(conn: AsyncConnection, study: StudyRecord, query: TrialQuery) -> tuple[list[TrialRecord], int]:
    """One page of trials in the requested order, and how many trials match the filters in all."""
    conditions = _conditions(study, query)
    order = _field(study.spec, query.sort)
    if order is None:  # an unknown sort field (a stale link) falls back to the trial number
        order = TrialRow.number
    ordering = (order.desc() if query.descending else order.asc()).nulls_last()
    rows = await conn.execute(
        select(*TRIAL_COLUMNS)
        .where(and_(*conditions))
        .order_by(ordering, TrialRow.number)
        .offset(query.offset)
        .limit(query.limit)
    )
    total = (await conn.execute(select(func.count()).select_from(TrialRow).where(and_(*conditions)))).scalar_one()
    return [trial_record(row) for row in rows], int(total)


async def curves(conn: AsyncConnection, study_id: int, limit: int) -> list[TrialRecord]:
    """The latest `limit` trials that reported measurements, with their measurements."""
    # EXISTS per trial of this study (index on measurements.trial_id), not a scan of every measurement.
    reporting = select(MeasurementRow.id).where(MeasurementRow.trial_id == TrialRow.id).exists()
    query = (
        select(*TRIAL_COLUMNS)
        .where(TrialRow.study_id == study_id, reporting)
        .order_by(TrialRow.number.desc())
        .limit(limit)
    )
    rows = list(await conn.execute(query))
    measured = await measurements_of(conn, (row.id for row in rows))
    return [trial_record(row, measured[row.id]) for row in reversed(rows)]


@dataclass(frozen=True)
class StudySummary:
    study: StudyRecord
    counts: dict[str, int]
    best: float | None  # single objective: best feasible value; None otherwise or before any result
    last_activity: datetime | None


async def study_summaries(
    conn: AsyncConnection, owner: str, *, search: str, offset: int, limit: int
) -> tuple[list[StudySummary], int]:
    """A page of studies (newest first) whose name contains `search`, with counts, best value and last activity."""
    where = [StudyRow.owner == owner]
    if search:
        where.append(StudyRow.name.contains(search, autoescape=True))
    rows = list(
        await conn.execute(
            select(*StudyRow.__table__.c).where(*where).order_by(StudyRow.id.desc()).offset(offset).limit(limit)
        )
    )
    total = (await conn.execute(select(func.count()).select_from(StudyRow).where(*where))).scalar_one()
    return await summarize(conn, [study_record(row) for row in rows]), int(total)


async def summarize(conn: AsyncConnection, studies: list[StudyRecord]) -> list[StudySummary]:
    """Each study with its trial counts, best value and last activity: one grouped count, and one query per
    single-objective study with results."""
    ids = [s.id for s in studies]
    counts: dict[int, dict[str, int]] = {i: {} for i in ids}
    activity: dict[int, datetime | None] = {}
    if ids:
        grouped = (
            select(TrialRow.study_id, TrialRow.state, func.count(), func.max(TrialRow.updated_at))
            .where(TrialRow.study_id.in_(ids))
            .group_by(TrialRow.study_id, TrialRow.state)
        )
        for study_id, state, count, latest in await conn.execute(grouped):
            counts[study_id][state] = int(count)
            previous = activity.get(study_id)
            activity[study_id] = latest if previous is None or (latest and latest > previous) else previous
    summaries = []
    for study in studies:
        best = await best_value(conn, study) if counts[study.id].get(TrialState.COMPLETED.value) else None
        summaries.append(StudySummary(study, counts[study.id], best, activity.get(study.id) or study.updated_at))
    return summaries


async def best_value(conn: AsyncConnection, study: StudyRecord) -> float | None:
    """The best feasible completed value of a single-objective study, computed in SQL; None for several."""
    spec = study.spec
    if len(spec.objectives) != 1:
        return None
    objective = spec.objectives[0]
    value = TrialRow.values[objective.name].as_float()
    conditions = [TrialRow.study_id == study.id, TrialRow.state == TrialState.COMPLETED.value]
    for constraint in spec.constraints:
        metric = TrialRow.values[constraint.name].as_float()
        conditions.append(metric <= constraint.bound if constraint.op == "<=" else metric >= constraint.bound)
    aggregate = func.max(value) if objective.goal is Goal.MAXIMIZE else func.min(value)
    best = (await conn.execute(select(aggregate).where(*conditions))).scalar_one_or_none()
    return None if best is None else float(best)


async def completed_version(conn: AsyncConnection, study_id: int) -> tuple[int, int]:
    """(count, largest number) of a study's completed trials: completed trials never change, so while these
    two stay the same, so does the set of completed trials."""
    where = (TrialRow.study_id == study_id, TrialRow.state == TrialState.COMPLETED.value)
    count, largest = (await conn.execute(select(func.count(), func.max(TrialRow.number)).where(*where))).one()
    return int(count), -1 if largest is None else int(largest)


async def stopped_values(conn: AsyncConnection, study_id: int) -> list[tuple[int, dict[str, float | None]]]:
    """(number, values) of every stopped trial that has values (those it had reached when stopped)."""
    query = (
        select(TrialRow.number, TrialRow.values)
        .where(TrialRow.study_id == study_id, TrialRow.state == TrialState.STOPPED.value, TrialRow.values.is_not(None))
        .order_by(TrialRow.number)
    )
    return [(number, dict(values or {})) for number, values in await conn.execute(query)]


@dataclass(frozen=True)
class TimelineRow:
    number: int
    state: str
    worker_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


async def timeline(conn: AsyncConnection, study_id: int, limit: int) -> tuple[list[TimelineRow], int]:
    """The latest `limit` trials by number that were ever handed out (not waiting), and how many there are."""
    where = (TrialRow.study_id == study_id, TrialRow.state != TrialState.WAITING.value)
    rows = await conn.execute(
        select(
            TrialRow.number,
            TrialRow.state,
            TrialRow.worker_id,
            TrialRow.created_at,
            TrialRow.started_at,
            TrialRow.finished_at,
        )
        .where(*where)
        .order_by(TrialRow.number.desc())
        .limit(limit)
    )
    found = [TimelineRow(*row) for row in rows]
    total = (await conn.execute(select(func.count()).select_from(TrialRow).where(*where))).scalar_one()
    return found[::-1], int(total)


async def trials_by_number(conn: AsyncConnection, study_id: int, numbers: Sequence[int]) -> list[TrialRecord]:
    """The study's trials with these numbers (those that exist), with their measurements, in the order asked."""
    rows = list(
        await conn.execute(
            select(*TRIAL_COLUMNS).where(TrialRow.study_id == study_id, TrialRow.number.in_(list(numbers)))
        )
    )
    measured = await measurements_of(conn, (row.id for row in rows))
    found = {row.number: trial_record(row, measured[row.id]) for row in rows}
    return [found[n] for n in numbers if n in found]


async def pareto_optimal(conn: AsyncConnection, study: StudyRecord, trial: TrialRecord) -> bool:
    """Whether a completed, feasible trial of a study with several objectives is on the Pareto front: no
    feasible completed trial is at least as good on every objective and better on one (one SQL query)."""
    spec = study.spec
    values = trial.values or {}
    if len(spec.objectives) < 2 or trial.state is not TrialState.COMPLETED:
        return False
    mine = [values.get(o.name) for o in spec.objectives]
    if any(v is None for v in mine):
        return False
    for constraint in spec.constraints:
        value = values.get(constraint.name)
        if value is None or (value > constraint.bound if constraint.op == "<=" else value < constraint.bound):
            return False
    conditions = [TrialRow.study_id == study.id, TrialRow.state == TrialState.COMPLETED.value]
    for constraint in spec.constraints:
        metric = TrialRow.values[constraint.name].as_float()
        conditions.append(metric <= constraint.bound if constraint.op == "<=" else metric >= constraint.bound)
    strictly = []
    for objective, value in zip(spec.objectives, mine, strict=True):
        column = TrialRow.values[objective.name].as_float()
        if objective.goal is Goal.MAXIMIZE:
            conditions.append(column >= value)
            strictly.append(column > value)
        else:
            conditions.append(column <= value)
            strictly.append(column < value)
    dominated = (await conn.execute(select(exists().where(*conditions, or_(*strictly))))).scalar_one()
    return not dominated


@dataclass(frozen=True)
class Columns:
    """A study's completed trials column by column, in number order: what the analysis views read.

    Numeric parameters and metrics are floats (None where a trial lacks them); categorical parameters
    are their JSON values."""

    numbers: list[int]
    params: dict[str, list[Any]]
    values: dict[str, list[float | None]]
    finished: list[float | None]  # when each finished, in seconds since the epoch


async def completed_columns(conn: AsyncConnection, study: StudyRecord) -> Columns:
    """The study's completed trials as columns. On PostgreSQL one row of arrays, aggregated in the database
    (numbers arrive as binary float arrays, no JSON to parse but the categoricals'): several times less work
    than whole JSON documents, which a 50,000-trial study notices."""
    spec = study.spec
    numeric = [p.name for p in spec.params if p.type is not ParamType.CATEGORICAL]
    categorical = [p.name for p in spec.params if p.type is ParamType.CATEGORICAL]
    metrics = spec.metric_names
    where = (TrialRow.study_id == study.id, TrialRow.state == TrialState.COMPLETED.value)
    number_exprs = [TrialRow.params[n].as_float() for n in numeric] + [TrialRow.values[m].as_float() for m in metrics]
    finished = (
        func.extract("epoch", TrialRow.finished_at) if conn.dialect.name == "postgresql" else TrialRow.finished_at
    )
    if conn.dialect.name == "postgresql":

        def ordered(expression: Any) -> Any:
            return aggregate_order_by(expression, TrialRow.number)

        aggregates = (
            [func.array_agg(ordered(TrialRow.number)), func.array_agg(ordered(finished))]
            + [func.array_agg(ordered(e)) for e in number_exprs]
            + [cast(func.json_agg(ordered(TrialRow.params[n])), Text) for n in categorical]
        )
        row = (await conn.execute(select(*aggregates).where(*where))).one()
        numbers = list(row[0] or [])
        ends = [None if f is None else float(f) for f in row[1] or []]
        floats = [list(column or []) for column in row[2 : 2 + len(number_exprs)]]
        choices = [json.loads(column) if column else [] for column in row[2 + len(number_exprs) :]]
    else:
        # SQLite's JSON_EXTRACT turns true into 1: categoricals come from the whole parameters document.
        whole = [TrialRow.params] if categorical else []
        rows = list(
            await conn.execute(
                select(TrialRow.number, finished, *number_exprs, *whole).where(*where).order_by(TrialRow.number)
            )
        )
        columns = (
            [list(column) for column in zip(*rows, strict=True)]
            if rows
            else [[] for _ in range(2 + len(number_exprs) + len(whole))]
        )
        numbers, floats = columns[0], columns[2 : 2 + len(number_exprs)]
        ends = [None if f is None else f.timestamp() for f in columns[1]]
        documents = columns[-1] if categorical else []
        choices = [[(d or {}).get(n) for d in documents] for n in categorical]
    params = dict(zip(numeric, floats[: len(numeric)], strict=True)) | dict(zip(categorical, choices, strict=True))
    return Columns(numbers, params, dict(zip(metrics, floats[len(numeric) :], strict=True)), ends)
