"""Client request ids: a retried ask or tell returns the first attempt's result and changes nothing."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support import RunningServer, make_spec, start_worker, wait_until


def _ask(api: httpx.Client, study: str, request_id: str, count: int = 1, **extra: object) -> httpx.Response:
    return api.post(f"/v1/studies/{study}/ask", json={"count": count, "request_id": request_id, **extra})


def test_a_retried_ask_returns_the_same_trials(api: httpx.Client, study: str) -> None:
    first = _ask(api, study, "req-1", count=3)
    again = _ask(api, study, "req-1", count=3)
    assert first.status_code == again.status_code == 200
    numbers = [t["number"] for t in first.json()["trials"]]
    assert len(numbers) == 3 and [t["number"] for t in again.json()["trials"]] == numbers
    assert [t["number"] for t in _ask(api, study, "req-2").json()["trials"]] == [3]
    assert api.get(f"/v1/studies/{study}").json()["trial_counts"] == {"active": 4}


def test_concurrent_attempts_of_one_ask_hand_out_one_set(api: httpx.Client, study: str) -> None:
    """Retries that race the first attempt (a client whose answer was slow) still get one set of trials."""

    def attempt(_: int) -> list[int]:
        with httpx.Client(base_url=str(api.base_url), timeout=30) as own:
            return [t["number"] for t in _ask(own, study, "racing", count=2).json()["trials"]]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(attempt, range(8)))
    assert all(a == answers[0] for a in answers) and len(answers[0]) == 2
    assert api.get(f"/v1/studies/{study}").json()["trial_counts"] == {"active": 2}


def test_concurrent_attempts_of_one_ask_on_a_known_study_hand_out_one_set(api: httpx.Client, study: str) -> None:
    """The same race once the server knows the study, so that every attempt takes the prepared-statement path of
    a model-free ask: one set of trials still, and the numbers stay gap-free."""
    assert [t["number"] for t in _ask(api, study, "first").json()["trials"]] == [0]

    def attempt(_: int) -> list[int]:
        with httpx.Client(base_url=str(api.base_url), timeout=30) as own:
            return [t["number"] for t in _ask(own, study, "racing", count=2).json()["trials"]]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(attempt, range(8)))
    assert all(a == answers[0] for a in answers) and answers[0] == [1, 2]
    assert [t["number"] for t in _ask(api, study, "after").json()["trials"]] == [3]
    assert api.get(f"/v1/studies/{study}").json()["trial_counts"] == {"active": 4}


def test_a_retried_ask_gets_its_enqueued_trial_back(api: httpx.Client, study: str) -> None:
    api.post(f"/v1/studies/{study}/trials", json={"params": {"lr": 0.01, "layers": 2, "act": "relu"}})
    first = _ask(api, study, "takes-enqueued").json()["trials"]
    assert first[0]["source"] == "user"
    assert _ask(api, study, "takes-enqueued").json()["trials"] == first


def test_a_retried_ask_answers_even_once_the_study_is_paused(api: httpx.Client, study: str) -> None:
    first = _ask(api, study, "before-pause").json()["trials"]
    api.put(f"/v1/studies/{study}/state", json={"state": "paused"})
    assert _ask(api, study, "before-pause").json()["trials"] == first
    assert _ask(api, study, "after-pause").status_code == 409


def test_a_retried_tell_returns_the_first_result(api: httpx.Client, study: str) -> None:
    (trial,) = _ask(api, study, "to-tell").json()["trials"]
    tell = f"/v1/studies/{study}/trials/{trial['number']}/tell"
    first = api.post(tell, json={"values": {"loss": 0.25}, "request_id": "tell-1"})
    assert first.status_code == 200
    # The same id with another body (a client that rebuilt the body on retry) gets the stored result back.
    retry = api.post(tell, json={"values": {"loss": 0.5}, "request_id": "tell-1"})
    assert retry.status_code == 200 and retry.json()["values"] == {"loss": 0.25}
    other = api.post(tell, json={"values": {"loss": 0.5}, "request_id": "tell-2"})
    assert other.status_code == 409
    assert api.get(f"/v1/studies/{study}/trials/{trial['number']}").json()["values"] == {"loss": 0.25}


def test_request_ids_are_validated(api: httpx.Client, study: str) -> None:
    bad = _ask(api, study, "has spaces")
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "request_id"


def test_a_retried_ask_waits_for_the_job_of_the_first_attempt(server: RunningServer, tmp_path: Path) -> None:
    """A model-based ask: the retry finds the first attempt's pending job, then its trials; no second job."""
    if not server.database_url.startswith("postgresql"):
        pytest.skip("engine workers in their own processes need PostgreSQL")
    name = f"idem-gp-{secrets.token_hex(4)}"
    with httpx.Client(base_url=server.url, timeout=60) as api:
        options = {"initial_design": 2, "pool_max": 0, "num_restarts": 2, "raw_samples": 64}
        spec = make_spec(
            engine="gp", engine_options=options, params=[{"name": "x", "type": "float", "low": 0, "high": 1}]
        )
        assert api.post("/v1/studies", json={"name": name, **spec}).status_code == 201
        for i, trial in enumerate(_ask(api, name, "design", count=2).json()["trials"]):
            api.post(f"/v1/studies/{name}/trials/{trial['number']}/tell", json={"values": {"loss": float(i)}})
        worker = start_worker(server.database_url, tmp_path / "worker.log")
        try:
            wait_until(lambda: any(w["alive"] for w in api.get("/v1/workers").json()["workers"]), 60, "no worker")
            first = _ask(api, name, "modelled", wait_seconds=0)
            retry = _ask(api, name, "modelled", wait_seconds=0)
            if first.status_code == 202:
                assert retry.status_code in (200, 202)
                if retry.status_code == 202:
                    assert retry.json()["pending"]["id"] == first.json()["pending"]["id"]
            done = _ask(api, name, "modelled", wait_seconds=60)
            assert done.status_code == 200
            (trial,) = done.json()["trials"]
            assert trial["source"] == "gp"
            assert [t["number"] for t in _ask(api, name, "modelled").json()["trials"]] == [trial["number"]]
            assert api.get(f"/v1/studies/{name}").json()["trial_counts"] == {"completed": 2, "active": 1}
        finally:
            worker.terminate()
            worker.wait(timeout=30)
