"""SDK behaviour that needs no server: retries, backoff bounds, error mapping, configuration."""

from __future__ import annotations

import httpx
import pytest

from asktell import AsyncClient, Client, ConflictError, ServerError, ServiceUnavailableError
from asktell import _protocol as api
from asktell.client import Study

STUDY = {"id": 1, "name": "s", "state": "active", "engine": "gp", "spec": {}}


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr("asktell.client.time.sleep", slept.append)
    return slept


def _flaky(failures: int, status: int = 503) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) <= failures:
            return httpx.Response(status, json={"error": {"code": "internal", "message": "try later", "details": []}})
        return httpx.Response(
            200, json={"trials": [], "id": 1, "name": "s", "state": "active", "engine": "sobol", "spec": {}}
        )

    return httpx.MockTransport(handle), seen


def test_idempotent_calls_are_retried_with_bounded_backoff(no_sleep: list[float]) -> None:
    transport, seen = _flaky(3)
    Client("http://x", transport=transport).get_study("s")
    assert len(seen) == 4
    assert len(no_sleep) == 3 and all(0 < s <= api.RetryPolicy().cap_seconds for s in no_sleep)


def test_asks_and_tells_are_retried_with_one_request_id() -> None:
    """Every ask and tell carries a request id, the same on each retry: the server applies it once."""
    import json

    transport, seen = _flaky(1)
    study = Study(Client("http://x", transport=transport), STUDY)
    study.ask()
    assert [r.url.path for r in seen] == ["/v1/studies/s/ask", "/v1/studies/s/ask"]
    ids = [json.loads(r.content)["request_id"] for r in seen]
    assert ids[0] == ids[1] and len(ids[0]) == 32
    transport, seen = _flaky(0)
    Study(Client("http://x", transport=transport), STUDY).ask()
    assert json.loads(seen[0].content)["request_id"] != ids[0]  # a new ask, a new id

    transport, seen = _flaky(2)
    client = Client("http://x", transport=transport)
    client._call(api.tell("s", 3, {"loss": 1.0}, False, False, False, None))
    tell_ids = {json.loads(r.content)["request_id"] for r in seen}
    assert len(seen) == 3 and len(tell_ids) == 1


def test_client_errors_are_not_retried() -> None:
    transport, seen = _flaky(1, status=409)
    with pytest.raises(ConflictError):
        Client("http://x", transport=transport).get_study("s")
    assert len(seen) == 1


def test_retries_give_up_after_max_retries() -> None:
    transport, seen = _flaky(100)
    with pytest.raises(ServerError):
        Client("http://x", transport=transport, max_retries=2).get_study("s")
    assert len(seen) == 3


def test_connection_errors_become_service_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ServiceUnavailableError, match="cannot reach"):
        Client("http://x", transport=httpx.MockTransport(refuse), max_retries=1).get_study("s")


def test_url_and_token_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASKTELL_URL", "http://env-host:9000/")
    monkeypatch.setenv("ASKTELL_TOKEN", "s3cret")
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"studies": [], "next_page_token": None})

    assert Client(transport=httpx.MockTransport(handle)).list_studies() == []
    assert str(seen[0].url).startswith("http://env-host:9000/v1/studies")
    assert seen[0].headers["authorization"] == "Bearer s3cret"


def test_ask_polls_a_pending_job_until_its_trials_exist() -> None:
    trial = {"id": 7, "number": 3, "state": "active", "params": {"x": 0.5}}
    replies = iter(
        [
            httpx.Response(
                202,
                json={"trials": [], "pending": {"id": 11, "state": "queued", "count": 1, "attempts": 0, "error": None}},
            ),
            httpx.Response(
                202,
                json={
                    "trials": [],
                    "pending": {"id": 11, "state": "running", "count": 1, "attempts": 1, "error": None},
                },
            ),
            httpx.Response(200, json={"trials": [trial], "pending": None}),
        ]
    )
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return next(replies)

    study = Study(Client("http://x", transport=httpx.MockTransport(handle)), STUDY)
    (got,) = study.ask(worker_id="w")
    assert got.number == 3 and seen == ["/v1/studies/s/ask", "/v1/studies/s/jobs/11", "/v1/studies/s/jobs/11"]


async def test_async_client_retries_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_wait(_: float) -> None:
        return None

    monkeypatch.setattr("asktell.aio.asyncio.sleep", no_wait)
    calls = 0

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"id": 1, "name": "s", "state": "active", "engine": "sobol", "spec": {}})

    async with AsyncClient("http://x", transport=httpx.MockTransport(handle)) as client:
        assert (await client.get_study("s")).name == "s"
    assert calls == 2
