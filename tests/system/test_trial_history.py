"""A trial's pause and resume history and its timings, on PostgreSQL and SQLite: every pause and resume is kept
(step, budget, worker, checkpoint, why), the dashboard's trial page shows them, and a resumed trial's running time
leaves out the time it sat paused."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

import httpx

from asktell import Client
from service.core import asking, trials
from service.core.studies import create_study
from service.domain.access import DEFAULT_NAMESPACE
from service.domain.spec import StudySpec
from service.domain.trial import TrialEvent, TrialEventKind, TrialState, timings
from service.store import trials as trial_store
from service.store.db import Database
from service.ui.views import duration_text

ASHA = {"params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "objectives": [{"name": "loss", "goal": "minimize"}],
        "fidelity": {"name": "epoch", "min": 1, "max": 9}, "engine": "asha"}  # rungs 1, 3, 9
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_running_time_leaves_out_the_pauses() -> None:
    history = [TrialEvent(TrialEventKind.PAUSED, _at(10), 1.0), TrialEvent(TrialEventKind.RESUMED, _at(70), 1.0, 3.0),
               TrialEvent(TrialEventKind.PAUSED, _at(90), 3.0), TrialEvent(TrialEventKind.RESUMED, _at(100), 3.0, 9.0)]
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
    skewed = timings(T0, _at(20), 1.0, [TrialEvent(TrialEventKind.PAUSED, _at(10), 1.0),
                                        TrialEvent(TrialEventKind.RESUMED, _at(9.9), 1.0, 3.0)], now=_at(30))
    assert skewed is not None and skewed.running_seconds == 20 * 60 and skewed.paused_seconds == 0
    assert [duration_text(s) for s in (1.25, 185, 7620)] == ["1.2 s", "3 min 05 s", "2 h 07 min"]


def _train_three_and_promote_the_best(api: httpx.Client, name: str) -> None:
    """Three runs pause at rung 1 (trial 0 best); w3's ask promotes trial 0, which then pauses at rung 3."""
    for i, loss in enumerate((0.1, 0.5, 0.9)):
        (trial,) = api.post(f"/v1/studies/{name}/ask", json={"worker_id": f"w{i}"}).json()["trials"]
        decision = api.post(f"/v1/studies/{name}/trials/{trial['number']}/report",
                            json={"step": 1, "values": {"loss": loss}, "checkpoint": f"ck-{i}-1"}).json()
        assert decision["action"] == "pause"
    (resumed,) = api.post(f"/v1/studies/{name}/ask", json={"worker_id": "w3"}).json()["trials"]
    assert (resumed["number"], resumed["resume_from"], resumed["budget"]) == (0, 1.0, 3.0)
    for step in (2, 3):
        decision = api.post(f"/v1/studies/{name}/trials/0/report",
                            json={"step": step, "values": {"loss": 0.05}, "checkpoint": f"ck-0-{step}"}).json()
    assert decision["action"] == "pause"


def test_the_trial_page_shows_checkpoints_and_the_pause_and_resume_history(api: httpx.Client,
                                                                           study_name: str) -> None:
    assert api.post("/v1/studies", json={"name": study_name, **ASHA}).status_code == 201
    _train_three_and_promote_the_best(api, study_name)
    page = api.get(f"/ui/studies/{study_name}/trials/0")
    assert page.status_code == 200
    text = html.unescape(page.text)
    history = text[text.index('id="history"'):text.index("</table>", text.index('id="history"'))]
    rows = history.split("<tr class=\"event-")[1:]
    assert [row.split('"')[0] for row in rows] == ["paused", "resumed", "paused"]
    assert "at 1.0" in rows[0] and "left by w0" in rows[0] and "ck-0-1" in rows[0] and "reached its budget" in rows[0]
    assert "from 1.0" in rows[1] and "to 3.0" in rows[1] and "w3" in rows[1] and "ck-0-1" in rows[1]
    assert "asha: top 1 of 3 at step 1, promoted to 3" in rows[1]
    assert "at 3.0" in rows[2] and "left by w3" in rows[2] and "ck-0-3" in rows[2]
    assert 'id="checkpoint"><code>ck-0-3</code>' in text
    assert 'id="running-time"' in text and 'id="paused-time"' in text
    with Client(str(api.base_url)) as client:  # the API and the SDK carry the same history
        history = client.get_study(study_name).trial(0).history
    assert history is not None
    assert [(e["kind"], e["step"], e["budget"], e["worker_id"], e["checkpoint"]) for e in history] == [
        ("paused", 1.0, 1.0, "w0", "ck-0-1"), ("resumed", 1.0, 3.0, "w3", "ck-0-1"),
        ("paused", 3.0, 3.0, "w3", "ck-0-3")]
    assert api.get(f"/v1/studies/{study_name}/trials").json()["trials"][0]["history"] is None
    paused_once = html.unescape(api.get(f"/ui/studies/{study_name}/trials/1").text)
    assert paused_once.count('<tr class="event-') == 1 and "left by w1" in paused_once


async def test_a_silent_resumed_run_paused_again_is_in_its_history(db: Database) -> None:
    study = (await create_study(db, DEFAULT_NAMESPACE, "s", StudySpec.model_validate(ASHA))).study
    (trial,) = (await asking.ask(db, DEFAULT_NAMESPACE, "s", count=1, worker_id="w0", fresh=False,
                                 wait_seconds=0)).trials
    await trials.report(db, DEFAULT_NAMESPACE, "s", trial.number, 1.0, {"loss": 0.1}, checkpoint="ck-1")
    async with db.transaction() as conn:
        assert await trial_store.resume_paused(conn, study.id, 0, budget=3.0, worker_id="w1", request_id=None,
                                               reason="promoted")
        assert await trial_store.resume_paused(conn, study.id, 0, budget=3.0, worker_id="w2", request_id=None) is None
        stale = await trial_store.give_up_if_silent(conn, trial.id, datetime.now(UTC) + timedelta(hours=1),
                                                    reason="stale: no report or heartbeat for 1800 s")
        assert stale is not None and stale.state is TrialState.PAUSED
        events = await trial_store.trial_events(conn, trial.id)
    assert [(e.kind.value, e.step, e.budget, e.worker_id, e.checkpoint) for e in events] == [
        ("paused", 1.0, 1.0, "w0", "ck-1"), ("resumed", 1.0, 3.0, "w1", "ck-1"), ("paused", 1.0, 3.0, "w1", "ck-1")]
    assert [e.reason for e in events] == [None, "promoted", "stale: no report or heartbeat for 1800 s"]
    assert events[0].at <= events[1].at <= events[2].at
