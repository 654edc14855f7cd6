"""The engine worker: claims jobs from the database, runs engines, stores their results.

Many workers on many machines coordinate only through the jobs table. A worker holds a lease on
each job it runs and renews it from a heartbeat task; the result is written in the same transaction
that marks the job done, and only while the lease is still this worker's. A worker that dies simply
stops renewing: its job becomes claimable again and another worker redoes it. A job that keeps
failing is finished with a Sobol fallback, so no client waits forever; the fallback is recorded.

Engine computations run on a thread (`asyncio.to_thread`), so the event loop keeps renewing leases
while a model fits. In the embedded default the same Worker runs inside the API process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from service.core import new_trials
from service.domain.study import StudyState
from service.domain.trial import FINISHED_STATES, TrialState
from service.engines import ResolvedEngine, resolve_engine, warm_up
from service.engines.base import Engine, NewRun, Plan, Suggestions, SuggestRequest
from service.engines.sobol import sobol_points
from service.store import engine_state as engine_state_store
from service.store import jobs as job_store
from service.store import pool as pool_store
from service.store import signals
from service.store import studies as study_store
from service.store import trials as trial_store
from service.store import workers as worker_store
from service.store.db import Database
from service.store.jobs import Job, JobKind, JobState
from service.store.models import utcnow
from service.store.records import StudyRecord
from service.store.signals import JOBS_DONE, JOBS_QUEUED

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class WorkerSettings:
    device: str = "cpu"
    concurrency: int = 1
    lease_seconds: float = 30.0
    idle_poll_seconds: float = 0.5  # signals wake idle workers at once; this is the safety net
    cleanup_after: timedelta = timedelta(hours=1)


class LeaseLost(Exception):
    """Another worker took the job over (our lease ran out); our result is discarded."""


@dataclass
class _Loaded:
    study: StudyRecord
    resolved: ResolvedEngine  # the study's engine, resolved once for the job
    request: SuggestRequest[BaseModel]
    finished: int

    @property
    def engine(self) -> Engine[Any]:
        return self.resolved.engine


class Worker:
    def __init__(self, db: Database, settings: WorkerSettings, worker_id: str | None = None) -> None:
        self.db = db
        self.settings = settings
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.lease = timedelta(seconds=settings.lease_seconds)
        self._running: set[int] = set()
        self._done = 0
        self._failed = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set; jobs in flight are finished first (or released by lease expiry)."""
        await self.db.signals.start()
        waker = asyncio.create_task(self._wake_on(stop))
        async with self.db.transaction() as conn:
            await worker_store.register_worker(
                conn,
                worker_id=self.id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                device=self.settings.device,
                concurrency=self.settings.concurrency,
            )
        await asyncio.to_thread(warm_up, self.settings.device)  # registered first: asks queue jobs meanwhile
        log.info(
            "worker %s started (device %s, concurrency %d)", self.id, self.settings.device, self.settings.concurrency
        )
        heartbeat = asyncio.create_task(self._heartbeat(stop))
        try:
            await asyncio.gather(*(self._job_loop(stop) for _ in range(self.settings.concurrency)))
        finally:
            heartbeat.cancel()
            waker.cancel()
            async with self.db.transaction() as conn:
                await worker_store.worker_heartbeat(conn, self.id, state="stopped")
            log.info("worker %s stopped", self.id)

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.db.signals.wake_all()  # idle job loops notice the stop now, not at their next poll

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        interval = self.settings.lease_seconds / 3
        while not stop.is_set():
            try:
                async with self.db.transaction() as conn:
                    await job_store.renew_leases(conn, self.id, sorted(self._running), self.lease)
                    await worker_store.worker_heartbeat(conn, self.id, done=self._done, failed=self._failed)
                    self._done = self._failed = 0
                    await job_store.delete_finished_jobs(conn, utcnow() - self.settings.cleanup_after)
                    await worker_store.forget_workers(conn, timedelta(days=1))
            except Exception:  # the database may be briefly away; the next beat tries again
                log.exception("worker heartbeat failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    async def _job_loop(self, stop: asyncio.Event) -> None:
        async with self.db.signals.subscription(JOBS_QUEUED) as queued:
            while not stop.is_set():
                try:
                    job = await self._claim()
                except Exception:
                    log.exception("claiming a job failed")
                    job = None
                if job is None:  # sleep until a job is queued (a signal), or poll again later
                    await signals.wait(queued, self.settings.idle_poll_seconds)
                    continue
                await self.run_claimed(job)
                await self.db.signals.publish(JOBS_DONE)

    async def run_claimed(self, job: Job) -> None:
        """Process a claimed job, renewing its lease meanwhile; one bad job must not stop the worker.

        A job that failed outside its engine (its database connection was killed, say) goes back to the queue at
        once, for this worker or another: waiting for its lease to run out stalled the study's clients for as long.
        """
        self._running.add(job.id)
        try:
            await self.process(job)
        except Exception as error:
            log.exception("job %d failed unexpectedly", job.id)
            self._failed += 1
            await self._release(job, f"{type(error).__name__}: {error}")
        finally:
            self._running.discard(job.id)

    async def _release(self, job: Job, error: str) -> None:
        try:
            async with self.db.transaction() as conn:
                await job_store.release_job(conn, job, self.id, error)
        except Exception:  # the database is still away: the lease runs out and the job is redone then
            log.warning("could not release job %d; it is redone when its lease runs out", job.id, exc_info=True)

    async def _claim(self) -> Job | None:
        async with self.db.transaction() as conn:
            return await job_store.claim_job(conn, self.id, self.lease)

    async def process(self, job: Job) -> None:
        """Run one claimed job to its end: result stored, or released for another attempt, or fallback."""
        loaded = await self._load(job)
        if loaded is None:
            await self._finish(job, _no_result, fallback=False, error="nothing to compute: study gone or not active")
            return
        if job.attempts > MAX_ATTEMPTS:
            await self._fallback(job, loaded, job.error or f"job lost its worker {job.attempts - 1} times")
            return
        started = time.perf_counter()
        try:
            if loaded.engine.plans_runs:
                planned = await asyncio.to_thread(loaded.engine.plan, loaded.request)
                if job.kind is JobKind.REFILL:
                    await self._pool_plan(job, loaded, planned, seconds=time.perf_counter() - started)
                else:
                    await self._store_plan(job, loaded, planned, seconds=time.perf_counter() - started)
                self._done += 1
                return
            suggested = await asyncio.to_thread(loaded.engine.suggest, loaded.request)
        except Exception as error:
            message = f"{type(error).__name__}: {error}"
            log.warning(
                "job %d (study %d) failed on attempt %d: %s\n%s",
                job.id,
                job.study_id,
                job.attempts,
                message,
                traceback.format_exc(),
            )
            self._failed += 1
            if job.attempts >= MAX_ATTEMPTS:
                await self._fallback(job, loaded, message)
            else:
                await self._release(job, message)
            return
        await self._store(job, loaded, suggested, seconds=time.perf_counter() - started)
        self._done += 1

    async def _load(self, job: Job) -> _Loaded | None:
        async with self.db.transaction() as conn:
            study = await study_store.get_study_by_id(conn, job.study_id)
            if study is None or (job.kind is JobKind.REFILL and study.state is not StudyState.ACTIVE):
                return None
            resolved = resolve_engine(study.spec, study.engine, study.engine_options)
            history = [t.view() for t in await trial_store.list_trials(conn, study.id, with_measurements=True)]
            finished = sum(t.state in FINISHED_STATES for t in history)
            memory = (await engine_state_store.engine_status(conn, study.id)).memory
        count = job.count if job.kind is JobKind.SUGGEST else _pool_target(history, resolved.pool_max)
        request = SuggestRequest(
            spec=study.spec,
            options=resolved.options,
            count=max(count, 1),
            seed=study.seed,
            sequence_start=study.next_trial_number,
            trials=history,
            device=self.settings.device,
            memory=dict(memory),
        )
        return _Loaded(study, resolved, request, finished) if count > 0 else None

    async def _fallback(self, job: Job, loaded: _Loaded, error: str) -> None:
        """The job failed for good: it is marked failed; a waiting client still gets Sobol trials."""
        log.error("job %d (study %d) failed after %d attempts: %s", job.id, job.study_id, job.attempts, error)
        if job.kind is JobKind.REFILL:  # nobody waits on a refill: no Sobol points in the pool

            async def record(conn: AsyncConnection) -> dict[str, Any]:
                await engine_state_store.record_computation(
                    conn, loaded.study.id, memory=None, seconds=None, rung=None, error=error, fallback=False
                )
                return {}

            await self._finish(job, record, fallback=False, error=error, state=JobState.FAILED)
            return
        fallback = Suggestions(sobol_points(loaded.request), rung="sobol-fallback", fallback_reason=error)
        await self._store(job, loaded, fallback, seconds=None, state=JobState.FAILED)

    async def _store(
        self,
        job: Job,
        loaded: _Loaded,
        suggested: Suggestions,
        *,
        seconds: float | None,
        state: JobState = JobState.DONE,
    ) -> None:
        """Store a computation: the engine's memory and status, and its suggestions as trials (or, for a refill, as
        the study's ready pool). Sobol points the engine or the worker fell back to carry source sobol-fallback."""
        study = loaded.study
        fallback = suggested.fallback_reason is not None
        budget = loaded.resolved.first_budget()

        async def write(conn: AsyncConnection) -> dict[str, Any]:
            await engine_state_store.record_computation(
                conn,
                study.id,
                memory=suggested.memory,
                status=suggested.status,
                seconds=seconds,
                rung=suggested.rung,
                error=suggested.fallback_reason,
                fallback=fallback,
            )
            if job.kind is JobKind.REFILL:
                await pool_store.replace_pool(
                    conn,
                    study.id,
                    suggested.params,
                    loaded.finished,
                    job.id,
                    suggested.info,
                    as_of_number=loaded.request.sequence_start,
                )
                return {"pooled": len(suggested.params)}
            created = await new_trials.create_computed(
                conn,
                study,
                new_trials.new_trials_of(suggested.params, suggested.info, budget),
                computed_from=loaded.request.sequence_start,
                source=study.engine if not fallback else "sobol-fallback",
                worker_id=job.worker_id,
                request_id=job.request_id,
            )
            return {"trials": [t.number for t in created]}

        await self._finish(job, write, fallback=fallback, error=suggested.fallback_reason, state=state)

    async def _store_plan(self, job: Job, loaded: _Loaded, planned: Plan, *, seconds: float) -> None:
        """Apply an engine's plan: resume the paused runs it chose (one another ask resumed meanwhile is replaced by
        the new run the engine gave instead, else a Sobol run) and start the new ones, each with its own budget."""
        study = loaded.study

        async def write(conn: AsyncConnection) -> dict[str, Any]:
            await _record_plan(conn, study.id, planned, seconds)
            trials = await new_trials.apply_plan(
                conn,
                study,
                planned.runs,
                first_budget=loaded.resolved.first_budget(),
                worker_id=job.worker_id,
                request_id=job.request_id,
            )
            return {"trials": [t.number for t in trials]}

        await self._finish(job, write, fallback=planned.fallback_reason is not None, error=planned.fallback_reason)

    async def _pool_plan(self, job: Job, loaded: _Loaded, planned: Plan, *, seconds: float) -> None:
        """A refill of an engine that plans runs: its runs, best first, replace the study's ready pool. Nothing is
        claimed here: an ask claims a pooled resume when it hands it out, if the trial is still paused then."""
        study = loaded.study
        params_of = {t.number: t.params for t in loaded.request.trials}
        runs = [
            pool_store.PlannedRun(item.params, item.budget, None, item.info)
            if isinstance(item, NewRun)
            else pool_store.PlannedRun(
                params_of[item.number], item.budget, item.number, {"resumed": item.reason} if item.reason else None
            )
            for item in planned.runs
        ]

        async def write(conn: AsyncConnection) -> dict[str, Any]:
            await _record_plan(conn, study.id, planned, seconds)
            await pool_store.replace_plan_pool(
                conn, study.id, runs, loaded.finished, job.id, as_of_number=loaded.request.sequence_start
            )
            return {"pooled": len(runs)}

        await self._finish(job, write, fallback=planned.fallback_reason is not None, error=planned.fallback_reason)

    async def _finish(
        self,
        job: Job,
        write: Callable[[AsyncConnection], Awaitable[dict[str, Any]]],
        *,
        fallback: bool,
        error: str | None,
        state: JobState = JobState.DONE,
    ) -> None:
        try:
            async with self.db.transaction() as conn:
                # Claim the finish first: it locks the job row, so a study deleted meanwhile (its jobs
                # go with it) or a lease taken over shows up here, before anything is written.
                if not await job_store.finish_job(
                    conn, job, self.id, result=None, fallback=fallback, error=error, state=state
                ):
                    raise LeaseLost(job.id)
                await job_store.set_job_result(conn, job.id, await write(conn))
        except LeaseLost:
            log.warning("job %d was taken over by another worker or its study deleted; result discarded", job.id)


async def _record_plan(conn: AsyncConnection, study_id: int, planned: Plan, seconds: float) -> None:
    await engine_state_store.record_computation(
        conn,
        study_id,
        memory=planned.memory,
        seconds=seconds,
        rung=planned.rung,
        error=planned.fallback_reason,
        fallback=planned.fallback_reason is not None,
    )


async def _no_result(_: AsyncConnection) -> dict[str, Any]:
    return {}


def _pool_target(history: list[Any], pool_max: int) -> int:
    """As many suggestions as the study's current concurrency (its running trials), within pool_max."""
    running = sum(t.state is TrialState.ACTIVE for t in history)
    return min(pool_max, max(1, running))
