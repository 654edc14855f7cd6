"""Observability of the engine side: the worker fleet and each study's engine status."""

from __future__ import annotations

from dataclasses import dataclass

from service.store import jobs as job_store
from service.store import studies as study_store
from service.store.db import Database
from service.store.jobs import EngineStatus, WorkerInfo
from service.store.models import utcnow

ALIVE_WITHIN_SECONDS = 90.0


@dataclass(frozen=True)
class WorkerView:
    info: WorkerInfo
    alive: bool


@dataclass(frozen=True)
class StudyEngineStatus:
    engine: str
    status: EngineStatus
    pool_size: int
    jobs: dict[str, int]


async def list_workers(db: Database) -> list[WorkerView]:
    async with db.transaction() as conn:
        workers = await job_store.list_workers(conn)
    now = utcnow()
    return [WorkerView(w, w.state == "alive" and (now - w.heartbeat_at).total_seconds() < ALIVE_WITHIN_SECONDS)
            for w in workers]


async def study_engine_status(db: Database, owner: str, name: str) -> StudyEngineStatus:
    async with db.transaction() as conn:
        study = await study_store.get_study(conn, owner, name)
        return StudyEngineStatus(study.engine, await job_store.engine_status(conn, study.id),
                                 await job_store.pool_size(conn, study.id),
                                 await job_store.study_job_counts(conn, study.id))
