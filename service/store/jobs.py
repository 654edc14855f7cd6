"""The job queue: suggest and refill computations that workers claim.

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
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from service.store.db import dialect_insert
from service.store.models import QUEUED_REFILL, JobRow, StudyRow, utcnow


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
    return Job(
        id=row.id,
        study_id=row.study_id,
        kind=JobKind(row.kind),
        state=JobState(row.state),
        count=row.count,
        worker_id=row.worker_id,
        attempts=row.attempts,
        lease_owner=row.lease_owner,
        result=row.result,
        error=row.error,
        fallback=row.fallback,
        created_at=row.created_at,
        finished_at=row.finished_at,
        request_id=row.request_id,
    )


_JOB_COLUMNS = JobRow.__table__.c


async def enqueue_suggest(
    conn: AsyncConnection, study_id: int, count: int, worker_id: str | None, request_id: str | None = None
) -> Job:
    query = (
        insert(JobRow)
        .values(
            study_id=study_id,
            kind=JobKind.SUGGEST.value,
            state=JobState.QUEUED.value,
            priority=PRIORITY[JobKind.SUGGEST],
            count=count,
            worker_id=worker_id,
            attempts=0,
            fallback=False,
            created_at=utcnow(),
            request_id=request_id,
        )
        .returning(*_JOB_COLUMNS)
    )
    return _job((await conn.execute(query)).one())


async def unfinished_suggest_of_request(conn: AsyncConnection, study_id: int, request_id: str) -> Job | None:
    """A suggest job an earlier attempt of this ask queued and that is still computing."""
    query = (
        select(*_JOB_COLUMNS)
        .where(
            JobRow.study_id == study_id,
            JobRow.request_id == request_id,
            JobRow.state.in_([JobState.QUEUED.value, JobState.RUNNING.value]),
        )
        .order_by(JobRow.id)
        .limit(1)
    )
    row = (await conn.execute(query)).first()
    return _job(row) if row is not None else None


async def enqueue_refill(conn: AsyncConnection, study_id: int) -> None:
    """Ask for a fresh pool; a refill already queued for the study absorbs this one."""
    statement = dialect_insert(conn)(JobRow).values(
        study_id=study_id,
        kind=JobKind.REFILL.value,
        state=JobState.QUEUED.value,
        priority=PRIORITY[JobKind.REFILL],
        count=0,
        attempts=0,
        fallback=False,
        created_at=utcnow(),
    )
    statement = statement.on_conflict_do_nothing(index_elements=[JobRow.study_id], index_where=text(QUEUED_REFILL))
    await conn.execute(statement)


async def unfinished_refill(conn: AsyncConnection, study_id: int) -> Job | None:
    """The study's refill that will finish first: the one being computed, else the queued one."""
    query = (
        select(*_JOB_COLUMNS)
        .where(
            JobRow.study_id == study_id,
            JobRow.kind == JobKind.REFILL.value,
            JobRow.state.in_([JobState.QUEUED.value, JobState.RUNNING.value]),
        )
        .order_by((JobRow.state == JobState.RUNNING.value).desc(), JobRow.id)
        .limit(1)
    )
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
    study_busy = (
        select(running.id)
        .where(
            running.study_id == JobRow.study_id,
            running.id != JobRow.id,
            running.state == JobState.RUNNING.value,
            running.lease_expires_at >= now,
        )
        .exists()
    )
    claimable = or_(
        and_(JobRow.state == JobState.QUEUED.value, ~study_busy),
        and_(JobRow.state == JobState.RUNNING.value, JobRow.lease_expires_at < now),
    )
    query = (
        select(JobRow.id, JobRow.study_id)
        .where(claimable)
        .order_by(JobRow.priority, JobRow.id)
        .limit(1)
        .with_for_update(skip_locked=True, of=JobRow)
    )
    found = (await conn.execute(query)).one_or_none()
    if found is None:
        return None
    await conn.execute(select(StudyRow.id).where(StudyRow.id == found.study_id).with_for_update())
    claim = (
        update(JobRow)
        .where(JobRow.id == found.id, claimable)
        .values(
            state=JobState.RUNNING.value,
            lease_owner=owner,
            lease_expires_at=now + lease,
            attempts=JobRow.attempts + 1,
            started_at=now,
        )
        .returning(*_JOB_COLUMNS)
    )
    row = (await conn.execute(claim)).one_or_none()
    return _job(row) if row else None


async def renew_leases(conn: AsyncConnection, owner: str, job_ids: Sequence[int], lease: timedelta) -> None:
    if job_ids:
        await conn.execute(
            update(JobRow)
            .where(JobRow.id.in_(list(job_ids)), JobRow.lease_owner == owner, JobRow.state == JobState.RUNNING.value)
            .values(lease_expires_at=utcnow() + lease)
        )


async def finish_job(
    conn: AsyncConnection,
    job: Job,
    owner: str,
    *,
    result: dict[str, Any] | None,
    fallback: bool = False,
    error: str | None = None,
    state: JobState = JobState.DONE,
) -> bool:
    """Mark the job done (or failed) if `owner` still holds it; False means another worker took it over.

    A failed suggest job still carries trials in its result: the Sobol fallback its caller gets.
    """
    query = (
        update(JobRow)
        .where(JobRow.id == job.id, JobRow.lease_owner == owner, JobRow.state == JobState.RUNNING.value)
        .values(
            state=state.value,
            result=result,
            fallback=fallback,
            error=error,
            finished_at=utcnow(),
            lease_expires_at=None,
        )
        .returning(JobRow.id)
    )
    return (await conn.execute(query)).scalar_one_or_none() is not None


async def set_job_result(conn: AsyncConnection, job_id: int, result: dict[str, Any]) -> None:
    await conn.execute(update(JobRow).where(JobRow.id == job_id).values(result=result))


async def release_job(conn: AsyncConnection, job: Job, owner: str, error: str) -> None:
    """Put a job that failed back in the queue for another attempt, if `owner` still runs it (a failure after its
    result was committed must not queue it again)."""
    await conn.execute(
        update(JobRow)
        .where(JobRow.id == job.id, JobRow.lease_owner == owner, JobRow.state == JobState.RUNNING.value)
        .values(state=JobState.QUEUED.value, lease_owner=None, lease_expires_at=None, error=error)
    )


async def delete_finished_jobs(conn: AsyncConnection, older_than: datetime) -> None:
    await conn.execute(
        delete(JobRow).where(
            JobRow.state.in_([JobState.DONE.value, JobState.FAILED.value]), JobRow.finished_at < older_than
        )
    )


async def study_job_counts(conn: AsyncConnection, study_id: int) -> dict[str, int]:
    query = select(JobRow.state, func.count()).where(JobRow.study_id == study_id).group_by(JobRow.state)
    return {state: count for state, count in await conn.execute(query)}
