"""Worker failure handling, in-process: retries, the final failure, and the Sobol fallback a client gets."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from pydantic import BaseModel
from sqlalchemy.engine import make_url

from service.core import asking
from service.core.studies import create_study, delete_study
from service.domain.spec import StudySpec
from service.engines import ENGINES
from service.engines.base import Suggestions, SuggestRequest
from service.engines.gp.engine import GPEngine
from service.store import engine_state as engine_state_store
from service.store import jobs as job_store
from service.store import workers as worker_store
from service.store.db import Database, upgrade
from service.store.jobs import JobState
from service.workers.runner import MAX_ATTEMPTS, Worker, WorkerSettings


class BrokenEngine(GPEngine):
    """Needs a worker for every suggestion and fails every time, as a broken driver would."""

    name = "broken"

    def needs_worker(self, spec: StudySpec, options: BaseModel, finished: int, created: int = 0) -> bool:
        return True

    def suggest(self, request: SuggestRequest) -> Suggestions:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


SPEC = StudySpec.model_validate(
    {
        "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "objectives": [{"name": "y", "goal": "minimize"}],
        "engine": "broken",
    }
)


@pytest.fixture
async def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setitem(ENGINES, BrokenEngine.name, BrokenEngine())
    url = f"sqlite:///{tmp_path / 'failures.db'}"
    upgrade(url)
    database = Database(url)
    yield database  # type: ignore[misc]
    await database.dispose()


async def test_a_job_that_keeps_failing_is_marked_failed_and_the_client_gets_sobol(db: Database) -> None:
    await create_study(db, "default", "s", SPEC)
    worker = Worker(db, WorkerSettings())
    async with db.transaction() as conn:
        await worker_store.register_worker(
            conn, worker_id=worker.id, hostname="test", pid=1, device="cpu", concurrency=1
        )
    pending = await asking.ask(db, "default", "s", count=1, worker_id="trainer-1", fresh=False, wait_seconds=0)
    assert pending.trials == [] and pending.pending is not None
    job_id = pending.pending.id

    for attempt in range(1, MAX_ATTEMPTS + 1):
        job = await worker._claim()
        assert job is not None and job.id == job_id and job.attempts == attempt
        await worker.process(job)
        async with db.transaction() as conn:
            state = await job_store.get_job(conn, job_id)
        assert state is not None
        if attempt < MAX_ATTEMPTS:
            assert state.state is JobState.QUEUED and "illegal memory access" in (state.error or "")

    assert state.state is JobState.FAILED and state.fallback
    assert "RuntimeError: CUDA error" in (state.error or "")
    polled = await asking.get_study_job(db, "default", "s", job_id, 0)
    (trial,) = polled.trials
    assert polled.pending is None
    assert trial.source == "sobol-fallback" and trial.worker_id == "trainer-1" and 0 <= trial.params["x"] <= 1
    async with db.transaction() as conn:
        status = await engine_state_store.engine_status(conn, 1)
    assert status.fallbacks == 1 and "illegal memory access" in (status.last_error or "")
    assert await worker._claim() is None  # nothing left to redo


class PointEngine(GPEngine):
    """Needs a worker and always proposes the same point: enough to drive the job machinery."""

    name = "point"

    def needs_worker(self, spec: StudySpec, options: BaseModel, finished: int, created: int = 0) -> bool:
        return True

    def suggest(self, request: SuggestRequest) -> Suggestions:
        return Suggestions([{"x": 0.5}] * request.count)


async def test_a_study_deleted_while_its_job_runs_costs_the_worker_nothing(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ENGINES, PointEngine.name, PointEngine())
    await create_study(db, "default", "gone", SPEC.model_copy(update={"engine": "point"}))
    await create_study(db, "default", "kept", SPEC.model_copy(update={"engine": "point"}))
    worker = Worker(db, WorkerSettings())
    async with db.transaction() as conn:
        await worker_store.register_worker(
            conn, worker_id=worker.id, hostname="test", pid=1, device="cpu", concurrency=1
        )
    await asking.ask(db, "default", "gone", count=1, worker_id=None, fresh=False, wait_seconds=0)
    job = await worker._claim()
    assert job is not None
    await delete_study(db, "default", "gone")
    await worker.process(job)  # must neither raise nor write anything for the deleted study

    pending = await asking.ask(db, "default", "kept", count=1, worker_id=None, fresh=False, wait_seconds=0)
    assert pending.pending is not None
    next_job = await worker._claim()
    assert next_job is not None and next_job.id == pending.pending.id
    await worker.process(next_job)
    (trial,) = (await asking.get_study_job(db, "default", "kept", next_job.id, 0)).trials
    assert trial.params == {"x": 0.5} and trial.source == "point"


class ConnectionKillingEngine(PointEngine):
    """Proposes a point, but while it computes an operator (or a failover) kills the worker's database connections."""

    name = "connection-killing"
    kill: Callable[[], None] = staticmethod(lambda: None)

    def suggest(self, request: SuggestRequest) -> Suggestions:
        self.kill()
        return super().suggest(request)


async def test_a_job_whose_database_connection_was_killed_is_released_at_once(
    postgresql_factory: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job used to stay claimed until its lease ran out (30 s) while the study's clients waited."""
    url = postgresql_factory()
    upgrade(url)
    database = make_url(url).database

    def kill_worker_connections() -> None:
        with psycopg.connect(
            make_url(url).set(database="postgres").render_as_string(hide_password=False), autocommit=True
        ) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )

    engine = ConnectionKillingEngine()
    engine.kill = kill_worker_connections
    monkeypatch.setitem(ENGINES, engine.name, engine)
    db = Database(url)
    try:
        await create_study(db, "default", "s", SPEC.model_copy(update={"engine": engine.name}))
        worker = Worker(db, WorkerSettings(lease_seconds=30))
        async with db.transaction() as conn:
            await worker_store.register_worker(
                conn, worker_id=worker.id, hostname="test", pid=1, device="cpu", concurrency=1
            )
        pending = await asking.ask(db, "default", "s", count=1, worker_id=None, fresh=False, wait_seconds=0)
        assert pending.pending is not None
        job = await worker._claim()
        assert job is not None
        await worker.run_claimed(job)  # the connection dies under it: logged, not raised
        engine.kill = lambda: None
        started = time.monotonic()
        again = await worker._claim()
        assert again is not None and again.id == job.id and again.attempts == 2
        await worker.run_claimed(again)
        (trial,) = (await asking.get_study_job(db, "default", "s", job.id, 0)).trials
        assert trial.params == {"x": 0.5} and time.monotonic() - started < 5
    finally:
        await db.dispose()
