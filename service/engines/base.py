"""The engine interface: pure functions of a study's spec and trials, no HTTP and no database.

An engine proposes new parameters (`suggest`) and, for trials that report intermediate values,
decides whether training should continue, pause or stop (`decide`). The service loads what the
engine says it needs, calls it, and stores the result; the engine never sees how.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

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


class ModelEngineOptions(NoOptions):
    """Options every worker-computed engine shares: how its ready pool behaves."""

    pool_freshness: int = Field(default=1, ge=0, description="A pooled suggestion may be this many tells old.")
    pool_max: int = Field(default=8, ge=0, le=256, description="At most this many suggestions are precomputed.")


@dataclass
class EngineNotes:
    """What an engine tells the worker about one computation; the worker stores it.

    `memory` comes in as what the engine kept last time (warm-start state) and goes out as what it
    wants next time; `rung` names the step of the model-failure ladder that produced the answer.
    """

    memory: dict[str, Any] = field(default_factory=dict)
    rung: str | None = None
    fallback_reason: str | None = None


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
    device: str = "cpu"
    notes: EngineNotes = field(default_factory=EngineNotes)


class Engine(ABC):
    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    needs_history: ClassVar[bool] = False

    def unsupported_reason(self, spec: StudySpec) -> str | None:
        """Why this engine cannot serve `spec`, or None when it can."""
        return None

    def needs_worker(self, spec: StudySpec, options: BaseModel, finished: int) -> bool:
        """True when the next suggestion needs a model, so a worker computes it, never an API request.

        `finished` counts the study's trials with a final result; model-based engines answer their
        initial design inline and need a worker once there is data to model.
        """
        return False

    @abstractmethod
    def suggest(self, request: SuggestRequest) -> list[dict[str, Choice]]:
        """Return exactly `request.count` parameter dicts inside the search space."""

    def decide(self, spec: StudySpec, options: BaseModel, trial: TrialView, trials: Sequence[TrialView]) -> Decision:
        """Continue, pause or stop a trial that just reported; model-free engines always continue."""
        return CONTINUE
