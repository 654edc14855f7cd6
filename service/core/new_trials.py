"""Engine output becomes trials here, and only here: inline suggestions, pooled suggestions, a worker's stored
suggestions and plans, retries and user-added points.

Trial numbers come from the study's locked counter (`allocate_trial_numbers`), so they are gap-free under any
concurrency. Points an engine computed from data that changed since (other trials were created meanwhile, by the
pool or another job reading the same data) are kept apart from those trials: closer than `MIN_SEPARATION` they
count as the same point. A pooled one is then dropped (the pool holds others), a computed answer a caller waits
for is replaced by the study's Sobol point for its trial number, and its engine info says so.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.spec import StudySpec
from service.domain.trial import TrialState, TrialView
from service.engines import ResolvedEngine
from service.engines.base import NewRun, NoOptions, Resume, SuggestRequest
from service.engines.encoding import LISTED_TOLERANCE, MIN_SEPARATION, listed_columns, to_unit
from service.engines.sobol import sobol_points
from service.store import pool as pool_store
from service.store import studies as study_store
from service.store import trials as trial_store
from service.store.records import StudyRecord, TrialRecord

REDRAWN = {"redrawn": "sobol"}  # engine info of a point replaced by the study's Sobol point


@dataclass(frozen=True)
class NewTrial:
    """One trial to create: its params, what the engine said of it, and the step it trains to."""

    params: dict[str, Any]
    info: dict[str, Any] | None = None
    budget: float | None = None


def new_trials_of(
    suggestions: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]] | None, budget: float | None
) -> list[NewTrial]:
    """An engine's suggestions with their per-suggestion info (None: it said nothing of them), all at `budget`."""
    if infos is None:
        return [NewTrial(params, None, budget) for params in suggestions]
    return [NewTrial(params, info, budget) for params, info in zip(suggestions, infos, strict=True)]


class TakenPoints:
    """Points already taken, in the unit cube: a new point with the same integer and categorical values as one of
    them and its floats within MIN_SEPARATION (L-infinity) is the same suggestion."""

    def __init__(self, spec: StudySpec, params: Sequence[dict[str, Any]]) -> None:
        self.spec = spec
        self.points = to_unit(spec, params)
        self.listed = listed_columns(spec)

    def covers(self, params: dict[str, Any]) -> bool:
        if not self.points.size:
            return False
        gaps = np.abs(self.points - to_unit(self.spec, [params]))
        gaps[:, self.listed] = gaps[:, self.listed] > LISTED_TOLERANCE
        return float(gaps.max(axis=1).min()) < MIN_SEPARATION

    def add(self, params: dict[str, Any]) -> None:
        point = to_unit(self.spec, [params])
        self.points = np.vstack([self.points, point]) if self.points.size else point


def sobol_params(spec: StudySpec, seed: int, number: int) -> dict[str, Any]:
    """The study's Sobol point for trial `number`: what stands in for a point that cannot be used."""
    (params,) = sobol_points(SuggestRequest(spec, NoOptions(), 1, seed, number))
    return params


def kept_apart(
    spec: StudySpec, seed: int, computed: Sequence[NewTrial], taken: Sequence[dict[str, Any]], first_number: int
) -> list[NewTrial]:
    """`computed`, numbered from `first_number`, with each one that lands on a `taken` point (or on an earlier one
    of these) replaced by the study's Sobol point for its number; its info says so."""
    points = TakenPoints(spec, taken)
    kept: list[NewTrial] = []
    for number, trial in enumerate(computed, start=first_number):
        if points.covers(trial.params):
            trial = replace(trial, params=sobol_params(spec, seed, number), info={**(trial.info or {}), **REDRAWN})
        points.add(trial.params)
        kept.append(trial)
    return kept


async def create_trials(
    conn: AsyncConnection,
    study: StudyRecord,
    new: Sequence[NewTrial],
    *,
    source: str,
    state: TrialState = TrialState.ACTIVE,
    worker_id: str | None = None,
    request_id: str | None = None,
    values: dict[str, float] | None = None,
    first_number: int | None = None,
) -> list[TrialRecord]:
    """Insert `new` as consecutive trials, numbered from `first_number` when the caller reserved the numbers
    already (a seeded engine's points depend on them), else from newly allocated ones. Runs that share a budget
    go in one statement."""
    if not new:
        return []
    first = (
        first_number if first_number is not None else await study_store.allocate_trial_numbers(conn, study.id, len(new))
    )
    created: list[TrialRecord] = []
    for budget, runs in itertools.groupby(new, key=lambda trial: trial.budget):
        group = list(runs)
        created += await trial_store.insert_trials(
            conn,
            study_id=study.id,
            first_number=first,
            params=[t.params for t in group],
            state=state,
            source=source,
            worker_id=worker_id,
            budget=budget,
            values=values,
            engine_info=[t.info for t in group],
            request_id=request_id,
        )
        first += len(group)
    return created


async def create_inline(
    conn: AsyncConnection,
    study: StudyRecord,
    resolved: ResolvedEngine,
    count: int,
    *,
    history: Sequence[TrialView],
    budget: float | None,
    worker_id: str | None,
    request_id: str | None,
    source: str | None = None,
) -> list[TrialRecord]:
    """Trials a model-free engine (or a model engine's initial design) suggests right here, seeded by their
    trial numbers."""
    first = await study_store.allocate_trial_numbers(conn, study.id, count)
    request = SuggestRequest(
        spec=study.spec, options=resolved.options, count=count, seed=study.seed, sequence_start=first, trials=history
    )
    suggested = resolved.engine.suggest(request)
    return await create_trials(
        conn,
        study,
        new_trials_of(suggested.params, suggested.info, budget),
        source=source or resolved.engine.name,
        worker_id=worker_id,
        request_id=request_id,
        first_number=first,
    )


async def create_computed(
    conn: AsyncConnection,
    study: StudyRecord,
    computed: Sequence[NewTrial],
    *,
    computed_from: int,
    source: str,
    worker_id: str | None,
    request_id: str | None,
) -> list[TrialRecord]:
    """Trials from suggestions a worker computed when the study's next trial number was `computed_from`: one that
    lands on a trial created since (or on an earlier one of these) is replaced by the study's Sobol point for its
    number."""
    first = await study_store.allocate_trial_numbers(conn, study.id, len(computed))
    taken = await trial_store.params_numbered_from(conn, study.id, computed_from)
    return await create_trials(
        conn,
        study,
        kept_apart(study.spec, study.seed, computed, taken, first),
        source=source,
        worker_id=worker_id,
        request_id=request_id,
        first_number=first,
    )


async def resume(
    conn: AsyncConnection, study: StudyRecord, choice: Resume, *, worker_id: str | None, request_id: str | None
) -> TrialRecord | None:
    """Hand the paused trial an engine chose out again; None when another ask resumed it first."""
    return await trial_store.resume_paused(
        conn,
        study.id,
        choice.number,
        budget=choice.budget,
        worker_id=worker_id,
        request_id=request_id,
        reason=choice.reason,
    )


async def apply_plan(
    conn: AsyncConnection,
    study: StudyRecord,
    planned: Sequence[Resume | NewRun],
    *,
    first_budget: float | None,
    worker_id: str | None,
    request_id: str | None,
) -> list[TrialRecord]:
    """Resume the paused runs an engine's plan chose and start its new runs, each with its own budget. A resume
    another ask took first is replaced by the new run the engine gave instead, else by the study's Sobol point at
    the engine's first budget."""
    trials: list[TrialRecord] = []
    starts: list[NewRun | None] = []
    for item in planned:
        if isinstance(item, NewRun):
            starts.append(item)
            continue
        resumed = await resume(conn, study, item, worker_id=worker_id, request_id=request_id)
        if resumed is None:
            starts.append(item.instead)
        else:
            trials.append(resumed)
    if not starts:
        return trials
    first = await study_store.allocate_trial_numbers(conn, study.id, len(starts))
    new = [
        NewTrial(start.params, start.info, start.budget)
        if start is not None
        else NewTrial(sobol_params(study.spec, study.seed, number), dict(REDRAWN), first_budget or 0)
        for number, start in enumerate(starts, start=first)
    ]
    return trials + await create_trials(
        conn, study, new, source=study.engine, worker_id=worker_id, request_id=request_id, first_number=first
    )


async def create_from_pool(
    conn: AsyncConnection,
    study: StudyRecord,
    count: int,
    *,
    freshness: int,
    budget: float | None,
    worker_id: str | None,
    request_id: str | None,
) -> tuple[list[TrialRecord], bool]:
    """Take fresh pooled suggestions (at most `freshness` results behind the study's data), skipping any that sit
    on top of a running trial or of a trial the engine did not know of when it computed the pool (another job may
    have proposed the same point meanwhile, and that trial may have finished already).

    An engine that plans runs pools each with its own budget, and pools resumes: a pooled resume hands its paused
    trial out again if it still is paused below that budget (the conditional update in `resume_paused`, so it
    never goes to two workers), and is dropped otherwise (another ask resumed it, or it finished): the trial
    itself is untouched, and the next plan decides about it again.

    Also says whether other trials are running, which decides if the pool should be refilled now.
    """
    running = await trial_store.params_in_state(conn, study.id, TrialState.ACTIVE)
    pooled = await pool_store.fresh_pooled_suggestions(conn, study.id, freshness, count + 4)
    if not pooled:
        return [], bool(running)
    first_unknown = min(p.as_of_number if p.as_of_number is not None else 0 for p in pooled)
    taken = TakenPoints(study.spec, running + await trial_store.params_numbered_from(conn, study.id, first_unknown))
    chosen: list[NewTrial] = []
    resumed: list[TrialRecord] = []
    used: list[int] = []
    for suggestion in pooled:
        if len(chosen) + len(resumed) == count:
            break
        used.append(suggestion.id)
        if suggestion.resume_number is not None:
            assert suggestion.budget is not None
            choice = Resume(suggestion.resume_number, suggestion.budget, (suggestion.engine_info or {}).get("resumed"))
            trial = await resume(conn, study, choice, worker_id=worker_id, request_id=request_id)
            if trial is not None:
                resumed.append(trial)
            continue
        if taken.covers(suggestion.params):
            continue  # a running trial already covers it: drop it
        chosen.append(
            NewTrial(
                suggestion.params,
                suggestion.engine_info,
                suggestion.budget if suggestion.budget is not None else budget,
            )
        )
        taken.add(suggestion.params)
    await pool_store.delete_pooled(conn, used)
    return resumed + await create_trials(
        conn, study, chosen, source=study.engine, worker_id=worker_id, request_id=request_id
    ), bool(running)
