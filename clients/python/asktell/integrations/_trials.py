"""What the trackers log of a finished trial: its params, final values and curves, in plain Python types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asktell.client import Study, Trial


@dataclass
class TrialRecord:
    study: str
    number: int
    state: str
    params: dict[str, Any]
    values: dict[str, float]
    reason: str | None
    curves: list[tuple[float, dict[str, float]]] = field(default_factory=list)  # (step, values), step order
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def run_name(self) -> str:
        return f"{self.study}-trial-{self.number}"

    @property
    def tags(self) -> dict[str, str]:
        tags = {"asktell.study": self.study, "asktell.trial": str(self.number), "asktell.state": self.state}
        if self.reason:
            tags["asktell.reason"] = self.reason[:500]
        return tags


def record_of(study: Study, trial: Trial) -> TrialRecord:
    """The trial as the server has it now, with its measurements (the objective's copy may lack them)."""
    full = study.trial(trial.number)
    curves = sorted(
        ((float(m["step"]), {k: float(v) for k, v in m["values"].items()}) for m in full.measurements or []),
        key=lambda point: point[0],
    )
    values = {k: float(v) for k, v in (full.values or {}).items() if v is not None}
    return TrialRecord(
        study.name, full.number, full.state, full.params, values, full.reason, curves, full.started_at, full.finished_at
    )


def integral_step(step: float) -> int:
    """Trackers count steps in integers; a fractional fidelity step (0.5 epoch) is rounded."""
    return round(step)
