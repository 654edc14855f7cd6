"""What the store hands back: plain frozen records, never live ORM rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.domain.spec import StudySpec
from service.domain.study import StudyState
from service.domain.trial import Measurement, TrialEvent, TrialState, TrialView


@dataclass(frozen=True)
class StudyRecord:
    id: int
    owner: str
    name: str
    spec: StudySpec
    engine: str
    seed: int
    state: StudyState
    next_trial_number: int
    created_at: datetime
    updated_at: datetime
    engine_options: dict[str, Any] | None = None  # pinned at creation (None: created before options were pinned)


@dataclass(frozen=True)
class TrialRecord:
    id: int
    study_id: int
    number: int
    params: dict[str, Any]
    state: TrialState
    worker_id: str | None
    values: dict[str, float | None] | None
    reason: str | None
    source: str
    budget: float | None
    resume_from: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    heartbeat_at: datetime | None = None  # last sign of life from the job evaluating it (report or heartbeat)
    measurements: tuple[Measurement, ...] | None = None  # None: not loaded
    engine_info: dict[str, Any] | None = None  # what the engine said about this suggestion (e.g. its branch)
    request_id: str | None = None  # the client's id of the ask that handed it out
    tell_request_id: str | None = None  # the client's id of the tell that finished it
    checkpoint: str | None = None  # the last checkpoint its training job reported
    history: tuple[TrialEvent, ...] | None = None  # its pauses and resumes; None: not loaded

    def view(self) -> TrialView:
        finite = {k: v for k, v in (self.values or {}).items() if v is not None}
        return TrialView(
            self.number, self.params, self.state, finite if self.values is not None else None, self.measurements or ()
        )
