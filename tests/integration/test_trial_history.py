"""A trial's pause and resume history as stored, on PostgreSQL and SQLite: a silent resumed run that goes back to
paused keeps every event, with who left it and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.core import asking, trials
from service.core.studies import create_study
from service.domain.caller import DEFAULT_NAMESPACE
from service.domain.spec import StudySpec
from service.domain.trial import TrialState
from service.store import trials as trial_store
from service.store.db import Database

ASHA = {
    "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
    "objectives": [{"name": "loss", "goal": "minimize"}],
    "fidelity": {"name": "epoch", "min": 1, "max": 9},
    "engine": "asha",
}  # rungs 1, 3, 9


async def test_a_silent_resumed_run_paused_again_is_in_its_history(db: Database) -> None:
    study = (await create_study(db, DEFAULT_NAMESPACE, "s", StudySpec.model_validate(ASHA))).study
    (trial,) = (
        await asking.ask(db, DEFAULT_NAMESPACE, "s", count=1, worker_id="w0", fresh=False, wait_seconds=0)
    ).trials
    await trials.report(db, DEFAULT_NAMESPACE, "s", trial.number, 1.0, {"loss": 0.1}, checkpoint="ck-1")
    async with db.transaction() as conn:
        assert await trial_store.resume_paused(
            conn, study.id, 0, budget=3.0, worker_id="w1", request_id=None, reason="promoted"
        )
        assert await trial_store.resume_paused(conn, study.id, 0, budget=3.0, worker_id="w2", request_id=None) is None
        stale = await trial_store.give_up_if_silent(
            conn, trial.id, datetime.now(UTC) + timedelta(hours=1), reason="stale: no report or heartbeat for 1800 s"
        )
        assert stale is not None and stale.state is TrialState.PAUSED
        events = await trial_store.trial_events(conn, trial.id)
    assert [(e.kind.value, e.step, e.budget, e.worker_id, e.checkpoint) for e in events] == [
        ("paused", 1.0, 1.0, "w0", "ck-1"),
        ("resumed", 1.0, 3.0, "w1", "ck-1"),
        ("paused", 1.0, 3.0, "w1", "ck-1"),
    ]
    assert [e.reason for e in events] == [None, "promoted", "stale: no report or heartbeat for 1800 s"]
    assert events[0].at <= events[1].at <= events[2].at
