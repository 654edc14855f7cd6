"""What an engine answers to a report (continue, pause, stop), and the options model that takes no options."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


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
