"""Trial and measurement queries. Every function runs inside the caller's transaction."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, case, exists, func, insert, or_, select, union_all, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.trial import FINISHED_STATES, Measurement, TrialEvent, TrialEventKind, TrialState
from service.errors import NotFound
from service.store.db import dialect_insert
from service.store.jobs import JobState
from service.store.models import MEASUREMENTS, TRIALS, JobRow, MeasurementRow, StudyRow, TrialEventRow, TrialRow, utcnow
from service.store.prepared import Prepared, Statements, constant
from service.store.records import StudyRecord, TrialRecord
from service.store.studies import find_study, study_record

TRIAL_COLUMNS = TrialRow.__table__.c


def finished_count_query(study_id: int) -> Any:
    return select(func.count()).where(
        TrialRow.study_id == study_id, TrialRow.state.in_([s.value for s in FINISHED_STATES])
    )


async def finished_count(conn: AsyncConnection, study_id: int) -> int:
    """The study's data version: how many trials have a final result."""
    return int((await conn.execute(finished_count_query(study_id))).scalar_one())


def trial_record(row: Any, measurements: tuple[Measurement, ...] | None = None) -> TrialRecord:
    return TrialRecord(
        id=row.id,
        study_id=row.study_id,
        number=row.number,
        params=row.params,
        state=TrialState(row.state),
        worker_id=row.worker_id,
        values=row.values,
        reason=row.reason,
        source=row.source,
        budget=row.budget,
        resume_from=row.resume_from,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        updated_at=row.updated_at,
        heartbeat_at=row.heartbeat_at,
        measurements=measurements,
        engine_info=row.engine_info,
        request_id=row.request_id,
        tell_request_id=row.tell_request_id,
        checkpoint=row.checkpoint,
    )


async def insert_trials(
    conn: AsyncConnection,
    *,
    study_id: int,
    first_number: int,
    params: Sequence[dict[str, Any]],
    state: TrialState,
    source: str,
    worker_id: str | None = None,
    budget: float | None = None,
    values: dict[str, float] | None = None,
    engine_info: Sequence[dict[str, Any] | None] | None = None,
    request_id: str | None = None,
) -> list[TrialRecord]:
    """`engine_info`, when given, holds one entry per row of `params` (what the engine said of each)."""
    now = utcnow()
    infos = list(engine_info) if engine_info is not None else [None] * len(params)
    started = now if state is TrialState.ACTIVE else None
    finished = now if state in (TrialState.COMPLETED, TrialState.INFEASIBLE, TrialState.FAILED) else None
    rows = [
        dict(
            study_id=study_id,
            number=first_number + i,
            params=p,
            state=state.value,
            worker_id=worker_id,
            values=values,
            reason=None,
            source=source,
            budget=budget,
            resume_from=None,
            created_at=now,
            started_at=started,
            finished_at=finished,
            updated_at=now,
            engine_info=info,
            request_id=request_id,
        )
        for i, (p, info) in enumerate(zip(params, infos, strict=True))
    ]
    result = await conn.execute(insert(TrialRow).returning(*TRIAL_COLUMNS, sort_by_parameter_order=True), rows)
    return [trial_record(row) for row in result]


_JOBS = JobRow.__table__.c
_TRIAL_INSERT_COLUMNS = (
    "study_id",
    "number",
    "params",
    "state",
    "worker_id",
    "source",
    "budget",
    "created_at",
    "started_at",
    "updated_at",
    "engine_info",
    "request_id",
)


def _typed(name: str, column: str) -> Any:
    return bindparam(name, type_=TRIAL_COLUMNS[column].type)


@functools.cache
def _insert_active(count: int) -> Prepared:
    """INSERT of `count` active trials, unless the request id (if any) already created trials or queued a job still
    computing. Bind names carry the row index (`number_0`, `params_0`, ...)."""
    first_attempt = ~exists().where(
        TRIAL_COLUMNS.study_id == _typed("study", "study_id"),
        TRIAL_COLUMNS.request_id == _typed("request", "request_id"),
    ) & ~exists().where(
        _JOBS.study_id == _typed("study", "study_id"),
        _JOBS.request_id == _typed("request", "request_id"),
        _JOBS.state.in_([constant(JobState.QUEUED.value), constant(JobState.RUNNING.value)]),
    )
    rows = [
        select(
            _typed("study", "study_id"),
            _typed(f"number_{i}", "number"),
            _typed(f"params_{i}", "params"),
            constant(TrialState.ACTIVE.value),
            _typed("worker", "worker_id"),
            _typed("engine", "source"),
            _typed("first_budget", "budget"),
            _typed("now", "created_at"),
            _typed("now", "started_at"),
            _typed("now", "updated_at"),
            _typed(f"info_{i}", "engine_info"),
            _typed("request", "request_id"),
        ).where(first_attempt)
        for i in range(count)
    ]
    chosen = rows[0] if count == 1 else union_all(*rows)
    return Prepared(insert(TRIALS).from_select(_TRIAL_INSERT_COLUMNS, chosen).returning(*TRIAL_COLUMNS))


async def insert_active_trials(
    conn: Statements,
    *,
    study_id: int,
    first_number: int,
    params: Sequence[dict[str, Any]],
    infos: Sequence[dict[str, Any] | None],
    source: str,
    worker_id: str | None,
    budget: float | None,
    request_id: str | None,
) -> list[TrialRecord]:
    """`insert_trials` for the common ask (active trials handed out now), as one prepared statement; nothing (an
    empty list) when an earlier attempt of `request_id` created trials or queued a job. That check needs a snapshot
    taken after the caller locked the study, which a statement of its own, like this one, has."""
    numbered: dict[str, Any] = {f"number_{i}": first_number + i for i in range(len(params))}
    numbered |= {f"params_{i}": p for i, p in enumerate(params)}
    numbered |= {f"info_{i}": info for i, info in enumerate(infos)}
    rows = await conn.rows(
        _insert_active(len(params)),
        study=study_id,
        worker=worker_id,
        engine=source,
        first_budget=budget,
        now=utcnow(),
        request=request_id,
        **numbered,
    )
    return sorted((trial_record(SimpleNamespace(**row)) for row in rows), key=lambda t: t.number)


async def active_trials_of_worker(
    conn: AsyncConnection, study_id: int, worker_id: str, limit: int
) -> list[TrialRecord]:
    query = (
        select(*TRIAL_COLUMNS)
        .where(
            TrialRow.study_id == study_id, TrialRow.worker_id == worker_id, TrialRow.state == TrialState.ACTIVE.value
        )
        .order_by(TrialRow.number)
        .limit(limit)
    )
    return [trial_record(row) for row in await conn.execute(query)]


async def trials_of_request(conn: AsyncConnection, study_id: int, request_id: str) -> list[TrialRecord]:
    """The trials an earlier attempt of this ask handed out (a retry returns them instead of new ones)."""
    query = (
        select(*TRIAL_COLUMNS)
        .where(TrialRow.study_id == study_id, TrialRow.request_id == request_id)
        .order_by(TrialRow.number)
    )
    return [trial_record(row) for row in await conn.execute(query)]


async def claim_waiting_trials(
    conn: AsyncConnection, study_id: int, limit: int, worker_id: str | None, request_id: str | None = None
) -> list[TrialRecord]:
    """Hand out enqueued trials; SKIP LOCKED lets concurrent asks take different ones without waiting.

    The locked rows are picked in a CTE: PostgreSQL may re-run an IN (subquery ... LIMIT n), which
    could then hand out more than `limit` trials; a CTE is evaluated once.
    """
    picked = (
        select(TrialRow.id)
        .where(TrialRow.study_id == study_id, TrialRow.state == TrialState.WAITING.value)
        .order_by(TrialRow.number)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).cte("picked")
    now = utcnow()
    claim = (
        update(TrialRow)
        .where(TrialRow.id == picked.c.id, TrialRow.state == TrialState.WAITING.value)
        .values(
            state=TrialState.ACTIVE.value,
            worker_id=worker_id,
            started_at=now,
            updated_at=now,
            **({"request_id": request_id} if request_id is not None else {}),
        )
        .returning(*TRIAL_COLUMNS)
    )
    return sorted((trial_record(row) for row in await conn.execute(claim)), key=lambda t: t.number)


async def get_trial(conn: AsyncConnection, study_id: int, number: int, *, for_update: bool = False) -> TrialRecord:
    query = select(*TRIAL_COLUMNS).where(TrialRow.study_id == study_id, TrialRow.number == number)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        raise NotFound(f"trial {number} not found")
    return trial_record(row)


async def locate_trial(
    conn: AsyncConnection, owner: str, study_name: str, number: int, *, for_update: bool = False
) -> tuple[StudyRecord, TrialRecord]:
    """A study and one of its trials in one round trip (the tell and report hot path).

    With `for_update` the trial row is locked until the transaction ends, so two tells of one
    trial run one after the other and the second sees what the first did.
    """
    trial_columns = [c.label(f"t_{c.name}") for c in TRIAL_COLUMNS]
    query = (
        select(*StudyRow.__table__.c, *trial_columns)
        .join_from(StudyRow, TrialRow)
        .where(StudyRow.owner == owner, StudyRow.name == study_name, TrialRow.number == number)
    )
    if for_update:
        query = query.with_for_update(of=TrialRow)
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        study = await find_study(conn, owner, study_name)
        raise NotFound(f"study {study_name!r} not found" if study is None else f"trial {number} not found")
    trial = SimpleNamespace(**{c.name: row._mapping[f"t_{c.name}"] for c in TRIAL_COLUMNS})
    return study_record(row), trial_record(trial)


_STUDIES = StudyRow.__table__.c
# The study's id, if the study with that id still has the name we know it by (it was not deleted and re-created).
_KNOWN_STUDY_ID = (
    select(_STUDIES.id)
    .where(
        _STUDIES.id == bindparam("known_id"),
        _STUDIES.owner == bindparam("known_owner"),
        _STUDIES.name == bindparam("known_name"),
    )
    .scalar_subquery()
)


def _known(study: StudyRecord) -> dict[str, Any]:
    """The parameters of _KNOWN_STUDY_ID."""
    return {"known_id": study.id, "known_owner": study.owner, "known_name": study.name}


# Bind names differ from column names, which an UPDATE reserves for its SET clause.
_FINISH_OPEN_TRIAL = Prepared(
    update(TRIALS)
    .where(
        TRIAL_COLUMNS.study_id == _KNOWN_STUDY_ID,
        TRIAL_COLUMNS.number == bindparam("trial_number"),
        TRIAL_COLUMNS.state.in_([constant(TrialState.ACTIVE.value), constant(TrialState.PAUSED.value)]),
    )
    .values(
        state=bindparam("new_state"),
        values=bindparam("new_values"),
        reason=bindparam("new_reason"),
        finished_at=bindparam("now"),
        updated_at=bindparam("now"),
        tell_request_id=bindparam("tell_request"),
    )
    .returning(*TRIAL_COLUMNS)
)


async def finish_open_trial(
    conn: Statements,
    study: StudyRecord,
    number: int,
    *,
    state: TrialState,
    values: dict[str, float | None] | None,
    reason: str | None,
    request_id: str | None = None,
) -> TrialRecord | None:
    """Finish the trial in one statement if it is still open (active or paused) and the study is
    still the one we know; None otherwise, and the caller takes the careful path."""
    rows = await conn.rows(
        _FINISH_OPEN_TRIAL,
        **_known(study),
        trial_number=number,
        new_state=state.value,
        new_values=values,
        new_reason=reason,
        now=utcnow(),
        tell_request=request_id,
    )
    return trial_record(SimpleNamespace(**rows[0])) if rows else None


async def finish_trial(
    conn: AsyncConnection,
    trial_id: int,
    *,
    state: TrialState,
    values: dict[str, float | None] | None,
    reason: str | None,
    request_id: str | None = None,
) -> TrialRecord:
    now = utcnow()
    query = (
        update(TrialRow)
        .where(TrialRow.id == trial_id)
        .values(
            state=state.value, values=values, reason=reason, finished_at=now, updated_at=now, tell_request_id=request_id
        )
        .returning(*TRIAL_COLUMNS)
    )
    return trial_record((await conn.execute(query)).one())


async def resume_paused(
    conn: AsyncConnection,
    study_id: int,
    number: int,
    *,
    budget: float,
    worker_id: str | None,
    request_id: str | None,
    reason: str | None = None,
) -> TrialRecord | None:
    """Hand a paused trial out again to train on to `budget`, and note it in the trial's history; None if it is not
    paused (another ask took it first: the condition on the state makes the claim atomic, so a paused trial never
    goes to two workers) or already paused at `budget` or beyond (a decision made before another resume took it
    there, e.g. from the ready pool: resuming it would hand out a run with nothing to train)."""
    now = utcnow()
    below_budget = or_(TrialRow.resume_from.is_(None), TrialRow.resume_from < budget - 1e-9)
    query = (
        update(TrialRow)
        .where(
            TrialRow.study_id == study_id,
            TrialRow.number == number,
            TrialRow.state == TrialState.PAUSED.value,
            below_budget,
        )
        .values(
            state=TrialState.ACTIVE.value,
            budget=budget,
            worker_id=worker_id,
            heartbeat_at=now,
            updated_at=now,
            **({"request_id": request_id} if request_id is not None else {}),
        )
        .returning(*TRIAL_COLUMNS)
    )
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        return None
    await _add_event(
        conn,
        row.id,
        TrialEvent(TrialEventKind.RESUMED, now, row.resume_from, budget, worker_id, row.checkpoint, reason),
    )
    return trial_record(row)


async def set_checkpoint(conn: AsyncConnection, trial_id: int, checkpoint: str) -> None:
    await conn.execute(update(TrialRow).where(TrialRow.id == trial_id).values(checkpoint=checkpoint))


async def pause_trial(conn: AsyncConnection, trial: TrialRecord, *, resume_from: float, reason: str | None) -> None:
    """Pause an active trial at `resume_from` and note it in its history (with the worker it leaves and its
    checkpoint); `reason` when it was not its budget that paused it."""
    now = utcnow()
    query = (
        update(TrialRow)
        .where(TrialRow.id == trial.id)
        .values(state=TrialState.PAUSED.value, resume_from=resume_from, worker_id=None, updated_at=now)
    )
    await conn.execute(query)
    await _add_event(
        conn,
        trial.id,
        TrialEvent(TrialEventKind.PAUSED, now, resume_from, trial.budget, trial.worker_id, trial.checkpoint, reason),
    )


async def _add_event(conn: AsyncConnection, trial_id: int, event: TrialEvent) -> None:
    await conn.execute(
        insert(TrialEventRow).values(
            trial_id=trial_id,
            kind=event.kind.value,
            step=event.step,
            budget=event.budget,
            worker_id=event.worker_id,
            checkpoint=event.checkpoint,
            reason=event.reason,
            at=event.at,
        )
    )


async def trial_events(conn: AsyncConnection, trial_id: int) -> list[TrialEvent]:
    """The trial's pause and resume history, oldest first."""
    query = (
        select(
            TrialEventRow.kind,
            TrialEventRow.at,
            TrialEventRow.step,
            TrialEventRow.budget,
            TrialEventRow.worker_id,
            TrialEventRow.checkpoint,
            TrialEventRow.reason,
        )
        .where(TrialEventRow.trial_id == trial_id)
        .order_by(TrialEventRow.id)
    )
    return [
        TrialEvent(TrialEventKind(row.kind), row.at, row.step, row.budget, row.worker_id, row.checkpoint, row.reason)
        for row in await conn.execute(query)
    ]


async def record_heartbeat(conn: AsyncConnection, trial_id: int) -> TrialRecord | None:
    """Note that the job evaluating an active trial is alive; None when the trial is no longer active."""
    query = (
        update(TrialRow)
        .where(TrialRow.id == trial_id, TrialRow.state == TrialState.ACTIVE.value)
        .values(heartbeat_at=utcnow())
        .returning(*TRIAL_COLUMNS)
    )
    row = (await conn.execute(query)).one_or_none()
    return None if row is None else trial_record(row)


_BEAT_ACTIVE_TRIAL = Prepared(
    update(TRIALS)
    .where(
        TRIAL_COLUMNS.study_id == _KNOWN_STUDY_ID,
        TRIAL_COLUMNS.number == bindparam("trial_number"),
        TRIAL_COLUMNS.state == constant(TrialState.ACTIVE.value),
    )
    .values(
        heartbeat_at=bindparam("now"),
        checkpoint=func.coalesce(
            bindparam("new_checkpoint", type_=TRIAL_COLUMNS.checkpoint.type), TRIAL_COLUMNS.checkpoint
        ),
    )
    .returning(*TRIAL_COLUMNS)
)


async def beat_active_trial(
    conn: Statements, study: StudyRecord, number: int, checkpoint: str | None
) -> TrialRecord | None:
    """A report's sign of life (and its checkpoint, if any) on an active trial of the study we know, in one
    statement that also locks the trial row until the transaction ends; None when the trial is not active (or the
    study was re-created), and the caller takes the careful path."""
    rows = await conn.rows(
        _BEAT_ACTIVE_TRIAL,
        **_known(study),
        trial_number=number,
        now=utcnow(),
        new_checkpoint=checkpoint,
    )
    return trial_record(SimpleNamespace(**rows[0])) if rows else None


def _measurement_upsert(insert_of: Any) -> Any:
    statement = insert_of(MEASUREMENTS).values(
        trial_id=bindparam("of_trial"),
        step=bindparam("at_step"),
        values=bindparam("measured", type_=MEASUREMENTS.c["values"].type),
        created_at=bindparam("now"),
    )
    return statement.on_conflict_do_update(
        index_elements=[MEASUREMENTS.c.trial_id, MEASUREMENTS.c.step],
        set_={"values": statement.excluded["values"], "created_at": statement.excluded.created_at},
    )


_RECORD_MEASUREMENT = Prepared(_measurement_upsert(pg_insert), sqlite=_measurement_upsert(sqlite_insert))


async def record_measurement(conn: Statements, trial_id: int, step: float, values: dict[str, float]) -> None:
    """`upsert_measurement` as a prepared statement."""
    await conn.rows(_RECORD_MEASUREMENT, of_trial=trial_id, at_step=step, measured=values, now=utcnow())


async def upsert_measurement(conn: AsyncConnection, trial_id: int, step: float, values: dict[str, float]) -> None:
    """Record the values at `step`; reporting the same step again replaces them (a retried report is harmless)."""
    statement = dialect_insert(conn)(MeasurementRow).values(
        trial_id=trial_id, step=step, values=values, created_at=utcnow()
    )
    statement = statement.on_conflict_do_update(
        index_elements=[MeasurementRow.trial_id, MeasurementRow.step],
        set_={"values": statement.excluded["values"], "created_at": statement.excluded.created_at},
    )
    await conn.execute(statement)


async def measurements_of(conn: AsyncConnection, trial_ids: Iterable[int]) -> dict[int, tuple[Measurement, ...]]:
    ids = list(trial_ids)
    by_trial: dict[int, list[Measurement]] = defaultdict(list)
    if ids:
        query = (
            select(MeasurementRow.trial_id, MeasurementRow.step, MeasurementRow.values)
            .where(MeasurementRow.trial_id.in_(ids))
            .order_by(MeasurementRow.trial_id, MeasurementRow.step)
        )
        for trial_id, step, values in await conn.execute(query):
            by_trial[trial_id].append(Measurement(step, values))
    return {i: tuple(by_trial.get(i, ())) for i in ids}


async def list_trials(
    conn: AsyncConnection,
    study_id: int,
    *,
    states: Sequence[TrialState] = (),
    worker_id: str | None = None,
    after_number: int = -1,
    limit: int | None = None,
    with_measurements: bool = False,
) -> list[TrialRecord]:
    query = select(*TRIAL_COLUMNS).where(TrialRow.study_id == study_id, TrialRow.number > after_number)
    if states:
        query = query.where(TrialRow.state.in_([s.value for s in states]))
    if worker_id is not None:
        query = query.where(TrialRow.worker_id == worker_id)
    query = query.order_by(TrialRow.number)
    if limit is not None:
        query = query.limit(limit)
    rows = list(await conn.execute(query))
    if not with_measurements:
        return [trial_record(row) for row in rows]
    measurements = await measurements_of(conn, (row.id for row in rows))
    return [trial_record(row, measurements[row.id]) for row in rows]


async def params_in_state(conn: AsyncConnection, study_id: int, state: TrialState) -> list[dict[str, Any]]:
    """Just the params of a study's trials in one state (what distance checks need)."""
    query = select(TrialRow.params).where(TrialRow.study_id == study_id, TrialRow.state == state.value)
    return list((await conn.execute(query)).scalars())


async def params_numbered_from(conn: AsyncConnection, study_id: int, first: int) -> list[dict[str, Any]]:
    """The params of a study's trials numbered `first` or later, whatever their state."""
    query = select(TrialRow.params).where(TrialRow.study_id == study_id, TrialRow.number >= first)
    return list((await conn.execute(query)).scalars())


def latest_measurement(measurements: Sequence[Measurement]) -> Measurement | None:
    return max(measurements, key=lambda m: m.step, default=None)


def _last_seen() -> Any:
    return func.coalesce(TrialRow.heartbeat_at, TrialRow.started_at, TrialRow.created_at)


async def silent_active_trials(conn: AsyncConnection, silent_since: datetime) -> list[tuple[int, int, datetime]]:
    """(trial id, study id, last sign of life) of active trials with no sign of life since `silent_since`."""
    query = select(TrialRow.id, TrialRow.study_id, _last_seen()).where(
        TrialRow.state == TrialState.ACTIVE.value, _last_seen() < silent_since
    )
    return [(i, s, seen) for i, s, seen in await conn.execute(query)]


async def give_up_if_silent(
    conn: AsyncConnection, trial_id: int, silent_since: datetime, *, reason: str
) -> TrialRecord | None:
    """Fail a trial still active and silent since `silent_since`, or pause it again if it was resumed (its
    checkpoint is still good). None if it spoke up or finished meanwhile."""
    now = utcnow()
    held_by = (await conn.execute(select(TrialRow.worker_id).where(TrialRow.id == trial_id))).scalar_one_or_none()
    resumed = TrialRow.resume_from.is_not(None)
    query = (
        update(TrialRow)
        .where(TrialRow.id == trial_id, TrialRow.state == TrialState.ACTIVE.value, _last_seen() < silent_since)
        .values(
            state=case((resumed, TrialState.PAUSED.value), else_=TrialState.FAILED.value),
            reason=case((resumed, TrialRow.reason), else_=reason),
            finished_at=case((resumed, TrialRow.finished_at), else_=now),
            worker_id=case((resumed, None), else_=TrialRow.worker_id),
            updated_at=now,
        )
        .returning(*TRIAL_COLUMNS)
    )
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        return None
    if row.state == TrialState.PAUSED.value:
        await _add_event(
            conn,
            trial_id,
            TrialEvent(TrialEventKind.PAUSED, now, row.resume_from, row.budget, held_by, row.checkpoint, reason),
        )
    return trial_record(row)
