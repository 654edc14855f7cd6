"""Trial operations: ask, report, tell, enqueue, best. Each is one transaction.

Concurrency rules live here and in the store: trial numbers come from a locked counter on the
study row, enqueued trials are claimed with SKIP LOCKED, and a tell locks its trial row, so two
tells of one trial serialize and the second sees the first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from service.core import new_trials
from service.core.new_trials import NewTrial
from service.domain.ranking import best_trials
from service.domain.spec import Fidelity
from service.domain.study import StudyState
from service.domain.trial import (
    FINISHED_STATES,
    Measurement,
    TrialState,
    TrialView,
    check_complete_values,
    check_values,
    normalize_params,
)
from service.engines import ResolvedEngine, keeps_pool, resolve_engine
from service.engines.base import Action, Decision
from service.errors import Conflict, InvalidArgument
from service.store import jobs as job_store
from service.store import studies as study_store
from service.store import trials as trial_store
from service.store.db import Database
from service.store.records import StudyRecord, TrialRecord
from service.store.signals import JOBS_QUEUED


async def history_of(conn: AsyncConnection, study: StudyRecord, needed: bool) -> list[TrialView]:
    if not needed:
        return []
    return [t.view() for t in await trial_store.list_trials(conn, study.id, with_measurements=True)]


@dataclass(frozen=True)
class Tell:
    state: TrialState
    values: dict[str, float] | None
    reason: str | None
    request_id: str | None = None  # the client's id: a retry of the same tell returns the trial it finished


def _stored_values(study: StudyRecord, tell: Tell, trial: TrialRecord | None) -> dict[str, float | None] | None:
    """Validate told values for the target state and return what is stored."""
    if tell.state is TrialState.COMPLETED:
        check_complete_values(study.spec, tell.values or {})
        return dict(tell.values or {})
    if tell.state is TrialState.FAILED:
        # A failed run may well have produced NaN: keep the finite numbers, record the rest as null.
        return {k: (v if math.isfinite(v) else None) for k, v in tell.values.items()} if tell.values else None
    if tell.values:
        check_values(tell.values)
        return dict(tell.values)
    if tell.state is TrialState.STOPPED and trial is not None and trial.measurements:
        latest = trial_store.latest_measurement(trial.measurements)
        return dict(latest.values) if latest else None
    return None


async def tell(db: Database, owner: str, name: str, number: int, told: Tell) -> TrialRecord:
    """Finish a trial. A repeat of the same tell is a no-op; a different tell of a finished trial is a conflict."""
    if told.state not in FINISHED_STATES:
        raise InvalidArgument.one(
            "state", f"a trial is told completed, failed, infeasible or stopped, not {told.state}"
        )
    finished = await _tell_in_one_statement(db, owner, name, number, told)
    if finished is not None:
        return finished
    async with db.transaction() as conn:
        study, trial = await trial_store.locate_trial(conn, owner, name, number, for_update=True)
        db.remember(study)
        if told.state is TrialState.STOPPED and not told.values:
            measurements = await trial_store.measurements_of(conn, [trial.id])
            trial = _with_measurements(trial, measurements[trial.id])
        values = _stored_values(study, told, trial)
        if trial.state is TrialState.STOPPED and told.state in (TrialState.COMPLETED, TrialState.STOPPED):
            return trial  # the engine stopped it first; the worker's closing tell just acknowledges that
        if trial.state in FINISHED_STATES:
            if told.request_id is not None and trial.tell_request_id == told.request_id:
                return trial  # a retry of the tell that finished it
            if trial.state is told.state and trial.values == values and (told.reason or None) == trial.reason:
                return trial
            raise Conflict(f"trial {number} is already {trial.state}; a finished trial cannot be told again")
        if trial.state is TrialState.WAITING:
            raise Conflict(f"trial {number} is waiting to be handed out by an ask; it cannot be told yet")
        finished = await trial_store.finish_trial(
            conn, trial.id, state=told.state, values=values, reason=told.reason, request_id=told.request_id
        )
        resolved = resolve_engine(study.spec, study.engine, study.engine_options)
        await retry_if_failed(conn, study, resolved, finished)
        refill = await _refresh_pool(conn, study, resolved)
    if refill:
        await queue_refill(db, study.id)
    return finished


async def _tell_in_one_statement(db: Database, owner: str, name: str, number: int, told: Tell) -> TrialRecord | None:
    """The common tell as a single atomic UPDATE: a known model-free study, an open trial.

    Anything else (first sight of the study, a finished trial, a pool to refresh, stopped without
    values) returns None and goes through the locking transaction below, which has the full rules.
    So do values the remembered spec refuses: the study may have been re-created with another spec,
    and only the careful path, which reads the study, may refuse them.
    """
    study = db.known_studies.get((owner, name))
    if study is None or (told.state is TrialState.STOPPED and not told.values):
        return None
    if told.state is TrialState.FAILED and study.spec.retry_failed:
        return None  # a failure may be re-queued: the careful path does that in the same transaction
    if keeps_pool(study.engine):
        return None
    try:
        values = _stored_values(study, told, None)
    except InvalidArgument:
        return None
    async with db.direct() as conn:
        return await trial_store.finish_open_trial(
            conn, study, number, state=told.state, values=values, reason=told.reason, request_id=told.request_id
        )


async def retry_if_failed(
    conn: AsyncConnection, study: StudyRecord, resolved: ResolvedEngine, trial: TrialRecord
) -> TrialRecord | None:
    """With the study's `retry_failed: N`, enqueue a failed trial's params again, up to N times per original
    trial (each retry's engine_info names the trial it retries and its attempt number)."""
    if trial.state is not TrialState.FAILED or not study.spec.retry_failed:
        return None
    earlier = trial.engine_info or {}
    attempt = int(earlier.get("retry_attempt", 0)) + 1
    if attempt > study.spec.retry_failed:
        return None
    info = {"retry_of": int(earlier.get("retry_of", trial.number)), "retry_attempt": attempt}
    (retry,) = await new_trials.create_trials(
        conn, study, [NewTrial(trial.params, info, resolved.first_budget())], source="retry", state=TrialState.WAITING
    )
    return retry


async def _refresh_pool(conn: AsyncConnection, study: StudyRecord, resolved: ResolvedEngine) -> bool:
    """New data makes pooled suggestions stale: whether a worker should precompute the next ones."""
    if study.state is not StudyState.ACTIVE or not resolved.pool_max:
        return False
    return resolved.needs_worker(await trial_store.finished_count(conn, study.id), created=study.next_trial_number)


async def queue_refill(db: Database, study_id: int) -> None:
    """Queue a refill after the caller's transaction committed, in a statement of its own.

    Inside the transaction, the insert could wait on another transaction's queued refill (the unique index
    coalesces them) while holding trial and study locks that one needs: a deadlock under load. Alone it holds
    nothing. A refill is a hint: if this one is lost (a crash right here), the next tell or ask queues another,
    and an ask that finds the pool empty queues a job of its own.
    """
    async with db.autocommit() as conn:
        await job_store.enqueue_refill(conn, study_id)
    await db.signals.publish(JOBS_QUEUED)


def _with_measurements(trial: TrialRecord, measurements: tuple[Measurement, ...]) -> TrialRecord:
    return replace(trial, measurements=measurements)


@dataclass(frozen=True)
class ReportOutcome:
    trial: TrialRecord
    decision: Decision


async def report(
    db: Database,
    owner: str,
    name: str,
    number: int,
    step: float,
    values: dict[str, float],
    *,
    checkpoint: str | None = None,
) -> ReportOutcome:
    """Record an intermediate measurement and ask the engine whether training should go on.

    A trial that reaches its budget before the fidelity's max pauses (its job saves a checkpoint and stops; a
    later ask may resume it); below the budget the engine's stopping rule may stop it.
    """
    check_values(values)
    if not math.isfinite(step) or step < 0:
        raise InvalidArgument.one("step", f"must be a finite number >= 0, got {step}")
    common = await _report_in_two_statements(db, owner, name, number, step, values, checkpoint)
    if common is not None:
        return common
    async with db.transaction() as conn:
        study, trial = await trial_store.locate_trial(conn, owner, name, number, for_update=True)
        db.remember(study)
        fidelity = study.spec.fidelity
        if fidelity is not None and step > fidelity.max:
            raise InvalidArgument.one("step", f"{step} is beyond the study's {fidelity.name} max ({fidelity.max})")
        if trial.state is not TrialState.ACTIVE:
            raise Conflict(f"trial {number} is {trial.state}; only an active trial reports measurements")
        await trial_store.upsert_measurement(conn, trial.id, step, values)
        if checkpoint is not None:
            await trial_store.set_checkpoint(conn, trial.id, checkpoint)
        trial = await trial_store.record_heartbeat(conn, trial.id) or trial  # a report is a sign of life
        resolved = resolve_engine(study.spec, study.engine, study.engine_options)
        history = await history_of(conn, study, resolved.engine.decision_needs_history(resolved.options))
        current = next((t for t in history if t.number == trial.number), trial.view())
        decision = resolved.engine.decide(study.spec, resolved.options, current, history)
        engine_reason = decision.reason
        if decision.action is Action.CONTINUE and _at_budget(trial, fidelity, step):
            engine_reason = None
            decision = Decision(
                Action.PAUSE,
                f"reached its budget ({fidelity.name if fidelity else 'step'} "
                f"{trial.budget:g}): save a checkpoint and stop; an ask may resume it",
            )
        if decision.action is Action.PAUSE:
            await trial_store.pause_trial(conn, trial, resume_from=step, reason=engine_reason)
            trial = replace(trial, state=TrialState.PAUSED, resume_from=step, worker_id=None)
        elif decision.action is Action.STOP:
            trial = await trial_store.finish_trial(
                conn,
                trial.id,
                state=TrialState.STOPPED,
                values=dict(values),
                reason=decision.reason or "stopped early by the engine",
            )
        # A run that paused or stopped is new data for an engine that plans runs: its pool is planned again, while
        # asks meanwhile take what the last plan left (the job that paused asks next, and gets a run at once).
        refill = (
            decision.action is not Action.CONTINUE
            and resolved.engine.plans_runs
            and await _refresh_pool(conn, study, resolved)
        )
    if refill:
        await queue_refill(db, study.id)
    return ReportOutcome(trial, decision)


class _NotCommon(Exception):
    """The common report does not apply after all: roll back and take the careful path."""


async def _report_in_two_statements(
    db: Database,
    owner: str,
    name: str,
    number: int,
    step: float,
    values: dict[str, float],
    checkpoint: str | None,
) -> ReportOutcome | None:
    """The common report as two prepared statements in one transaction: a known study without a fidelity, whose
    engine decides from the reporting trial alone, an active trial, and the decision to go on (mark it alive,
    record the value). None otherwise (a fidelity, a stopping rule that reads other trials, a trial not active,
    a pause or a stop): nothing is kept, and the careful path below decides with the full rules."""
    study = db.known_studies.get((owner, name))
    if study is None or study.spec.fidelity is not None:
        return None
    resolved = resolve_engine(study.spec, study.engine, study.engine_options)
    if resolved.engine.decision_needs_history(resolved.options) or resolved.engine.plans_runs:
        return None
    try:
        async with db.direct_transaction() as conn:
            trial = await trial_store.beat_active_trial(conn, study, number, checkpoint)
            if trial is None:
                raise _NotCommon
            decision = resolved.engine.decide(study.spec, resolved.options, trial.view(), [])
            if decision.action is not Action.CONTINUE:
                raise _NotCommon
            await trial_store.record_measurement(conn, trial.id, step, values)
    except _NotCommon:
        return None
    return ReportOutcome(trial, decision)


def _at_budget(trial: TrialRecord, fidelity: Fidelity | None, step: float) -> bool:
    """A run trained to its budget pauses there, unless that is the end of training (then it is told)."""
    return (
        fidelity is not None
        and trial.budget is not None
        and step >= trial.budget - 1e-9
        and trial.budget < fidelity.max
    )


async def heartbeat(db: Database, owner: str, name: str, number: int) -> TrialRecord:
    """Record that the job evaluating an active trial is alive (between reports, e.g. in a long epoch)."""
    async with db.transaction() as conn:
        _, trial = await trial_store.locate_trial(conn, owner, name, number)
        alive = await trial_store.record_heartbeat(conn, trial.id)
        if alive is None:
            raise Conflict(f"trial {number} is {trial.state}; only an active trial sends heartbeats")
        return alive


async def add_trial(
    db: Database, owner: str, name: str, params: dict[str, Any], values: dict[str, float] | None
) -> TrialRecord:
    """Enqueue user-chosen params (handed out by the next ask) or record an already evaluated point."""
    async with db.transaction() as conn:
        study = await study_store.get_study(conn, owner, name)
        normalized = normalize_params(study.spec, params)
        if values is not None:
            check_complete_values(study.spec, values)
        state = TrialState.WAITING if values is None else TrialState.COMPLETED
        resolved = resolve_engine(study.spec, study.engine, study.engine_options)
        (trial,) = await new_trials.create_trials(
            conn,
            study,
            [NewTrial(normalized, None, resolved.first_budget())],
            source="user",
            state=state,
            values=values,
        )
        refill = values is not None and await _refresh_pool(conn, study, resolved)
    if refill:
        await queue_refill(db, study.id)
    return trial


async def get_trial(db: Database, owner: str, name: str, number: int) -> TrialRecord:
    async with db.transaction() as conn:
        study = await study_store.get_study(conn, owner, name)
        trial = await trial_store.get_trial(conn, study.id, number)
        measurements = await trial_store.measurements_of(conn, [trial.id])
        history = tuple(await trial_store.trial_events(conn, trial.id))
        return replace(trial, measurements=measurements[trial.id], history=history)


async def list_trials(
    db: Database,
    owner: str,
    name: str,
    *,
    states: list[TrialState],
    worker_id: str | None,
    after_number: int,
    limit: int,
    with_measurements: bool,
) -> list[TrialRecord]:
    async with db.transaction() as conn:
        study = await study_store.get_study(conn, owner, name)
        return await trial_store.list_trials(
            conn,
            study.id,
            states=states,
            worker_id=worker_id,
            after_number=after_number,
            limit=limit,
            with_measurements=with_measurements,
        )


async def best(db: Database, owner: str, name: str) -> list[TrialRecord]:
    """The best feasible trial for one objective, the Pareto-optimal feasible set for several."""
    async with db.transaction() as conn:
        study = await study_store.get_study(conn, owner, name)
        completed = await trial_store.list_trials(conn, study.id, states=[TrialState.COMPLETED])
    by_number = {t.number: t for t in completed}
    return [by_number[v.number] for v in best_trials(study.spec, [t.view() for t in completed])]
