"""The worker registry: which workers run, on what device, and when each was last heard from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.models import WorkerRow, utcnow


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


async def register_worker(
    conn: AsyncConnection, *, worker_id: str, hostname: str, pid: int, device: str, concurrency: int
) -> None:
    now = utcnow()
    await conn.execute(
        insert(WorkerRow).values(
            id=worker_id,
            hostname=hostname,
            pid=pid,
            device=device,
            concurrency=concurrency,
            state="alive",
            jobs_done=0,
            jobs_failed=0,
            started_at=now,
            heartbeat_at=now,
        )
    )


async def worker_heartbeat(
    conn: AsyncConnection, worker_id: str, *, done: int = 0, failed: int = 0, state: str = "alive"
) -> None:
    await conn.execute(
        update(WorkerRow)
        .where(WorkerRow.id == worker_id)
        .values(
            heartbeat_at=utcnow(),
            state=state,
            jobs_done=WorkerRow.jobs_done + done,
            jobs_failed=WorkerRow.jobs_failed + failed,
        )
    )


async def list_workers(conn: AsyncConnection) -> list[WorkerInfo]:
    query = select(*WorkerRow.__table__.c).order_by(WorkerRow.started_at)
    return [WorkerInfo(**row._mapping) for row in await conn.execute(query)]


async def live_worker_count(conn: AsyncConnection, seen_within: timedelta) -> int:
    query = select(func.count()).where(WorkerRow.state == "alive", WorkerRow.heartbeat_at > utcnow() - seen_within)
    return int((await conn.execute(query)).scalar_one())


async def forget_workers(conn: AsyncConnection, silent_for: timedelta) -> None:
    """Drop workers that stopped long ago, so the registry shows the fleet as it is."""
    await conn.execute(delete(WorkerRow).where(WorkerRow.heartbeat_at < utcnow() - silent_for))
