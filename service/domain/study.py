"""A study's life: only an active study hands out trials; paused and completed ones keep their data."""

from __future__ import annotations

from enum import StrEnum


class StudyState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
