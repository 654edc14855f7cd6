"""What the dashboard reads: each page's data in one transaction (the plots are drawn by the UI)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from service.domain.trial import TrialEvent
from service.errors import InvalidArgument
from service.store import browsing
from service.store import engine_state as engine_state_store
from service.store import pool as pool_store
from service.store import studies as study_store
from service.store import trials as trial_store
from service.store.browsing import Columns, StudySummary, TimelineRow, TrialQuery
from service.store.db import Database
from service.store.engine_state import EngineStatus
from service.store.records import StudyRecord, TrialRecord

CURVES_SHOWN = 200  # learning curves drawn on a study page: the latest trials that reported
TIMELINE_SHOWN = 2000  # trials on the timeline page: the latest ones
COMPARED = 12  # trials side by side on the compare page


async def studies_page(
    db: Database, owner: str, *, search: str, offset: int, limit: int
) -> tuple[list[StudySummary], int]:
    async with db.transaction() as conn:
        return await browsing.study_summaries(conn, owner, search=search, offset=offset, limit=limit)


@dataclass(frozen=True)
class StudyOverview:
    study: StudyRecord
    counts: dict[str, int]
    engine: EngineStatus
    pool_size: int
    completed: Columns
    curves: list[TrialRecord]
    stopped: list[tuple[int, dict[str, float | None]]] = field(default_factory=list)


async def study_overview(db: Database, owner: str, name: str) -> StudyOverview:
    async with db.transaction() as conn:
        study = await study_store.get_study(conn, owner, name)
        counts = await study_store.trial_counts(conn, study.id)
        engine = await engine_state_store.engine_status(conn, study.id)
        pool = await pool_store.pool_size(conn, study.id)
        completed = await browsing.completed_columns(conn, study)
        curves = await browsing.curves(conn, study.id, CURVES_SHOWN) if study.spec.fidelity else []
        stopped = await browsing.stopped_values(conn, study.id)
    return StudyOverview(study, counts, engine, pool, completed, curves, stopped)


async def completed_version(db: Database, owner: str, name: str) -> tuple[StudyRecord, tuple[int, int]]:
    """A study and the version of its set of completed trials (see store.browsing.completed_version)."""
    async with db.transaction() as conn:
        study = await study_store.get_study(conn, owner, name)
        return study, await browsing.completed_version(conn, study.id)


async def completed_columns(db: Database, study: StudyRecord) -> Columns:
    """A study's completed trials column by column: what the analysis views read."""
    async with db.transaction() as conn:
        return await browsing.completed_columns(conn, study)


async def timeline(db: Database, owner: str, name: str) -> tuple[StudyRecord, list[TimelineRow], int]:
    """A study, its latest TIMELINE_SHOWN trials that were handed out, and how many were handed out in all."""
    async with db.transaction() as conn:
        study = await study_store.get_study(conn, owner, name)
        rows, total = await browsing.timeline(conn, study.id, TIMELINE_SHOWN)
    return study, rows, total


async def compared(db: Database, owner: str, name: str, numbers: list[int]) -> tuple[StudyRecord, list[TrialRecord]]:
    """A study and the trials with these numbers (at most COMPARED), with their measurements."""
    if len(numbers) > COMPARED:
        raise InvalidArgument.one("trials", f"compare at most {COMPARED} trials at once, not {len(numbers)}")
    async with db.transaction() as conn:
        study = await study_store.get_study(conn, owner, name)
        return study, await browsing.trials_by_number(conn, study.id, numbers)


async def is_pareto_optimal(db: Database, study: StudyRecord, trial: TrialRecord) -> bool:
    """Whether the trial is on its multi-objective study's Pareto front (False for one objective)."""
    if len(study.spec.objectives) < 2:
        return False
    async with db.transaction() as conn:
        return await browsing.pareto_optimal(conn, study, trial)


async def trials_table(
    db: Database, owner: str, name: str, query: TrialQuery
) -> tuple[StudyRecord, list[TrialRecord], int]:
    async with db.transaction() as conn:
        study = await study_store.get_study(conn, owner, name)
        trials, total = await browsing.trial_page(conn, study, query)
    return study, trials, total


async def trial_detail(
    db: Database, owner: str, name: str, number: int
) -> tuple[StudyRecord, TrialRecord, list[TrialEvent]]:
    """A trial with its measurements and its pause and resume history."""
    async with db.transaction() as conn:
        study = await study_store.get_study(conn, owner, name)
        trial = await trial_store.get_trial(conn, study.id, number)
        measurements = await trial_store.measurements_of(conn, [trial.id])
        events = await trial_store.trial_events(conn, trial.id)
    return study, replace(trial, measurements=measurements[trial.id]), events
