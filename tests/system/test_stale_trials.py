"""Silent trials: failed as stale after the study's stale_after, re-queued under retry_failed; heartbeats (and
reports, and the SDK's keep_alive thread) keep a trial alive."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import pytest

from asktell import Client
from tests.support import BACKENDS, RunningServer, ServerFactory, make_spec, wait_until


@pytest.fixture(scope="module", params=BACKENDS)
def sweeping(request: pytest.FixtureRequest, module_servers: ServerFactory) -> RunningServer:
    """A server that sweeps for stale trials every 0.2 s."""
    return module_servers(request.param, {"ASKTELL_STALE_SWEEP_SECONDS": "0.2"})


def _study(api: httpx.Client, **spec: Any) -> str:
    name = f"stale-{secrets.token_hex(4)}"
    response = api.post("/v1/studies", json={"name": name, **make_spec(engine="random", **spec)})
    assert response.status_code == 201, response.text
    return name


def _trial(api: httpx.Client, study: str, number: int) -> dict[str, Any]:
    return dict(api.get(f"/v1/studies/{study}/trials/{number}").json())


def test_a_silent_trial_fails_as_stale_and_is_retried(sweeping: RunningServer) -> None:
    with httpx.Client(base_url=sweeping.url, timeout=30) as api:
        study = _study(api, stale_after=1.5, retry_failed=1)
        silent, beating = api.post(f"/v1/studies/{study}/ask", json={"count": 2}).json()["trials"]
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:  # one trial reports and sends heartbeats, the other says nothing
            assert api.post(f"/v1/studies/{study}/trials/{beating['number']}/heartbeat").status_code == 200
            time.sleep(0.3)
        wait_until(lambda: _trial(api, study, silent["number"])["state"] == "failed", 10, "not failed as stale")
        failed = _trial(api, study, silent["number"])
        assert failed["reason"].startswith("stale: no report or heartbeat for 1.5 s")
        assert _trial(api, study, beating["number"])["state"] == "active"
        api.post(f"/v1/studies/{study}/trials/{beating['number']}/tell", json={"values": {"loss": 0.5}})

        (retry,) = api.get(f"/v1/studies/{study}/trials", params={"state": "waiting"}).json()["trials"]
        assert retry["params"] == silent["params"] and retry["source"] == "retry"
        assert retry["engine_info"] == {"retry_of": silent["number"], "retry_attempt": 1}
        (handed,) = api.post(f"/v1/studies/{study}/ask", json={}).json()["trials"]
        assert handed["number"] == retry["number"]
        # The retry goes silent too: retry_failed=1 allows no third attempt.
        wait_until(lambda: _trial(api, study, retry["number"])["state"] == "failed", 10, "retry not failed")
        time.sleep(0.6)
        assert api.get(f"/v1/studies/{study}/trials", params={"state": "waiting"}).json()["trials"] == []
        # A late tell of a stale trial is refused: its slot was given to the retry.
        late = api.post(f"/v1/studies/{study}/trials/{silent['number']}/tell", json={"values": {"loss": 1.0}})
        assert late.status_code == 409


def test_a_told_failure_is_retried_up_to_the_limit(sweeping: RunningServer) -> None:
    with httpx.Client(base_url=sweeping.url, timeout=30) as api:
        study = _study(api, retry_failed=2)
        (trial,) = api.post(f"/v1/studies/{study}/ask", json={}).json()["trials"]
        params, attempts = trial["params"], []
        for _ in range(3):
            api.post(f"/v1/studies/{study}/trials/{trial['number']}/tell", json={"state": "failed", "reason": "OOM"})
            attempts.append(trial["number"])
            waiting = api.get(f"/v1/studies/{study}/trials", params={"state": "waiting"}).json()["trials"]
            if not waiting:
                break
            (trial,) = api.post(f"/v1/studies/{study}/ask", json={}).json()["trials"]
            assert trial["params"] == params
        assert len(attempts) == 3  # the original and two retries
        assert api.get(f"/v1/studies/{study}").json()["trial_counts"] == {"failed": 3}


def test_keep_alive_sends_heartbeats_while_user_code_runs(sweeping: RunningServer) -> None:
    with Client(sweeping.url) as client:
        params = make_spec()
        study = client.create_study(
            f"alive-{secrets.token_hex(4)}", params["params"], params["objectives"], engine="random", stale_after=1.0
        )
        assert study.spec["stale_after"] == 1.0
        (trial,) = study.ask()
        with trial.keep_alive(interval=0.25):
            time.sleep(2.5)  # a long silent training step
        assert trial.refresh().state == "active"
        trial.tell({"loss": 0.1})
        assert trial.state == "completed"


def test_a_silent_resumed_trial_goes_back_to_paused(sweeping: RunningServer) -> None:
    """Its checkpoint is still good: the run is paused again for a later ask, not failed."""
    with httpx.Client(base_url=sweeping.url, timeout=30) as api:
        name = f"stale-asha-{secrets.token_hex(4)}"
        api.post(
            "/v1/studies",
            json={
                "name": name,
                "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
                "stale_after": 1.0,
                "objectives": [{"name": "loss", "goal": "minimize"}],
                "fidelity": {"name": "epoch", "min": 1, "max": 9},
                "engine": "asha",
            },
        ).raise_for_status()
        for value in (0.1, 0.5, 0.9):  # three runs pause at rung 1; the best is promoted
            (trial,) = api.post(f"/v1/studies/{name}/ask", json={}).json()["trials"]
            api.post(
                f"/v1/studies/{name}/trials/{trial['number']}/report",
                json={"step": 1, "values": {"loss": value}, "checkpoint": f"ckpt-{trial['number']}"},
            )
        (resumed,) = api.post(f"/v1/studies/{name}/ask", json={}).json()["trials"]
        assert resumed["number"] == 0 and resumed["resume_from"] == 1 and resumed["budget"] == 3
        wait_until(lambda: _trial(api, name, 0)["state"] == "paused", 10, "the silent resumed trial to pause")
        back = _trial(api, name, 0)
        assert back["checkpoint"] == "ckpt-0" and back["reason"] is None and back["worker_id"] is None
        (again,) = api.post(f"/v1/studies/{name}/ask", json={}).json()["trials"]
        assert again["number"] == 0 and again["resume_from"] == 1  # still the one to promote
