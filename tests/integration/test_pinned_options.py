"""A study's engine options are pinned with every default filled in when it is created: a server upgrade that
changes a default never changes a running study (on PostgreSQL and SQLite)."""

from __future__ import annotations

import pytest
from pydantic import Field
from sqlalchemy import update

from service.core import asking, studies
from service.domain.caller import DEFAULT_NAMESPACE
from service.domain.spec import StudySpec
from service.engines.asha import AshaEngine, AshaOptions
from service.store.db import Database
from service.store.models import StudyRow

# With eta 3 asha's first rung on 1..81 is 81 / 3^3 = 3; with eta 9 it is the fidelity's min, 1.
SPEC = StudySpec.model_validate(
    {
        "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "objectives": [{"name": "loss", "goal": "minimize"}],
        "fidelity": {"name": "epoch", "min": 1, "max": 81},
        "engine": "asha",
    }
)


class UpgradedAshaOptions(AshaOptions):
    """asha's options as a later server version might ship them: a new default for eta."""

    eta: int = Field(default=9, ge=2, le=10)


async def _first_budget(db: Database, name: str) -> float | None:
    outcome = await asking.ask(db, DEFAULT_NAMESPACE, name, count=1, worker_id=None, fresh=True, wait_seconds=0)
    (trial,) = outcome.trials
    return trial.budget


async def test_a_changed_default_leaves_a_running_study_as_it_was(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = (await studies.create_study(db, DEFAULT_NAMESPACE, "before", SPEC)).study
    assert created.engine_options == {
        "stopping": "none",
        "stopping_grace": 0.0,
        "stopping_min_trials": 5,
        "eta": 3,
        "min_step": None,
    }
    assert await _first_budget(db, "before") == 3

    monkeypatch.setattr(AshaEngine, "Options", UpgradedAshaOptions)  # the server is upgraded
    assert await _first_budget(db, "before") == 3  # the running study keeps eta 3
    later = (await studies.create_study(db, DEFAULT_NAMESPACE, "after", SPEC)).study
    assert later.engine_options is not None and later.engine_options["eta"] == 9
    assert await _first_budget(db, "after") == 1

    # A study created before options were pinned has none stored: it keeps working, on today's defaults.
    async with db.transaction() as conn:
        await conn.execute(update(StudyRow).where(StudyRow.id == created.id).values(engine_options=None))
    assert await _first_budget(db, "before") == 1
