"""The ready pool of engines that plan runs (freeze_thaw and the like), on PostgreSQL and SQLite: a worker plans
runs ahead after a run pauses, and asks take resumes and new runs from the pool without waiting for a decision;
a pooled resume never hands out a trial another ask resumed meanwhile, nor one already paused at its budget."""

from __future__ import annotations

import pytest

from service.core import asking, trials
from service.core.studies import create_study
from service.domain.caller import DEFAULT_NAMESPACE
from service.domain.spec import StudySpec
from service.domain.trial import TrialState
from service.engines import ENGINES
from service.engines.base import NewRun, Plan, Resume, SuggestRequest
from service.engines.freeze_thaw.engine import FreezeThawEngine
from service.store import jobs as job_store
from service.store import pool as pool_store
from service.store import trials as trial_store
from service.store import workers as worker_store
from service.store.db import Database
from service.store.jobs import JobKind
from service.workers.runner import Worker, WorkerSettings

SPEC = StudySpec.model_validate(
    {
        "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "objectives": [{"name": "loss", "goal": "minimize"}],
        "fidelity": {"name": "epoch", "min": 1, "max": 30},
        "engine": "plan_ahead",
        "engine_options": {"rule": "entropy", "warmup_configs": 4},
    }
)
NEW_RUN = {"rule": "ahead"}


class PlanAhead(FreezeThawEngine):
    """A freeze_thaw with a fixed plan: resume every paused run below step 6 to step 6 (lowest number first), then
    new runs of one epoch; what the pool does with a plan is tested apart from what the model chooses."""

    name = "plan_ahead"

    def plan(self, request: SuggestRequest) -> Plan:
        paused = sorted(
            t.number for t in request.trials if t.state is TrialState.PAUSED and max(m.step for m in t.measurements) < 6
        )
        runs: list[Resume | NewRun] = [Resume(n, 6.0, f"thaw {n}") for n in paused]
        runs += [NewRun({"x": 0.1 * (i + 1)}, 1.0, NEW_RUN) for i in range(request.count)]
        return Plan(runs[: request.count])


@pytest.fixture
def db(db: Database, monkeypatch: pytest.MonkeyPatch) -> Database:
    """conftest's migrated database on both backends, with the fixed-plan engine registered."""
    monkeypatch.setitem(ENGINES, PlanAhead.name, PlanAhead())
    return db


async def _ask(db: Database, worker_id: str) -> asking.AskOutcome:
    return await asking.ask(db, DEFAULT_NAMESPACE, "s", count=1, worker_id=worker_id, fresh=False, wait_seconds=0)


async def _refill(db: Database, worker: Worker) -> None:
    """Run the study's queued refill, as a worker would."""
    job = await worker._claim()
    assert job is not None and job.kind is JobKind.REFILL
    await worker.process(job)


async def test_asks_take_planned_resumes_and_runs_from_the_pool(db: Database) -> None:
    study = (await create_study(db, DEFAULT_NAMESPACE, "s", SPEC)).study
    worker = Worker(db, WorkerSettings())
    async with db.transaction() as conn:
        await worker_store.register_worker(
            conn, worker_id=worker.id, hostname="test", pid=1, device="cpu", concurrency=1
        )
    warmup = [(await _ask(db, f"w{i}")).trials[0] for i in range(4)]  # Sobol runs, answered inline
    for trial in warmup[:2]:  # two pause at their budget; the other two still train
        await trials.report(db, DEFAULT_NAMESPACE, "s", trial.number, 3.0, {"loss": 1.0}, checkpoint=f"c{trial.number}")
    async with db.transaction() as conn:  # the pauses queued a refill (coalesced into one)
        assert await job_store.unfinished_refill(conn, study.id) is not None
    await _refill(db, worker)
    async with db.transaction() as conn:  # two runs train: two planned runs, the two resumes
        assert await pool_store.pool_size(conn, study.id) == 2

    (resumed,) = (outcome := await _ask(db, "w4")).trials
    assert outcome.pending is None  # no decision waited for
    assert (resumed.number, resumed.state, resumed.worker_id, resumed.budget) == (0, TrialState.ACTIVE, "w4", 6.0)
    assert resumed.resume_from == 3.0 and resumed.checkpoint == "c0"

    # Trial 1 is resumed by another path meanwhile: its pooled resume is dropped, never handed out twice.
    async with db.transaction() as conn:
        assert await trial_store.resume_paused(conn, study.id, 1, budget=6.0, worker_id="other", request_id=None)
    outcome = await _ask(db, "w5")
    assert outcome.trials == [] and outcome.pending is not None  # the pool is spent: a job plans the next run
    async with db.transaction() as conn:
        assert (await trial_store.get_trial(conn, study.id, 1)).worker_id == "other"
        assert await pool_store.pool_size(conn, study.id) == 0
    suggest = await worker._claim()
    assert suggest is not None and suggest.kind is JobKind.SUGGEST
    await worker.process(suggest)
    (planned,) = (await asking.get_study_job(db, DEFAULT_NAMESPACE, "s", outcome.pending.id, 0)).trials
    assert (planned.number, planned.budget, planned.engine_info) == (4, 1.0, NEW_RUN)

    # New runs come from the pool with the budget and info the plan gave them.
    await _refill(db, worker)  # queued by the ask that found other trials running
    (new,) = (outcome := await _ask(db, "w6")).trials
    assert outcome.pending is None and new.number == 5 and new.budget == 1.0 and new.engine_info == NEW_RUN
    assert new.state is TrialState.ACTIVE and new.worker_id == "w6"


async def test_a_pooled_resume_of_a_trial_paused_at_its_budget_is_dropped(db: Database) -> None:
    study = (await create_study(db, DEFAULT_NAMESPACE, "s", SPEC)).study
    (trial,) = (await _ask(db, "w0")).trials
    await trials.report(db, DEFAULT_NAMESPACE, "s", trial.number, 3.0, {"loss": 1.0})
    async with db.transaction() as conn:  # a plan made before the trial was last resumed: it is at 3 already
        await pool_store.replace_plan_pool(
            conn,
            study.id,
            [pool_store.PlannedRun(trial.params, 3.0, 0, None)],
            data_version=0,
            job_id=None,
            as_of_number=1,
        )
        pooled = await pool_store.fresh_pooled_suggestions(conn, study.id, 1, 5)
    outcome = await _ask(db, "w1")
    (started,) = outcome.trials  # still in the warm-up: a new Sobol run instead
    assert started.number == 1 and pooled[0].resume_number == 0
    async with db.transaction() as conn:
        paused = await trial_store.get_trial(conn, study.id, 0)
        assert paused.state is TrialState.PAUSED and paused.resume_from == 3.0
        assert await pool_store.pool_size(conn, study.id) == 0
