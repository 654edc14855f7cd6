"""What every training callback does: report one metric at a step, keep the decision, end the trial when told."""

from __future__ import annotations

import math

from asktell._models import Decision
from asktell.client import Trial
from asktell.errors import TrialStopped


class Reporter:
    """Reports a framework's metric to a trial under the study's metric name and remembers the last decision."""

    def __init__(self, trial: Trial, report_as: str) -> None:
        self.trial = trial
        self.report_as = report_as
        self.decision: Decision | None = None

    def report(self, step: float, value: float, checkpoint: str | None = None) -> Decision:
        """Report `value` at `step`. A value that is not finite (a diverged run) is not sent: the server refuses
        it, and the run's loss stays what the framework says; training goes on."""
        value = float(value)
        if not math.isfinite(value):
            return Decision("continue")
        self.decision = self.trial.report(step, {self.report_as: value}, checkpoint=checkpoint)
        return self.decision

    @property
    def ended(self) -> bool:
        """The service stopped or paused the trial."""
        return self.decision is not None and self.decision.action in ("stop", "pause")

    def raise_if_stopped(self) -> None:
        """Raise `TrialStopped` if the service stopped or paused the trial (nothing otherwise)."""
        if self.decision is not None:
            self.decision.raise_if_stopped()

    def stopped(self) -> TrialStopped:
        assert self.decision is not None
        return TrialStopped(
            self.decision.reason or f"{self.decision.action} decided by the service", action=self.decision.action
        )


def last_value(history: list[float] | list[tuple[float, float]]) -> float:
    """The newest entry of a metric's history (a cross-validation entry is a (mean, std) pair)."""
    latest = history[-1]
    return float(latest[0] if isinstance(latest, tuple) else latest)
