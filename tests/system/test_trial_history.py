"""A trial's pause and resume history through a running server, on PostgreSQL and SQLite: every pause and resume
is kept (step, budget, worker, checkpoint, why), and the dashboard's trial page and the SDK show them."""

from __future__ import annotations

import html

import httpx

from asktell import Client

ASHA = {
    "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
    "objectives": [{"name": "loss", "goal": "minimize"}],
    "fidelity": {"name": "epoch", "min": 1, "max": 9},
    "engine": "asha",
}  # rungs 1, 3, 9


def _train_three_and_promote_the_best(api: httpx.Client, name: str) -> None:
    """Three runs pause at rung 1 (trial 0 best); w3's ask promotes trial 0, which then pauses at rung 3."""
    for i, loss in enumerate((0.1, 0.5, 0.9)):
        (trial,) = api.post(f"/v1/studies/{name}/ask", json={"worker_id": f"w{i}"}).json()["trials"]
        decision = api.post(
            f"/v1/studies/{name}/trials/{trial['number']}/report",
            json={"step": 1, "values": {"loss": loss}, "checkpoint": f"ck-{i}-1"},
        ).json()
        assert decision["action"] == "pause"
    (resumed,) = api.post(f"/v1/studies/{name}/ask", json={"worker_id": "w3"}).json()["trials"]
    assert (resumed["number"], resumed["resume_from"], resumed["budget"]) == (0, 1.0, 3.0)
    for step in (2, 3):
        decision = api.post(
            f"/v1/studies/{name}/trials/0/report",
            json={"step": step, "values": {"loss": 0.05}, "checkpoint": f"ck-0-{step}"},
        ).json()
    assert decision["action"] == "pause"


def test_the_trial_page_shows_checkpoints_and_the_pause_and_resume_history(api: httpx.Client, study_name: str) -> None:
    assert api.post("/v1/studies", json={"name": study_name, **ASHA}).status_code == 201
    _train_three_and_promote_the_best(api, study_name)
    page = api.get(f"/ui/studies/{study_name}/trials/0")
    assert page.status_code == 200
    text = html.unescape(page.text)
    history = text[text.index('id="history"') : text.index("</table>", text.index('id="history"'))]
    rows = history.split('<tr class="event-')[1:]
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
        ("paused", 1.0, 1.0, "w0", "ck-0-1"),
        ("resumed", 1.0, 3.0, "w3", "ck-0-1"),
        ("paused", 3.0, 3.0, "w3", "ck-0-3"),
    ]
    assert api.get(f"/v1/studies/{study_name}/trials").json()["trials"][0]["history"] is None
    paused_once = html.unescape(api.get(f"/ui/studies/{study_name}/trials/1").text)
    assert paused_once.count('<tr class="event-') == 1 and "left by w1" in paused_once
