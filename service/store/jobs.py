"""Job queue, suggestion pool, engine state and worker registry: the tables workers coordinate through.

Workers never talk to each other or to the API: they claim jobs here with a lease (SKIP LOCKED on
PostgreSQL), renew it while they compute, and complete a job in the same transaction that stores
its result, only if they still hold the lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from service.domain.trial import FINISHED_STATES
from service.store.models import (
    QUEUED_REFILL,
    EngineStateRow,
    JobRow,
    PooledSuggestionRow,
    StudyRow,
    TrialRow,
    WorkerRow,
    utcnow,
)


class JobKind(StrEnum):
    SUGGEST = "suggest"  # a client is waiting: create its trials
    REFILL = "refill"  # precompute the study's ready pool


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


PRIORITY = {JobKind.SUGGEST: 0, JobKind.REFILL: 1}


@dataclass(frozen=True)
class Job:
    id: int
    study_id: int
    kind: JobKind
    state: JobState
    count: int
    worker_id: str | None
    attempts: int
    lease_owner: str | None
    result: dict[str, Any] | None
    error: str | None
    fallback: bool
    created_at: datetime
    finished_at: datetime | None
    request_id: str | None = None


def _job(row: Any) -> Job:
    return Job(id=row.id, study_id=row.study_id, kind=JobKind(row.kind), state=JobState(row.state), count=row.count,
               worker_id=row.worker_id, attempts=row.attempts, lease_owner=row.lease_owner, result=row.result,
               error=row.error, fallback=row.fallback, created_at=row.created_at, finished_at=row.finished_at,
               request_id=row.request_id)


_JOB_COLUMNS = JobRow.__table__.c


def _insert(conn: AsyncConnection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


def _finished_count_query(study_id: int) -> Any:
    return select(func.count()).where(TrialRow.study_id == study_id,
                                      TrialRow.state.in_([s.value for s in FINISHED_STATES]))


async def finished_count(conn: AsyncConnection, study_id: int) -> int:
    """The study's data version: how many trials have a final result."""
    return int((await conn.execute(_finished_count_query(study_id))).scalar_one())


async def enqueue_suggest(conn: AsyncConnection, study_id: int, count: int, worker_id: str | None,
                          request_id: str | None = None) -> Job:
    query = insert(JobRow).values(
        study_id=study_id, kind=JobKind.SUGGEST.value, state=JobState.QUEUED.value,
        priority=PRIORITY[JobKind.SUGGEST], count=count, worker_id=worker_id, attempts=0, fallback=False,
        created_at=utcnow(), request_id=request_id).returning(*_JOB_COLUMNS)
    return _job((await conn.execute(query)).one())


async def unfinished_suggest_of_request(conn: AsyncConnection, study_id: int, request_id: str) -> Job | None:
    """A suggest job an earlier attempt of this ask queued and that is still computing."""
    query = (select(*_JOB_COLUMNS).where(JobRow.study_id == study_id, JobRow.request_id == request_id,
                                         JobRow.state.in_([JobState.QUEUED.value, JobState.RUNNING.value]))
             .order_by(JobRow.id).limit(1))
    row = (await conn.execute(query)).first()
    return _job(row) if row is not None else None


async def enqueue_refill(conn: AsyncConnection, study_id: int) -> None:
    """Ask for a fresh pool; a refill already queued for the study absorbs this one."""
    statement = _insert(conn)(JobRow).values(
        study_id=study_id, kind=JobKind.REFILL.value, state=JobState.QUEUED.value, priority=PRIORITY[JobKind.REFILL],
        count=0, attempts=0, fallback=False, created_at=utcnow())
    statement = statement.on_conflict_do_nothing(
        index_elements=[JobRow.study_id],
        index_where=text(QUEUED_REFILL))
    await conn.execute(statement)


async def unfinished_refill(conn: AsyncConnection, study_id: int) -> Job | None:
    """The study's refill that will finish first: the one being computed, else the queued one."""
    query = (select(*_JOB_COLUMNS)
             .where(JobRow.study_id == study_id, JobRow.kind == JobKind.REFILL.value,
                    JobRow.state.in_([JobState.QUEUED.value, JobState.RUNNING.value]))
             .order_by((JobRow.state == JobState.RUNNING.value).desc(), JobRow.id).limit(1))
    row = (await conn.execute(query)).one_or_none()
    return _job(row) if row else None


async def get_job(conn: AsyncConnection, job_id: int) -> Job | None:
    row = (await conn.execute(select(*_JOB_COLUMNS).where(JobRow.id == job_id))).one_or_none()
    return _job(row) if row else None


async def claim_job(conn: AsyncConnection, owner: str, lease: timedelta) -> Job | None:
    """Take the most urgent queued job, or one whose worker stopped renewing its lease.

    A study's computations run one at a time: a queued job waits while another job of its study is running
    under a live lease. Two jobs computed side by side would both see the same trials, and with them the same
    model and the same seed they would hand two clients the same point; in turn each sees the trials the
    previous one created as pending. The study row is locked before the claim is written, so two workers
    claiming jobs of one study at once are serialized and the second sees the first's claim.
    """
    now = utcnow()
    running = aliased(JobRow)
    study_busy = (select(running.id)
                  .where(running.study_id == JobRow.study_id, running.id != JobRow.id,
                         running.state == JobState.RUNNING.value, running.lease_expires_at >= now)
                  .exists())
    claimable = or_(and_(JobRow.state == JobState.QUEUED.value, ~study_busy),
                    and_(JobRow.state == JobState.RUNNING.value, JobRow.lease_expires_at < now))
    query = (select(JobRow.id, JobRow.study_id).where(claimable).order_by(JobRow.priority, JobRow.id).limit(1)
             .with_for_update(skip_locked=True, of=JobRow))
    found = (await conn.execute(query)).one_or_none()
    if found is None:
        return None
    await conn.execute(select(StudyRow.id).where(StudyRow.id == found.study_id).with_for_update())
    claim = (update(JobRow).where(JobRow.id == found.id, claimable)
             .values(state=JobState.RUNNING.value, lease_owner=owner, lease_expires_at=now + lease,
                     attempts=JobRow.attempts + 1, started_at=now)
             .returning(*_JOB_COLUMNS))
    row = (await conn.execute(claim)).one_or_none()
    return _job(row) if row else None


async def renew_leases(conn: AsyncConnection, owner: str, job_ids: Sequence[int], lease: timedelta) -> None:
    if job_ids:
        await conn.execute(update(JobRow)
                           .where(JobRow.id.in_(list(job_ids)), JobRow.lease_owner == owner,
                                  JobRow.state == JobState.RUNNING.value)
                           .values(lease_expires_at=utcnow() + lease))


async def finish_job(conn: AsyncConnection, job: Job, owner: str, *, result: dict[str, Any] | None,
                     fallback: bool = False, error: str | None = None, state: JobState = JobState.DONE) -> bool:
    """Mark the job done (or failed) if `owner` still holds it; False means another worker took it over.

    A failed suggest job still carries trials in its result: the Sobol fallback its caller gets.
    """
    query = (update(JobRow)
             .where(JobRow.id == job.id, JobRow.lease_owner == owner, JobRow.state == JobState.RUNNING.value)
             .values(state=state.value, result=result, fallback=fallback, error=error,
                     finished_at=utcnow(), lease_expires_at=None)
             .returning(JobRow.id))
    return (await conn.execute(query)).scalar_one_or_none() is not None


async def set_job_result(conn: AsyncConnection, job_id: int, result: dict[str, Any]) -> None:
    await conn.execute(update(JobRow).where(JobRow.id == job_id).values(result=result))


async def release_job(conn: AsyncConnection, job: Job, owner: str, error: str) -> None:
    """Put a job that failed back in the queue for another attempt, if `owner` still runs it (a failure after its
    result was committed must not queue it again)."""
    await conn.execute(update(JobRow)
                       .where(JobRow.id == job.id, JobRow.lease_owner == owner, JobRow.state == JobState.RUNNING.value)
                       .values(state=JobState.QUEUED.value, lease_owner=None, lease_expires_at=None, error=error))


async def delete_finished_jobs(conn: AsyncConnection, older_than: datetime) -> None:
    await conn.execute(delete(JobRow).where(JobRow.state.in_([JobState.DONE.value, JobState.FAILED.value]),
                                            JobRow.finished_at < older_than))


async def study_job_counts(conn: AsyncConnection, study_id: int) -> dict[str, int]:
    query = select(JobRow.state, func.count()).where(JobRow.study_id == study_id).group_by(JobRow.state)
    return {state: count for state, count in await conn.execute(query)}


# The ready pool ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class PooledSuggestion:
    id: int
    params: dict[str, Any]
    data_version: int
    engine_info: dict[str, Any] | None
    as_of_number: int | None
    budget: float | None = None  # a planned run's budget (engines that plan runs)
    resume_number: int | None = None  # a planned resume: the paused trial it hands out again


async def fresh_pooled_suggestions(conn: AsyncConnection, study_id: int, freshness: int,
                                   limit: int) -> list[PooledSuggestion]:
    """Pooled suggestions at most `freshness` results behind the study's data, locked for this
    transaction; concurrent asks skip each other's."""
    min_version = _finished_count_query(study_id).scalar_subquery() - freshness
    query = (select(PooledSuggestionRow.id, PooledSuggestionRow.params, PooledSuggestionRow.data_version,
                    PooledSuggestionRow.engine_info, PooledSuggestionRow.as_of_number, PooledSuggestionRow.budget,
                    PooledSuggestionRow.resume_number)
             .where(PooledSuggestionRow.study_id == study_id, PooledSuggestionRow.data_version >= min_version)
             .order_by(PooledSuggestionRow.id).limit(limit).with_for_update(skip_locked=True))
    return [PooledSuggestion(*row) for row in await conn.execute(query)]


async def delete_pooled(conn: AsyncConnection, ids: Sequence[int]) -> None:
    if ids:
        await conn.execute(delete(PooledSuggestionRow).where(PooledSuggestionRow.id.in_(list(ids))))


async def replace_pool(conn: AsyncConnection, study_id: int, params: Sequence[dict[str, Any]], data_version: int,
                       job_id: int, engine_info: Sequence[dict[str, Any] | None] | None = None,
                       as_of_number: int | None = None) -> None:
    """Replace the study's pool; `as_of_number` is the study's next trial number when the engine read its data."""
    await conn.execute(delete(PooledSuggestionRow).where(PooledSuggestionRow.study_id == study_id))
    if params:
        now = utcnow()
        infos = list(engine_info) if engine_info is not None else [None] * len(params)
        await conn.execute(insert(PooledSuggestionRow), [
            dict(study_id=study_id, params=p, data_version=data_version, job_id=job_id, created_at=now,
                 engine_info=info, as_of_number=as_of_number)
            for p, info in zip(params, infos, strict=True)])


@dataclass(frozen=True)
class PlannedRun:
    """A run an engine that plans runs wants handed out: new (`params`) or a resume of paused trial `resume_number`."""

    params: dict[str, Any]
    budget: float
    resume_number: int | None
    engine_info: dict[str, Any] | None


async def replace_plan_pool(conn: AsyncConnection, study_id: int, planned: Sequence[PlannedRun], data_version: int,
                            job_id: int | None, as_of_number: int) -> None:
    """Replace the study's pool with a plan's runs, kept in the engine's order (best first)."""
    await conn.execute(delete(PooledSuggestionRow).where(PooledSuggestionRow.study_id == study_id))
    if planned:
        now = utcnow()
        await conn.execute(insert(PooledSuggestionRow), [
            dict(study_id=study_id, params=run.params, data_version=data_version, job_id=job_id, created_at=now,
                 engine_info=run.engine_info, as_of_number=as_of_number, budget=run.budget,
                 resume_number=run.resume_number)
            for run in planned])


async def pool_size(conn: AsyncConnection, study_id: int) -> int:
    query = select(func.count()).where(PooledSuggestionRow.study_id == study_id)
    return int((await conn.execute(query)).scalar_one())


# Engine state -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class EngineStatus:
    memory: dict[str, Any]  # the engine's warm-start state: its own business
    status: dict[str, Any]  # what the engine tells users (e.g. `likely_infeasible`)
    computations: int
    fallbacks: int
    last_seconds: float | None
    last_rung: str | None
    last_error: str | None
    updated_at: datetime | None


async def engine_status(conn: AsyncConnection, study_id: int) -> EngineStatus:
    query = select(*EngineStateRow.__table__.c).where(EngineStateRow.study_id == study_id)
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        return EngineStatus({}, {}, 0, 0, None, None, None, None)
    return EngineStatus(row.memory, row.status or {}, row.computations, row.fallbacks, row.last_seconds, row.last_rung,
                        row.last_error, row.updated_at)


async def record_computation(conn: AsyncConnection, study_id: int, *, memory: dict[str, Any] | None,
                             seconds: float | None, rung: str | None, error: str | None, fallback: bool,
                             status: dict[str, Any] | None = None) -> None:
    """Count one engine computation (or fallback), keep the engine's memory for the next one and its status for
    users; None keeps what was stored."""
    now = utcnow()
    values: dict[str, Any] = dict(last_seconds=seconds, last_rung=rung, last_error=error, updated_at=now)
    statement = _insert(conn)(EngineStateRow).values(
        study_id=study_id, memory=memory or {}, status=status, computations=0 if fallback else 1,
        fallbacks=int(fallback), **values)
    update_values: dict[str, Any] = {
        **values,
        "computations": EngineStateRow.computations + (0 if fallback else 1),
        "fallbacks": EngineStateRow.fallbacks + int(fallback),
    }
    if memory is not None:
        update_values["memory"] = memory
    if status is not None:
        update_values["status"] = status
    await conn.execute(statement.on_conflict_do_update(index_elements=[EngineStateRow.study_id], set_=update_values))


# Workers ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WorkerInfo:
    id: str
    hostname: str
    pid: int
    device: str
    concurrency: int
    state: str
    jobs_done: int
    jobs_failed: int
    started_at: datetime
    heartbeat_at: datetime


async def register_worker(conn: AsyncConnection, *, worker_id: str, hostname: str, pid: int, device: str,
                          concurrency: int) -> None:
    now = utcnow()
    await conn.execute(insert(WorkerRow).values(
        id=worker_id, hostname=hostname, pid=pid, device=device, concurrency=concurrency, state="alive",
        jobs_done=0, jobs_failed=0, started_at=now, heartbeat_at=now))


async def worker_heartbeat(conn: AsyncConnection, worker_id: str, *, done: int = 0, failed: int = 0,
                           state: str = "alive") -> None:
    await conn.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(
        heartbeat_at=utcnow(), state=state, jobs_done=WorkerRow.jobs_done + done,
        jobs_failed=WorkerRow.jobs_failed + failed))


async def list_workers(conn: AsyncConnection) -> list[WorkerInfo]:
    query = select(*WorkerRow.__table__.c).order_by(WorkerRow.started_at)
    return [WorkerInfo(**row._mapping) for row in await conn.execute(query)]


async def live_worker_count(conn: AsyncConnection, seen_within: timedelta) -> int:
    query = select(func.count()).where(WorkerRow.state == "alive", WorkerRow.heartbeat_at > utcnow() - seen_within)
    return int((await conn.execute(query)).scalar_one())


async def forget_workers(conn: AsyncConnection, silent_for: timedelta) -> None:
    """Drop workers that stopped long ago, so the registry shows the fleet as it is."""
    await conn.execute(delete(WorkerRow).where(WorkerRow.heartbeat_at < utcnow() - silent_for))
