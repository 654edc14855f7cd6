"""Read-only views of what the server returns, shared by the sync and async objects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Decision:
    """The engine's answer to a report: keep training, pause (to be resumed later), or stop."""

    action: str
    reason: str | None = None

    @property
    def should_stop(self) -> bool:
        """Stop training now: the trial is already finished as stopped on the server."""
        return self.action == "stop"

    @property
    def should_pause(self) -> bool:
        """Checkpoint and release the worker: a later ask hands the trial out again with `resume_from` set."""
        return self.action == "pause"

    def raise_if_stopped(self) -> None:
        """Raise `TrialStopped` on a stop or pause decision: one line in a training loop run by `optimize`."""
        if self.action in ("stop", "pause"):
            from asktell.errors import TrialStopped

            raise TrialStopped(self.reason or f"{self.action} decided by the service", action=self.action)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass(frozen=True)
class HypervolumePoint:
    trial: int
    hypervolume: float
    finished_at: datetime | None


@dataclass(frozen=True)
class HypervolumeHistory:
    """How the dominated hypervolume grew: one point per completed trial, in finishing order."""

    reference_point: dict[str, float | None]
    hypervolume: float
    points: list[HypervolumePoint]
    approximate: bool = False  # estimated (more than 5 objectives), not exact

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HypervolumeHistory:
        points = [HypervolumePoint(p["trial"], p["hypervolume"], _time(p.get("finished_at"))) for p in data["history"]]
        return cls(dict(data["reference_point"]), data["hypervolume"], points, bool(data.get("approximate")))


class TrialFields:
    """A trial as last seen from the server."""

    _data: dict[str, Any]

    def _load(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def id(self) -> int:
        return int(self._data["id"])

    @property
    def number(self) -> int:
        return int(self._data["number"])

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._data["params"])

    @property
    def state(self) -> str:
        return str(self._data["state"])

    @property
    def values(self) -> dict[str, float | None] | None:
        values = self._data.get("values")
        return dict(values) if values is not None else None

    @property
    def reason(self) -> str | None:
        return self._data.get("reason")

    @property
    def worker_id(self) -> str | None:
        return self._data.get("worker_id")

    @property
    def source(self) -> str:
        return str(self._data.get("source", ""))

    @property
    def budget(self) -> float | None:
        """The fidelity step to train to, for studies with a fidelity."""
        return self._data.get("budget")

    @property
    def resume_from(self) -> float | None:
        """The step a paused trial resumes from."""
        return self._data.get("resume_from")

    @property
    def checkpoint(self) -> str | None:
        """Where a paused trial's training state was saved (what the job last reported), if anywhere."""
        return self._data.get("checkpoint")

    @property
    def measurements(self) -> list[dict[str, Any]] | None:
        return self._data.get("measurements")

    @property
    def history(self) -> list[dict[str, Any]] | None:
        """Its pauses and resumes, oldest first (`kind`, `at`, `step`, `budget`, `worker_id`, `checkpoint`,
        `reason`), in `study.trial(number)`; None in listings and ask answers."""
        return self._data.get("history")

    @property
    def engine_info(self) -> dict[str, Any]:
        """What the engine said of this suggestion, e.g. `{"branch": "thompson"}` for engine egreedy; empty
        for trials the engine said nothing of (added by hand, initial design)."""
        return dict(self._data.get("engine_info") or {})

    @property
    def heartbeat_at(self) -> datetime | None:
        return _time(self._data.get("heartbeat_at"))

    @property
    def created_at(self) -> datetime | None:
        return _time(self._data.get("created_at"))

    @property
    def started_at(self) -> datetime | None:
        return _time(self._data.get("started_at"))

    @property
    def finished_at(self) -> datetime | None:
        return _time(self._data.get("finished_at"))

    def to_dict(self) -> dict[str, Any]:
        """The server's JSON for this trial, e.g. for `--json` output or logging."""
        return dict(self._data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(number={self.number}, state={self.state!r}, params={self.params})"


class StudyFields:
    """A study as last seen from the server."""

    _data: dict[str, Any]

    def _load(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def name(self) -> str:
        return str(self._data["name"])

    @property
    def id(self) -> int:
        return int(self._data["id"])

    @property
    def state(self) -> str:
        return str(self._data["state"])

    @property
    def engine(self) -> str:
        return str(self._data["engine"])

    @property
    def engine_options(self) -> dict[str, Any] | None:
        """The engine's options with every default filled in, pinned when the study was created (a server upgrade
        that changes a default leaves the study as it was); None for studies created before options were pinned."""
        options = self._data.get("engine_options")
        return dict(options) if options is not None else None

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self._data["spec"])

    @property
    def trial_counts(self) -> dict[str, int] | None:
        """Trials per state: in single-study reads and in `list_studies(summary=True)` (else None)."""
        return self._data.get("trial_counts")

    @property
    def best_value(self) -> float | None:
        """A single-objective study's best feasible value, in `list_studies(summary=True)` (else None)."""
        return self._data.get("best_value")

    def to_dict(self) -> dict[str, Any]:
        """The server's JSON for this study."""
        return dict(self._data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, engine={self.engine!r}, state={self.state!r})"
