"""The hypervolume history of a study, for the REST API and the dashboard: computed off the event loop,
stopped when the caller goes away, and remembered per study and count of completed trials.

Completed trials never change, so a study's history only changes when one more trial completes: a page
refreshed every few seconds, or several readers of one study, cost one computation per new result.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from service.domain.hypervolume import HypervolumeHistory, hypervolume_history
from service.domain.trial import TrialState, TrialView
from service.store import studies as study_store
from service.store import trials as trial_store
from service.store.browsing import Columns
from service.store.db import Database
from service.store.records import StudyRecord, TrialRecord

REMEMBERED_HISTORIES = 64
_histories: OrderedDict[tuple[int, int, int], HypervolumeHistory] = OrderedDict()


async def history(
    study: StudyRecord, completed: Sequence[TrialView], cancelled: Callable[[], bool]
) -> HypervolumeHistory:
    """The study's history over `completed`, its completed trials in finishing order."""
    key = (study.id, len(completed), completed[-1].number if completed else -1)
    found = _histories.get(key)
    if found is None:
        found = await asyncio.to_thread(hypervolume_history, study.spec, completed, cancelled)
        _histories[key] = found
        if len(_histories) > REMEMBERED_HISTORIES:
            _histories.popitem(last=False)
    _histories.move_to_end(key)
    return found


def in_finishing_order(completed: Columns) -> list[TrialView]:
    """A study's completed trials, read as columns, as trials (their metrics only) in the order they finished."""
    names = list(completed.values)
    order = sorted(
        range(len(completed.numbers)),
        key=lambda i: (completed.finished[i] if completed.finished[i] is not None else -math.inf, completed.numbers[i]),
    )
    return [
        TrialView(
            completed.numbers[i],
            {},
            TrialState.COMPLETED,
            {name: value for name in names if (value := completed.values[name][i]) is not None},
        )
        for i in order
    ]


@dataclass(frozen=True)
class HypervolumeReport:
    study: StudyRecord
    history: HypervolumeHistory
    trials: list[TrialRecord]  # the completed trials of `history`, in its order


async def report(db: Database, owner: str, name: str, cancelled: Callable[[], bool]) -> HypervolumeReport:
    """Dominated hypervolume after each completed trial, in the order the trials finished."""
    async with db.transaction() as conn:
        study = await study_store.get_study(conn, owner, name)
        completed = await trial_store.list_trials(conn, study.id, states=[TrialState.COMPLETED])
    completed.sort(key=lambda t: (t.finished_at or t.created_at, t.number))
    found = await history(study, [t.view() for t in completed], cancelled)
    by_number = {t.number: t for t in completed}
    return HypervolumeReport(study, found, [by_number[n] for n in found.numbers])
