"""Prepared statements on PostgreSQL (straight through asyncpg) and SQLite (through SQLAlchemy): the same rows back,
JSON and timestamps included, a rolled-back transaction leaves nothing, and the common ask and report paths agree
with what the careful paths stored."""

from __future__ import annotations

from datetime import UTC

import pytest
from sqlalchemy import bindparam, select

from service.core import asking, trials
from service.core.studies import create_study, get_study
from service.domain.caller import DEFAULT_NAMESPACE
from service.domain.spec import StudySpec
from service.domain.trial import TrialState
from service.store import trials as trial_store
from service.store.db import Database
from service.store.models import TRIALS
from service.store.prepared import Prepared, constant

SPEC = StudySpec.model_validate(
    {
        "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "objectives": [{"name": "loss", "goal": "minimize"}],
        "engine": "random",
    }
)
BY_NUMBER = Prepared(
    select(TRIALS.c.number, TRIALS.c.params, TRIALS.c.created_at).where(
        TRIALS.c.number == bindparam("wanted"), TRIALS.c.state == constant(TrialState.ACTIVE.value)
    )
)


async def _ask(db: Database, count: int = 1, request_id: str | None = None) -> list[int]:
    outcome = await asking.ask(
        db, DEFAULT_NAMESPACE, "s", count=count, worker_id=None, fresh=False, wait_seconds=0, request_id=request_id
    )
    return [t.number for t in outcome.trials]


async def test_rows_come_back_decoded_on_both_backends(db: Database) -> None:
    await create_study(db, DEFAULT_NAMESPACE, "s", SPEC)
    await _ask(db)
    async with db.direct() as conn:
        (row,) = await conn.rows(BY_NUMBER, wanted=0)
    assert row["number"] == 0 and set(row["params"]) == {"x"} and row["created_at"].tzinfo is not None
    assert row["created_at"].utcoffset() == UTC.utcoffset(None)


async def test_a_rolled_back_transaction_keeps_nothing(db: Database) -> None:
    await create_study(db, DEFAULT_NAMESPACE, "s", SPEC)
    await _ask(db)
    study = db.known_studies[(DEFAULT_NAMESPACE, "s")]
    with pytest.raises(RuntimeError):
        async with db.direct_transaction() as conn:
            assert await trial_store.beat_active_trial(conn, study, 0, "ck") is not None
            raise RuntimeError("abandon")
    async with db.direct() as conn:
        (row,) = await conn.rows(BY_NUMBER, wanted=0)
    assert row["number"] == 0
    assert (await trials.get_trial(db, DEFAULT_NAMESPACE, "s", 0)).checkpoint is None


async def test_common_asks_and_reports_store_what_the_careful_paths_would(db: Database) -> None:
    await create_study(db, DEFAULT_NAMESPACE, "s", SPEC)
    assert await _ask(db) == [0]  # the careful path: the study becomes known
    assert await _ask(db, 3, request_id="r") == [1, 2, 3]  # the common path
    assert await _ask(db, 3, request_id="r") == [1, 2, 3]  # a retry: the same trials, nothing new
    outcome = await trials.report(db, DEFAULT_NAMESPACE, "s", 2, 1.0, {"loss": 0.5}, checkpoint="ck")
    assert outcome.decision.action.value == "continue" and outcome.trial.checkpoint == "ck"
    stored = await trials.get_trial(db, DEFAULT_NAMESPACE, "s", 2)
    assert [(m.step, m.values) for m in stored.measurements or ()] == [(1.0, {"loss": 0.5})]
    told = await trials.tell(db, DEFAULT_NAMESPACE, "s", 2, trials.Tell(TrialState.COMPLETED, {"loss": 0.4}, None))
    assert told.values == {"loss": 0.4}
    _, counts = await get_study(db, DEFAULT_NAMESPACE, "s")
    assert counts == {"active": 3, "completed": 1}


def test_an_expanding_parameter_is_refused() -> None:
    with pytest.raises(ValueError, match="constant"):
        Prepared(select(TRIALS.c.id).where(TRIALS.c.state.in_(["active", "paused"])))
