"""A trial's timings from its pause and resume history: a resumed trial's running time leaves out the time it sat
paused (the history as stored and shown: tests/integration and tests/system, test_trial_history.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.domain.trial import TrialEvent, TrialEventKind, timings
from service.ui.views import duration_text

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_running_time_leaves_out_the_pauses() -> None:
    history = [
        TrialEvent(TrialEventKind.PAUSED, _at(10), 1.0),
        TrialEvent(TrialEventKind.RESUMED, _at(70), 1.0, 3.0),
        TrialEvent(TrialEventKind.PAUSED, _at(90), 3.0),
        TrialEvent(TrialEventKind.RESUMED, _at(100), 3.0, 9.0),
    ]
    finished = timings(T0, _at(130), 3.0, history, now=_at(500))
    assert finished is not None and (finished.running_seconds, finished.paused_seconds) == (60 * 60.0, 70 * 60.0)
    still_paused = timings(T0, None, 3.0, history[:3], now=_at(95))
    assert still_paused is not None and (still_paused.running_seconds, still_paused.paused_seconds) == (1800, 3900)
    running = timings(T0, None, None, [], now=_at(2))
    assert running is not None and (running.running_seconds, running.paused_seconds) == (120, 0)
    assert timings(None, None, None, [], now=T0) is None  # waiting: not started
    unknown = timings(T0, None, 1.0, [], now=_at(5))  # paused before its history was kept
    assert unknown is not None and unknown.running_seconds is None
    # A resume stamped by a host whose clock is behind never makes time negative.
    skewed = timings(
        T0,
        _at(20),
        1.0,
        [TrialEvent(TrialEventKind.PAUSED, _at(10), 1.0), TrialEvent(TrialEventKind.RESUMED, _at(9.9), 1.0, 3.0)],
        now=_at(30),
    )
    assert skewed is not None and skewed.running_seconds == 20 * 60 and skewed.paused_seconds == 0
    assert [duration_text(s) for s in (1.25, 185, 7620)] == ["1.2 s", "3 min 05 s", "2 h 07 min"]
