"""The ask operation: which trials a caller gets, and from where.

In order: the caller's own active trials (a restarted worker resumes its work), enqueued trials,
fresh suggestions from the study's ready pool, then new suggestions. Model-free engines (and a
model engine's initial design) answer inline; a model-based suggestion is a job for an engine
worker, which the ask waits for up to the caller's `wait_seconds` and otherwise hands back as a
pending job to poll. No model is ever fitted inside an API request.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from service.core.fleet import LIVE_WORKER_WINDOW, NO_WORKER, SOBOL_FALLBACK
from service.core.trials import history_of, queue_refill
from service.domain.study import StudyState
from service.domain.trial import TrialState
from service.engines import ResolvedEngine, resolve_engine
from service.engines.base import ModelEngineOptions, SuggestRequest
from service.engines.encoding import MIN_SEPARATION, to_unit
from service.engines.sobol import SobolEngine
from service.errors import Conflict, NotFound
from service.store import engine_state as engine_state_store
from service.store import jobs as job_store
from service.store import pool as pool_store
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


async def ask(db: Database, owner: str, name: str, *, count: int, worker_id: str | None, fresh: bool,
              wait_seconds: float, request_id: str | None = None) -> AskOutcome:
    """With a `request_id`, a retry of an ask gets what the first attempt handed out (and, if that attempt
    stopped half-way, the rest): never more than `count` trials carry one request id."""
    deadline = time.monotonic() + wait_seconds
    async with db.transaction() as conn:
        context = await study_store.ask_context(conn, owner, name, worker_id)
        study = context.study
        trials, step = await _earlier_attempt(conn, study.id, request_id)
        resolved = resolve_engine(study.spec, study.engine, study.engine_options)
        if step.job is None and len(trials) < count:
            if study.state is not StudyState.ACTIVE:
                raise Conflict(f"study {name!r} is {study.state}; only an active study hands out trials")
            if worker_id is not None and not fresh and context.worker_has_active:
                known = {t.number for t in trials}
                trials += [t for t in await trial_store.active_trials_of_worker(conn, study.id, worker_id, count)
                           if t.number not in known][:count - len(trials)]
            if len(trials) < count and context.has_waiting:
                trials += await trial_store.claim_waiting_trials(conn, study.id, count - len(trials), worker_id,
                                                                 request_id)
            if len(trials) < count:
                trials += await _resume_paused(conn, study, resolved, count - len(trials), worker_id, request_id)
            if len(trials) < count:
                step = await _new_trials(conn, study, resolved, count - len(trials), worker_id, wait_for_refill=True,
                                         request_id=request_id)
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
                step = await _new_trials(conn, study, resolved, count - len(trials), worker_id, wait_for_refill=False,
                                         request_id=request_id)
        trials += step.trials
        await _announce(db, study.id, step)
    if step.job is None:
        return AskOutcome(trials, None, step.fallback)
    done = await wait_for_job(db, step.job.id, deadline - time.monotonic())
    if done is None or not _finished(done):
        return AskOutcome(trials, done or step.job)
    known = {t.number for t in trials}
    return AskOutcome(trials + [t for t in await job_trials(db, done) if t.number not in known], None,
                      _job_fallback(done))


def _job_fallback(job: Job) -> str | None:
    """A job whose engine could not compute (it failed for good, or fell back itself) made Sobol points: say why."""
    return f"sobol-fallback: {job.error}" if job.fallback else None


async def _earlier_attempt(conn: AsyncConnection, study_id: int,
                           request_id: str | None) -> tuple[list[TrialRecord], _NewTrials]:
    """What earlier attempts of this ask handed out, and their job still computing, if any.

    Takes the study's lock first, so two attempts arriving together run one after the other.
    """
    if request_id is None:
        return [], _NewTrials([])
    await study_store.lock_study(conn, study_id)
    job = await job_store.unfinished_suggest_of_request(conn, study_id, request_id)
    return await trial_store.trials_of_request(conn, study_id, request_id), _NewTrials([], job=job)


async def _resume_paused(conn: AsyncConnection, study: StudyRecord, resolved: ResolvedEngine, count: int,
                         worker_id: str | None, request_id: str | None) -> list[TrialRecord]:
    """Paused trials the engine wants resumed now (same number, params and checkpoint; a larger budget)."""
    if not resolved.engine.resumes_paused:
        return []
    history = await history_of(conn, study, True)
    resumed: list[TrialRecord] = []
    for choice in resolved.engine.resumes(study.spec, resolved.options, history, count):
        trial = await trial_store.resume_paused(conn, study.id, choice.number, budget=choice.budget,
                                                worker_id=worker_id, request_id=request_id, reason=choice.reason)
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


async def _new_trials(conn: AsyncConnection, study: StudyRecord, resolved: ResolvedEngine, count: int,
                      worker_id: str | None, *, wait_for_refill: bool, request_id: str | None) -> _NewTrials:
    """New trials made here from the pool or inline, or the job that will compute them."""
    pool_max = _pool_max(resolved.options)
    budget = resolved.engine.first_budget(study.spec, resolved.options)
    trials, others_running = await _from_pool(conn, study, resolved.options, count, worker_id, request_id,
                                              budget) if pool_max else ([], False)
    # Refill on an ask only when other trials run: they will ask before the next tell does. A lone
    # sequential client is served by the refill its tell queues.
    refill_now = bool(pool_max) and others_running
    if len(trials) == count:  # the common case under load: the pool answered
        return _NewTrials(trials, refill=refill_now)
    finished = await trial_store.finished_count(conn, study.id) if resolved.engine.needs_history else 0
    if not resolved.engine.needs_worker(study.spec, resolved.options, finished, created=study.next_trial_number):
        return _NewTrials(trials + await _inline(conn, study, resolved, count - len(trials), worker_id, budget,
                                                 request_id=request_id))

    if not await worker_store.live_worker_count(conn, LIVE_WORKER_WINDOW):
        trials += await _inline(conn, study, ResolvedEngine(SobolEngine(), resolved.options), count - len(trials),
                                worker_id, budget, source="sobol-fallback", request_id=request_id)
        await engine_state_store.record_computation(conn, study.id, memory=None, seconds=None, rung="sobol-fallback",
                                                    error=NO_WORKER, fallback=True)
        return _NewTrials(trials, fallback=SOBOL_FALLBACK)
    if pool_max and wait_for_refill:
        refill = await job_store.unfinished_refill(conn, study.id)
        if refill is not None:
            return _NewTrials(trials, refill_job=refill)
    job = await job_store.enqueue_suggest(conn, study.id, count - len(trials), worker_id, request_id)
    return _NewTrials(trials, job=job, queued_work=True, refill=refill_now)


async def _inline(conn: AsyncConnection, study: StudyRecord, resolved: ResolvedEngine, count: int,
                  worker_id: str | None, budget: float | None, source: str | None = None,
                  request_id: str | None = None) -> list[TrialRecord]:
    first = await study_store.allocate_trial_numbers(conn, study.id, count)
    history = await history_of(conn, study, resolved.engine.needs_history)
    request = SuggestRequest(spec=study.spec, options=resolved.options, count=count, seed=study.seed,
                             sequence_start=first, trials=history)
    suggestions = resolved.engine.suggest(request)
    return await trial_store.insert_trials(
        conn, study_id=study.id, first_number=first, params=suggestions, state=TrialState.ACTIVE,
        source=source or resolved.engine.name, worker_id=worker_id, budget=budget,
        engine_info=request.notes.suggestion_info, request_id=request_id)


def _pool_max(options: BaseModel) -> int:
    return options.pool_max if isinstance(options, ModelEngineOptions) else 0


async def _from_pool(conn: AsyncConnection, study: StudyRecord, options: BaseModel, count: int,
                     worker_id: str | None, request_id: str | None,
                     budget: float | None) -> tuple[list[TrialRecord], bool]:
    """Take fresh pooled suggestions, skipping any that sit on top of a running trial or of a trial the engine
    did not know of when it computed the pool (another job may have proposed the same point meanwhile, and
    that trial may have finished already).

    An engine that plans runs pools each with its own budget, and pools resumes: a pooled resume hands its paused
    trial out again if it still is paused below that budget (the conditional update in `resume_paused`, so it
    never goes to two workers), and is dropped otherwise (another ask resumed it, or it finished): the trial
    itself is untouched, and the next plan decides about it again.

    Also says whether other trials are running, which decides if the pool should be refilled now.
    """
    assert isinstance(options, ModelEngineOptions)
    running = await trial_store.params_in_state(conn, study.id, TrialState.ACTIVE)
    pooled = await pool_store.fresh_pooled_suggestions(conn, study.id, options.pool_freshness, count + 4)
    if not pooled:
        return [], bool(running)
    first_unknown = min(p.as_of_number if p.as_of_number is not None else 0 for p in pooled)
    unknown = await trial_store.params_numbered_from(conn, study.id, first_unknown)
    taken_points = to_unit(study.spec, running + unknown)
    chosen: list[pool_store.PooledSuggestion] = []
    resumed: list[TrialRecord] = []
    used: list[int] = []
    for suggestion in pooled:
        if len(chosen) + len(resumed) == count:
            break
        used.append(suggestion.id)
        if suggestion.resume_number is not None:
            assert suggestion.budget is not None
            trial = await trial_store.resume_paused(conn, study.id, suggestion.resume_number, budget=suggestion.budget,
                                                    worker_id=worker_id, request_id=request_id,
                                                    reason=(suggestion.engine_info or {}).get("resumed"))
            if trial is not None:
                resumed.append(trial)
            continue
        point = to_unit(study.spec, [suggestion.params])
        if taken_points.size and np.abs(taken_points - point).max(axis=1).min() < MIN_SEPARATION:
            continue  # a running trial already covers it: drop it
        chosen.append(suggestion)
        taken_points = np.vstack([taken_points, point]) if taken_points.size else point
    await pool_store.delete_pooled(conn, used)
    if not chosen:
        return resumed, bool(running)
    first = await study_store.allocate_trial_numbers(conn, study.id, len(chosen))
    trials = list(resumed)
    for run_budget, runs in itertools.groupby(chosen, key=lambda p: p.budget if p.budget is not None else budget):
        group = list(runs)
        trials += await trial_store.insert_trials(
            conn, study_id=study.id, first_number=first, params=[p.params for p in group], state=TrialState.ACTIVE,
            source=study.engine, worker_id=worker_id, budget=run_budget,
            engine_info=[p.engine_info for p in group], request_id=request_id)
        first += len(group)
    return trials, bool(running)


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
