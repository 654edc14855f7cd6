"""The engine interface: pure functions of a study's spec and trials, no HTTP and no database.

An engine proposes new parameters (`suggest`) and, for trials that report intermediate values,
decides whether training should continue, pause or stop (`decide`). The service loads what the
engine says it needs, calls it, and stores the result; the engine never sees how.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from service.domain.spec import Choice, StudySpec
from service.domain.trial import TrialView


class NoOptions(BaseModel):
    """Options model of an engine that takes none: any key is rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Action(StrEnum):
    CONTINUE = "continue"
    PAUSE = "pause"
    STOP = "stop"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str | None = None


CONTINUE = Decision(Action.CONTINUE)


@dataclass(frozen=True)
class SuggestRequest:
    """What an engine gets to propose `count` new trials.

    `sequence_start` is the number the first new trial will carry; with `seed` it makes seeded
    engines reproducible no matter which process serves the ask. `trials` holds the study's history
    (with measurements) only for engines whose `needs_history` is true, and is empty otherwise.
    """

    spec: StudySpec
    options: BaseModel
    count: int
    seed: int
    sequence_start: int
    trials: Sequence[TrialView] = ()


class Engine(ABC):
    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    needs_history: ClassVar[bool] = False

    def unsupported_reason(self, spec: StudySpec) -> str | None:
        """Why this engine cannot serve `spec`, or None when it can."""
        return None

    @abstractmethod
    def suggest(self, request: SuggestRequest) -> list[dict[str, Choice]]:
        """Return exactly `request.count` parameter dicts inside the search space."""

    def decide(self, spec: StudySpec, options: BaseModel, trial: TrialView, trials: Sequence[TrialView]) -> Decision:
        """Continue, pause or stop a trial that just reported; model-free engines always continue."""
        return CONTINUE
