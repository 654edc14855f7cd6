"""The worker fleet: which engine workers are alive, and each study's engine status (fits, ready pool, jobs).

A study whose engine needs a worker gets Sobol points while none is alive; its status says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from service.engines import resolve_engine
from service.store import engine_state as engine_state_store
from service.store import jobs as job_store
from service.store import pool as pool_store
from service.store import studies as study_store
from service.store import trials as trial_store
from service.store import workers as worker_store
from service.store.db import Database
from service.store.engine_state import EngineStatus
from service.store.models import utcnow
from service.store.workers import WorkerInfo

LIVE_WORKER_WINDOW = timedelta(seconds=90)  # a worker whose last heartbeat is older is taken for dead
NO_WORKER = "no live engine worker: served a Sobol suggestion instead (start one with `asktell worker`)"
SOBOL_FALLBACK = f"sobol-fallback: {NO_WORKER}"


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
    fallback: str | None  # why asks get Sobol points instead of the engine's right now, if they do


async def list_workers(db: Database) -> list[WorkerView]:
    async with db.transaction() as conn:
        workers = await worker_store.list_workers(conn)
    now = utcnow()
    return [WorkerView(w, w.state == "alive" and now - w.heartbeat_at < LIVE_WORKER_WINDOW) for w in workers]


async def study_engine_status(db: Database, owner: str, name: str) -> StudyEngineStatus:
    async with db.transaction() as conn:
        study = await study_store.get_study(conn, owner, name)
        resolved = resolve_engine(study.spec, study.engine, study.engine_options)
        needs_worker = resolved.engine.needs_worker(
            study.spec,
            resolved.options,
            await trial_store.finished_count(conn, study.id),
            created=study.next_trial_number,
        )
        unserved = needs_worker and not await worker_store.live_worker_count(conn, LIVE_WORKER_WINDOW)
        return StudyEngineStatus(
            study.engine,
            await engine_state_store.engine_status(conn, study.id),
            await pool_store.pool_size(conn, study.id),
            await job_store.study_job_counts(conn, study.id),
            SOBOL_FALLBACK if unserved else None,
        )


async def any_live_worker(db: Database) -> bool:
    async with db.transaction() as conn:
        return bool(await worker_store.live_worker_count(conn, LIVE_WORKER_WINDOW))
