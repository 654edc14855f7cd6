"""Engine freeze_thaw in a worker: a plan (resume a paused run, or a spare new run) applied to a study stored in
SQLite, with a fixed plan so that the worker's part is tested apart from the model's choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.domain.spec import StudySpec
from service.domain.trial import TrialState
from service.engines import ENGINES
from service.engines.base import NewRun, Plan, Resume, SuggestRequest
from service.engines.freeze_thaw.engine import FreezeThawEngine, FreezeThawOptions
from tests.training import curve_spec, fidelity

FIDELITY = fidelity(30)


def _spec(**options: object) -> StudySpec:
    return curve_spec("freeze_thaw", 30, **options)


class ThawFirst(FreezeThawEngine):
    """A freeze_thaw whose plan is fixed: thaw the lowest-numbered paused run; what the worker does with a plan is
    tested apart from what the model chooses."""

    name = "thaw_first"
    target: int | None = None
    instead: NewRun | None = None

    def plan(self, request: SuggestRequest) -> Plan:
        options = request.options
        assert isinstance(options, FreezeThawOptions)
        number = (
            self.target
            if self.target is not None
            else min(t.number for t in request.trials if t.state is TrialState.PAUSED)
        )
        return Plan([Resume(number, 6.0, instead=self.instead)])


async def test_a_worker_applies_a_plan_by_resuming_the_paused_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.core import asking, trials
    from service.core.studies import create_study
    from service.store import workers as worker_store
    from service.store.db import Database, upgrade
    from service.workers.runner import Worker, WorkerSettings

    engine = ThawFirst()
    monkeypatch.setitem(ENGINES, engine.name, engine)
    url = f"sqlite:///{tmp_path / 'plan.db'}"
    upgrade(url)
    db = Database(url)
    try:
        await create_study(db, "default", "s", _spec(rule="entropy").model_copy(update={"engine": engine.name}))
        for i in range(4):  # the warm-up: Sobol runs answered inline, paused at their first budget
            outcome = await asking.ask(db, "default", "s", count=1, worker_id=f"w{i}", fresh=False, wait_seconds=0)
            (trial,) = outcome.trials
            assert trial.budget == 3.0 and trial.resume_from is None
            await trials.report(db, "default", "s", trial.number, 3.0, {"loss": 1.0 + i}, checkpoint=f"ckpt-{i}")
        worker = Worker(db, WorkerSettings())
        async with db.transaction() as conn:
            await worker_store.register_worker(
                conn, worker_id=worker.id, hostname="test", pid=1, device="cpu", concurrency=1
            )
        pending = await asking.ask(db, "default", "s", count=1, worker_id="w9", fresh=False, wait_seconds=0)
        assert pending.pending is not None
        job = await worker._claim()
        assert job is not None
        await worker.process(job)
        done = await asking.get_study_job(db, "default", "s", pending.pending.id, 0)
        (resumed,) = done.trials
        assert (resumed.number, resumed.state, resumed.worker_id) == (0, TrialState.ACTIVE, "w9")
        assert resumed.resume_from == 3.0 and resumed.budget == 6.0 and resumed.checkpoint == "ckpt-0"

        # A run another ask took meanwhile is not resumed twice: the worker starts a new Sobol run instead.
        engine.target = 0
        pending = await asking.ask(db, "default", "s", count=1, worker_id="w10", fresh=False, wait_seconds=0)
        job = await worker._claim()
        assert job is not None and pending.pending is not None
        await worker.process(job)
        (fresh,) = (await asking.get_study_job(db, "default", "s", pending.pending.id, 0)).trials
        assert fresh.number == 4 and fresh.budget == 3.0 and fresh.engine_info == {"redrawn": "sobol"}

        # With a spare in the plan, the lost race starts the engine's own new run, with its budget and info.
        engine.instead = NewRun({"x": 0.25}, 1.0, {"rule": "spare"})
        pending = await asking.ask(db, "default", "s", count=1, worker_id="w11", fresh=False, wait_seconds=0)
        job = await worker._claim()
        assert job is not None and pending.pending is not None
        await worker.process(job)
        (spare,) = (await asking.get_study_job(db, "default", "s", pending.pending.id, 0)).trials
        assert (spare.number, spare.params, spare.budget, spare.engine_info) == (5, {"x": 0.25}, 1.0, {"rule": "spare"})
        assert spare.state is TrialState.ACTIVE and spare.worker_id == "w11"
    finally:
        await db.dispose()
