"""The hypervolume report of a stored study: its history is computed once per count of completed trials."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.core import hypervolume as hypervolume_core
from service.core.studies import create_study
from service.core.trials import add_trial
from service.domain.hypervolume import hypervolume_history
from service.domain.spec import StudySpec
from service.domain.trial import TrialView
from service.store.db import Database, upgrade

MINIMIZE_BOTH = StudySpec.model_validate(
    {
        "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "objectives": [
            {"name": "loss", "goal": "minimize", "threshold": 10},
            {"name": "seconds", "goal": "minimize", "threshold": 10, "cost": True},
        ],
        "constraints": [{"name": "memory", "op": "<=", "bound": 4}],
    }
)


async def test_a_history_is_computed_once_per_count_of_completed_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'histories.db'}"
    upgrade(url)
    db = Database(url)
    computed: list[int] = []

    def counting(spec: StudySpec, trials: list[TrialView], cancelled: object) -> object:
        computed.append(len(trials))
        return hypervolume_history(spec, trials)

    monkeypatch.setattr(hypervolume_core, "hypervolume_history", counting)
    try:
        await create_study(db, "default", "mo", MINIMIZE_BOTH)
        for loss in (3.0, 2.0):
            await add_trial(db, "default", "mo", {"x": 0.5}, {"loss": loss, "seconds": 5 - loss, "memory": 1})
        first = await hypervolume_core.report(db, "default", "mo", lambda: False)
        again = await hypervolume_core.report(db, "default", "mo", lambda: False)
        assert computed == [2] and again.history is first.history
        await add_trial(db, "default", "mo", {"x": 0.5}, {"loss": 1.0, "seconds": 1.0, "memory": 1})
        grown = await hypervolume_core.report(db, "default", "mo", lambda: False)
        assert computed == [2, 3] and grown.history.final > first.history.final
    finally:
        await db.dispose()
