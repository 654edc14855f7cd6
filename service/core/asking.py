"""The ask operation: which trials a caller gets, and from where.

In order: the caller's own active trials (a restarted worker resumes its work), enqueued trials,
fresh suggestions from the study's ready pool, then new suggestions. Model-free engines (and a
model engine's initial design) answer inline; a model-based suggestion is a job for an engine
worker, which the ask waits for up to the caller's `wait_seconds` and otherwise hands back as a
pending job to poll. No model is ever fitted inside an API request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncConnection

from service.core import new_trials
from service.core.fleet import LIVE_WORKER_WINDOW, NO_WORKER, SOBOL_FALLBACK
from service.core.trials import history_of, queue_refill
from service.domain.study import StudyState
from service.engines import ResolvedEngine, resolve_engine
from service.engines.base import SuggestRequest
from service.engines.sobol import SobolEngine
from service.errors import Conflict, NotFound
from service.store import engine_state as engine_state_store
from service.store import jobs as job_store
from service.store import signals
from service.store import studies as study_store
from service.store import trials as trial_store
from service.store import workers as worker_store
from service.store.db import Database
from service.store.jobs import Job, JobState
from service.store.records import StudyRecord, TrialRecord
from service.store.signals import JOBS_DONE, JOBS_QUEUED

JOB_POLL_SECONDS = 0.25  # signals wake a waiter at once; this is the safety net


@dataclass(frozen=True)
class AskOutcome:
    trials: list[TrialRecord]
    pending: Job | None  # a job still computing the rest; poll it
    fallback: str | None = None  # why some trials are Sobol points instead of the engine's (source sobol-fallback)


@dataclass(frozen=True)
class _NewTrials:
    trials: list[TrialRecord]
    job: Job | None = None  # a suggest job computing the rest for this caller
    refill_job: Job | None = None  # a refill already under way whose pool will serve the rest
    queued_work: bool = False  # workers have something new to do
    refill: bool = False  # queue a refill once the transaction has committed (see trials.queue_refill)
    fallback: str | None = None  # set when no live worker could compute them: Sobol points instead


async def ask(
    db: Database,
    owner: str,
    name: str,
    *,
    count: int,
    worker_id: str | None,
    fresh: bool,
    wait_seconds: float,
    request_id: str | None = None,
) -> AskOutcome:
    """With a `request_id`, a retry of an ask gets what the first attempt handed out (and, if that attempt
    stopped half-way, the rest): never more than `count` trials carry one request id."""
    common = await _ask_model_free(
        db, owner, name, count=count, worker_id=worker_id, fresh=fresh, request_id=request_id
    )
    if common is not None:
        return common
    deadline = time.monotonic() + wait_seconds
    async with db.transaction() as conn:
        context = await study_store.ask_context(conn, owner, name, worker_id)
        study = context.study
        db.remember(study)
        trials, step = await _earlier_attempt(conn, study.id, request_id)
        resolved = resolve_engine(study.spec, study.engine, study.engine_options)
        if step.job is None and len(trials) < count:
            if study.state is not StudyState.ACTIVE:
                raise Conflict(f"study {name!r} is {study.state}; only an active study hands out trials")
            if worker_id is not None and not fresh and context.worker_has_active:
                known = {t.number for t in trials}
                trials += [
                    t
                    for t in await trial_store.active_trials_of_worker(conn, study.id, worker_id, count)
                    if t.number not in known
                ][: count - len(trials)]
            if len(trials) < count and context.has_waiting:
                trials += await trial_store.claim_waiting_trials(
                    conn, study.id, count - len(trials), worker_id, request_id
                )
            if len(trials) < count:
                trials += await _resume_paused(conn, study, resolved, count - len(trials), worker_id, request_id)
            if len(trials) < count:
                step = await _new_trials(
                    conn, study, resolved, count - len(trials), worker_id, wait_for_refill=True, request_id=request_id
                )
    trials += step.trials
    await _announce(db, study.id, step)
    if step.refill_job is not None:
        # One computation instead of two: the refill a recent tell queued is computing from the
        # newest data; wait for it and take from its pool, then queue a job of our own if needed.
        await wait_for_job(db, step.refill_job.id, deadline - time.monotonic())
        step = _NewTrials([])
        async with db.transaction() as conn:
            if request_id is not None:
                trials, step = await _earlier_attempt(conn, study.id, request_id)
            if step.job is None and len(trials) < count:
                step = await _new_trials(
                    conn, study, resolved, count - len(trials), worker_id, wait_for_refill=False, request_id=request_id
                )
        trials += step.trials
        await _announce(db, study.id, step)
    if step.job is None:
        return AskOutcome(trials, None, step.fallback)
    done = await wait_for_job(db, step.job.id, deadline - time.monotonic())
    if done is None or not _finished(done):
        return AskOutcome(trials, done or step.job)
    known = {t.number for t in trials}
    return AskOutcome(
        trials + [t for t in await job_trials(db, done) if t.number not in known], None, _job_fallback(done)
    )


MOST_TRIALS_AT_ONCE = 16  # larger asks take the general path: one prepared INSERT per count is kept


class _NotCommon(Exception):
    """The common ask does not apply after all: roll back what it reserved and take the general path."""


async def _ask_model_free(
    db: Database,
    owner: str,
    name: str,
    *,
    count: int,
    worker_id: str | None,
    fresh: bool,
    request_id: str | None,
) -> AskOutcome | None:
    """The common ask of a model-free study (`random`, `sobol`, ...): new trials, suggested right here, in one
    short transaction of two prepared statements: reserve the numbers (which locks the study row, and reads
    whether enqueued or held trials exist), then insert the trials unless an earlier attempt of this request made
    some. That check belongs to the insert, not the reservation: the reservation may have waited for the row lock,
    and only a statement that starts after the wait sees what the writer it waited for committed.

    None when anything else applies (an unknown study, an engine with a model, enqueued trials, a worker's own
    active trials, an earlier attempt, a study not active): nothing is kept, and `ask` decides as usual.
    """
    known = db.known_studies.get((owner, name))
    if known is None or not 0 < count <= MOST_TRIALS_AT_ONCE:
        return None
    resolved = resolve_engine(known.spec, known.engine, known.engine_options)
    engine = resolved.engine
    if engine.needs_history or engine.resumes_paused or resolved.pool_max or resolved.needs_worker(0, created=0):
        return None
    try:
        async with db.direct_transaction() as conn:
            reserved = await study_store.reserve_trial_numbers(conn, owner, name, count, worker_id)
            if (
                reserved is None
                or reserved.study_id != known.id
                or reserved.state is not StudyState.ACTIVE
                or reserved.has_waiting
                or (worker_id is not None and not fresh and reserved.worker_has_active)
            ):
                raise _NotCommon
            request = SuggestRequest(
                spec=known.spec,
                options=resolved.options,
                count=count,
                seed=known.seed,
                sequence_start=reserved.first_number,
                trials=[],
            )
            suggested = engine.suggest(request)
            trials = await trial_store.insert_active_trials(
                conn,
                study_id=known.id,
                first_number=reserved.first_number,
                params=suggested.params,
                infos=suggested.info if suggested.info is not None else [None] * count,
                source=engine.name,
                worker_id=worker_id,
                budget=resolved.first_budget(),
                request_id=request_id,
            )
            if not trials:
                raise _NotCommon  # an earlier attempt of this request: the general path hands out what it made
    except _NotCommon:
        return None
    return AskOutcome(trials, None)


def _job_fallback(job: Job) -> str | None:
    """A job whose engine could not compute (it failed for good, or fell back itself) made Sobol points: say why."""
    return f"sobol-fallback: {job.error}" if job.fallback else None


async def _earlier_attempt(
    conn: AsyncConnection, study_id: int, request_id: str | None
) -> tuple[list[TrialRecord], _NewTrials]:
    """What earlier attempts of this ask handed out, and their job still computing, if any.

    Takes the study's lock first, so two attempts arriving together run one after the other.
    """
    if request_id is None:
        return [], _NewTrials([])
    await study_store.lock_study(conn, study_id)
    job = await job_store.unfinished_suggest_of_request(conn, study_id, request_id)
    return await trial_store.trials_of_request(conn, study_id, request_id), _NewTrials([], job=job)


async def _resume_paused(
    conn: AsyncConnection,
    study: StudyRecord,
    resolved: ResolvedEngine,
    count: int,
    worker_id: str | None,
    request_id: str | None,
) -> list[TrialRecord]:
    """Paused trials the engine wants resumed now (same number, params and checkpoint; a larger budget)."""
    if not resolved.engine.resumes_paused:
        return []
    history = await history_of(conn, study, True)
    resumed: list[TrialRecord] = []
    for choice in resolved.engine.resumes(study.spec, resolved.options, history, count):
        trial = await new_trials.resume(conn, study, choice, worker_id=worker_id, request_id=request_id)
        if trial is not None:  # None: a concurrent ask resumed it first
            resumed.append(trial)
    return resumed


async def _announce(db: Database, study_id: int, step: _NewTrials) -> None:
    """After commit: queue the refill the step asked for, and wake workers."""
    if step.refill:
        await queue_refill(db, study_id)  # publishes too
    elif step.queued_work:
        await db.signals.publish(JOBS_QUEUED)


def _finished(job: Job) -> bool:
    """Done, or failed for good (its result then holds the Sobol fallback trials)."""
    return job.state in (JobState.DONE, JobState.FAILED)


async def _new_trials(
    conn: AsyncConnection,
    study: StudyRecord,
    resolved: ResolvedEngine,
    count: int,
    worker_id: str | None,
    *,
    wait_for_refill: bool,
    request_id: str | None,
) -> _NewTrials:
    """New trials made here from the pool or inline, or the job that will compute them."""
    pool_options, budget = resolved.pool_options, resolved.first_budget()
    trials: list[TrialRecord] = []
    others_running = False
    if pool_options is not None and pool_options.pool_max:
        trials, others_running = await new_trials.create_from_pool(
            conn,
            study,
            count,
            freshness=pool_options.pool_freshness,
            budget=budget,
            worker_id=worker_id,
            request_id=request_id,
        )
    # Refill on an ask only when other trials run: they will ask before the next tell does. A lone
    # sequential client is served by the refill its tell queues.
    refill_now = bool(resolved.pool_max) and others_running
    if len(trials) == count:  # the common case under load: the pool answered
        return _NewTrials(trials, refill=refill_now)
    finished = await trial_store.finished_count(conn, study.id) if resolved.engine.needs_history else 0
    if not resolved.needs_worker(finished, created=study.next_trial_number):
        history = await history_of(conn, study, resolved.engine.needs_history)
        return _NewTrials(
            trials
            + await new_trials.create_inline(
                conn,
                study,
                resolved,
                count - len(trials),
                history=history,
                budget=budget,
                worker_id=worker_id,
                request_id=request_id,
            )
        )

    if not await worker_store.live_worker_count(conn, LIVE_WORKER_WINDOW):
        trials += await new_trials.create_inline(
            conn,
            study,
            replace(resolved, engine=SobolEngine()),
            count - len(trials),
            history=[],
            budget=budget,
            worker_id=worker_id,
            request_id=request_id,
            source="sobol-fallback",
        )
        await engine_state_store.record_computation(
            conn, study.id, memory=None, seconds=None, rung="sobol-fallback", error=NO_WORKER, fallback=True
        )
        return _NewTrials(trials, fallback=SOBOL_FALLBACK)
    if resolved.pool_max and wait_for_refill:
        refill = await job_store.unfinished_refill(conn, study.id)
        if refill is not None:
            return _NewTrials(trials, refill_job=refill)
    job = await job_store.enqueue_suggest(conn, study.id, count - len(trials), worker_id, request_id)
    return _NewTrials(trials, job=job, queued_work=True, refill=refill_now)


async def wait_for_job(db: Database, job_id: int, wait_seconds: float) -> Job | None:
    """Poll the job until it is done or failed, or `wait_seconds` pass (then its current state)."""
    deadline = time.monotonic() + wait_seconds
    async with db.signals.subscription(JOBS_DONE) as done:
        while True:
            async with db.transaction() as conn:
                job = await job_store.get_job(conn, job_id)
            if job is None or job.state in (JobState.DONE, JobState.FAILED) or time.monotonic() >= deadline:
                return job
            await signals.wait(done, min(JOB_POLL_SECONDS, deadline - time.monotonic()))


async def job_trials(db: Database, job: Job) -> list[TrialRecord]:
    numbers = (job.result or {}).get("trials", [])
    async with db.transaction() as conn:
        return [await trial_store.get_trial(conn, job.study_id, n) for n in numbers]


async def get_study_job(db: Database, owner: str, name: str, job_id: int, wait_seconds: float) -> AskOutcome:
    """Poll a pending ask: its trials once the job is done."""
    async with db.transaction() as conn:
        study = await study_store.get_study(conn, owner, name)
        job = await job_store.get_job(conn, job_id)
    if job is None or job.study_id != study.id:
        raise NotFound(f"job {job_id} not found in study {name!r}")
    if wait_seconds > 0:
        job = await wait_for_job(db, job_id, wait_seconds) or job
    if _finished(job):
        return AskOutcome(await job_trials(db, job), None, _job_fallback(job))
    return AskOutcome([], job)
