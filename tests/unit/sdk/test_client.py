"""The Python SDK and CLI against a scripted transport (no server): requests, errors, retries, output."""

from __future__ import annotations

import io
import json
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import asktell
from asktell import (
    AlreadyExistsError,
    AsktellError,
    AskTimeoutError,
    AsyncClient,
    AuthenticationError,
    Client,
    ConfigurationError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    ServerError,
    ServiceUnavailableError,
    cli,
)
from asktell import _protocol as api

URL = "http://asktell.test"
Reply = httpx.Response | Exception


# Scripted server ------------------------------------------------------------------------------------------------


def study_json(name: str = "mlp", **changes: Any) -> dict[str, Any]:
    spec = {
        "params": [
            {"name": "lr", "type": "float", "low": 1e-4, "high": 0.1, "log": True, "choices": None},
            {
                "name": "act",
                "type": "categorical",
                "low": None,
                "high": None,
                "log": False,
                "choices": ["relu", "gelu"],
            },
        ],
        "objectives": [{"name": "val_loss", "goal": "minimize"}],
        "constraints": [],
        "fidelity": None,
        "engine": "auto",
        "engine_options": {},
        "seed": None,
    }
    return {
        "id": 1,
        "name": name,
        "owner": "default",
        "state": "active",
        "engine": "sobol",
        "seed": 7,
        "spec": spec,
        "created_at": "2026-11-22T10:00:00Z",
        "updated_at": "2026-11-22T10:00:00Z",
        "trial_counts": None,
        **changes,
    }


def trial_json(number: int = 0, **changes: Any) -> dict[str, Any]:
    return {
        "id": 100 + number,
        "number": number,
        "state": "active",
        "params": {"lr": 0.01, "act": "relu"},
        "values": None,
        "reason": None,
        "worker_id": "node-7",
        "source": "sobol",
        "budget": None,
        "resume_from": None,
        "created_at": "2026-11-22T10:00:00Z",
        "started_at": "2026-11-22T10:00:01Z",
        "finished_at": None,
        **changes,
    }


def error(status: int, code: str, message: str, details: list[dict[str, str]] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message, "details": details or []}})


def ok(body: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


UNAVAILABLE = error(503, "internal", "database restarting")


class Server:
    """Answers requests with scripted replies in order (the last one repeats) and records every request."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        # A fresh copy each time: a client binds the response it gets to its own (sync or async) stream.
        return httpx.Response(reply.status_code, headers=reply.headers, content=reply.read())

    def client(self, **options: Any) -> Client:
        return Client(URL, transport=httpx.MockTransport(self), **options)

    def async_client(self, **options: Any) -> AsyncClient:
        return AsyncClient(URL, transport=httpx.MockTransport(self), **options)

    def study(self, **options: Any) -> asktell.Study:
        return asktell.Study(self.client(**options), study_json())

    def trial(self, **options: Any) -> asktell.Trial:
        return asktell.Trial(self.client(**options), "mlp", trial_json())

    @property
    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]

    @property
    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]


@pytest.fixture(autouse=True)
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every backoff delay, sync or async, recorded instead of slept."""
    delays: list[float] = []

    async def async_sleep(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr("asktell.client.time", types.SimpleNamespace(sleep=delays.append))
    monkeypatch.setattr("asktell.aio.asyncio", types.SimpleNamespace(sleep=async_sleep))
    return delays


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASKTELL_URL", raising=False)
    monkeypatch.delenv("ASKTELL_TOKEN", raising=False)


# Errors ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "bad_request", InvalidArgumentError),
        (422, "invalid_argument", InvalidArgumentError),
        (404, "not_found", NotFoundError),
        (409, "conflict", ConflictError),
        (409, "already_exists", AlreadyExistsError),
        (401, "unauthenticated", AuthenticationError),
        (403, "permission_denied", AuthenticationError),
        (500, "internal", ServerError),
        (503, "internal", ServerError),
        (418, "teapot", AsktellError),
    ],
)
def test_each_status_maps_to_its_exception_with_the_servers_message(
    status: int, code: str, expected: type[AsktellError]
) -> None:
    details = [{"field": "params[0].low", "reason": "must be less than high"}]
    server = Server(error(status, code, f"params[0].low: must be less than high ({status})", details))
    with pytest.raises(AsktellError) as raised:
        server.client(max_retries=0).get_study("mlp")
    assert type(raised.value) is expected
    assert (raised.value.status, raised.value.code) == (status, code)
    assert raised.value.details == [("params[0].low", "must be less than high")]
    assert str(raised.value) == raised.value.message == f"params[0].low: must be less than high ({status})"


def test_already_exists_is_a_conflict() -> None:
    with pytest.raises(ConflictError):
        Server(error(409, "already_exists", "study 'mlp' exists")).client().create_study(
            name="mlp", params=[], objectives=[], if_exists="error"
        )


def test_an_error_body_that_is_not_the_servers_envelope_still_maps_by_status() -> None:
    server = Server(httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(ServerError, match="HTTP 502 Bad Gateway") as raised:
        server.client(max_retries=0).list_studies()
    assert raised.value.code is None and raised.value.details == []


# Retries --------------------------------------------------------------------------------------------------------

IDEMPOTENT: dict[str, Callable[[Server], Any]] = {
    "get study": lambda s: s.client().get_study("mlp"),
    "delete study": lambda s: s.client().delete_study("mlp"),
    "pause (PUT)": lambda s: s.study().pause(),
    "create if_exists=get": lambda s: s.client().create_study(name="mlp", params=[], objectives=[], if_exists="get"),
    "ask with a worker_id": lambda s: s.study().ask(n=1, worker_id="node-7"),
    # Every ask carries a request id (the same on each retry), so the server hands its trials out once.
    "plain ask": lambda s: s.study().ask(),
    "fresh ask": lambda s: s.study().ask(worker_id="node-7", fresh=True),
    "report": lambda s: s.trial().report(step=1, values={"val_loss": 0.5}),
    "tell": lambda s: s.trial().tell({"val_loss": 0.4}),
    "get trial": lambda s: s.study().trial(0),
    "best": lambda s: s.study().best_trials(),
}
NOT_IDEMPOTENT: dict[str, Callable[[Server], Any]] = {
    "create if_exists=error": lambda s: s.client().create_study(
        name="mlp", params=[], objectives=[], if_exists="error"
    ),
    "add trial": lambda s: s.study().add_trial(params={"lr": 0.01}),
}
# A body every route above can read.
ANY_OK = ok(
    {**study_json(), **trial_json(), "trials": [], "action": "continue", "trial": trial_json(), "next_page_token": None}
)


@pytest.mark.parametrize("call", IDEMPOTENT.values(), ids=IDEMPOTENT.keys())
@pytest.mark.parametrize(
    "failure",
    [UNAVAILABLE, httpx.ConnectError("refused"), httpx.ReadTimeout("slow")],
    ids=["503", "connect", "timeout"],
)
def test_idempotent_calls_are_retried(call: Callable[[Server], Any], failure: Reply, slept: list[float]) -> None:
    server = Server(failure, failure, ANY_OK)
    call(server)
    assert len(server.requests) == 3 and len(slept) == 2
    assert len(set(server.paths)) == 1


@pytest.mark.parametrize("call", NOT_IDEMPOTENT.values(), ids=NOT_IDEMPOTENT.keys())
def test_calls_that_could_act_twice_are_not_retried(call: Callable[[Server], Any], slept: list[float]) -> None:
    server = Server(UNAVAILABLE, ANY_OK)
    with pytest.raises(ServerError, match="database restarting"):
        call(server)
    server = Server(httpx.ConnectError("refused"), ANY_OK)
    with pytest.raises(ServiceUnavailableError, match=f"cannot reach the asktell server at {URL}"):
        call(server)
    assert len(server.requests) == 1
    server = Server(httpx.ReadTimeout("slow"), ANY_OK)
    with pytest.raises(ServiceUnavailableError, match=r"no answer from .* may have been applied\): ReadTimeout"):
        call(server)
    assert len(server.requests) == 1 and slept == []


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422, 429])
def test_client_errors_are_never_retried(status: int, slept: list[float]) -> None:
    server = Server(error(status, "x", "no"), ANY_OK)
    with pytest.raises(AsktellError):
        server.client().get_study("mlp")
    assert len(server.requests) == 1 and slept == []


def test_retries_stop_after_max_retries() -> None:
    server = Server(UNAVAILABLE)
    with pytest.raises(ServerError, match="database restarting"):
        server.client(max_retries=3).get_study("mlp")
    assert len(server.requests) == 4
    server = Server(httpx.ConnectError("refused"))
    with pytest.raises(ServiceUnavailableError, match="ConnectError: refused"):
        server.client(max_retries=2).get_study("mlp")
    assert len(server.requests) == 3


def test_backoff_doubles_from_a_tenth_of_a_second_up_to_five(
    monkeypatch: pytest.MonkeyPatch, slept: list[float]
) -> None:
    monkeypatch.setattr("asktell._protocol.random.uniform", lambda low, high: high)
    with pytest.raises(ServerError):
        Server(UNAVAILABLE).client(max_retries=9).get_study("mlp")
    assert slept == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0])


def test_jitter_keeps_each_delay_between_half_and_all_of_its_step(slept: list[float]) -> None:
    with pytest.raises(ServerError):
        Server(UNAVAILABLE).client(max_retries=12).get_study("mlp")
    steps = [min(5.0, 0.1 * 2**attempt) for attempt in range(12)]
    assert all(step / 2 <= delay <= step for delay, step in zip(slept, steps, strict=True))


def test_retries_go_on_until_the_deadline_not_a_count(monkeypatch: pytest.MonkeyPatch, slept: list[float]) -> None:
    """A server restart takes seconds to a minute: five quick retries (about 3 s) gave up long before it was back."""
    monkeypatch.setattr("asktell._protocol.time", types.SimpleNamespace(monotonic=lambda: sum(slept)))
    monkeypatch.setattr("asktell._protocol.random.uniform", lambda low, high: high)
    server = Server(UNAVAILABLE)
    with pytest.raises(ServerError):
        server.client(retry_seconds=60).get_study("mlp")
    assert sum(slept) == pytest.approx(60) and max(slept) == 5.0 and len(server.requests) == len(slept) + 1
    slept.clear()
    monkeypatch.setenv("ASKTELL_RETRY_SECONDS", "12")
    assert Server(UNAVAILABLE, ANY_OK).client().get_study("mlp").name == "mlp"  # back before the deadline
    with pytest.raises(ServerError):
        Server(UNAVAILABLE).client().get_study("mlp")
    assert sum(slept) == pytest.approx(12 + 0.1)


# Configuration --------------------------------------------------------------------------------------------------


def test_url_and_token_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASKTELL_URL", "http://env-host:9000/")
    monkeypatch.setenv("ASKTELL_TOKEN", "s3cret")
    server = Server(ok({"studies": [], "next_page_token": None}))
    with Client(transport=httpx.MockTransport(server)) as client:
        assert client.list_studies() == []
    (request,) = server.requests
    assert str(request.url).startswith("http://env-host:9000/v1/studies?")
    assert request.headers["authorization"] == "Bearer s3cret"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("host:8000", "must start with http:// or https://, e.g. http://host:8000"),
        ("127.0.0.1:8000", "must start with http:// or https://"),
        ("ftp://host", "must start with http:// or https://"),
        ("http://host:8000/v1", "without the API's /v1 (the client adds it): http://host:8000"),
        ("https://host/asktell/v1/studies", "without the API's /v1 (the client adds it): https://host/asktell"),
    ],
)
def test_a_server_url_that_cannot_work_says_what_is_wrong(
    url: str, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for make in (lambda: Client(url), lambda: AsyncClient(url)):
        with pytest.raises(ConfigurationError) as refused:
            make()
        assert words in str(refused.value) and isinstance(refused.value, ValueError)
    monkeypatch.setenv("ASKTELL_URL", url)
    with pytest.raises(ConfigurationError, match="server URL"):
        Client()
    assert Client("http://host:8000/").url == "http://host:8000"


def test_arguments_win_over_the_environment_and_no_token_sends_no_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASKTELL_URL", "http://env-host:9000")
    server = Server(ok(study_json()))
    Client("http://arg-host:1234", None, 5.0, 0, transport=httpx.MockTransport(server)).get_study("mlp")
    assert str(server.requests[0].url) == "http://arg-host:1234/v1/studies/mlp"
    assert "authorization" not in server.requests[0].headers
    monkeypatch.delenv("ASKTELL_URL")
    assert Client().url == "http://127.0.0.1:8000"
    server = Server(ok(study_json()))
    Client(token="explicit", transport=httpx.MockTransport(server)).get_study("mlp")
    assert server.requests[0].headers["authorization"] == "Bearer explicit"


# Requests and responses -----------------------------------------------------------------------------------------


def test_create_study_sends_the_whole_spec() -> None:
    server = Server(ok(study_json(trial_counts={}), status=201))
    params = [{"name": "lr", "type": "float", "low": 1e-4, "high": 1e-1, "log": True}]
    objectives = [{"name": "val_loss", "goal": "minimize"}]
    constraints = [{"name": "mem", "op": "<=", "bound": 8}]
    study = server.client().create_study(
        name="mlp", params=params, objectives=objectives, constraints=constraints, seed=3
    )
    assert server.paths == ["POST /v1/studies"]
    assert server.bodies[0] == {
        "name": "mlp",
        "if_exists": "get",
        "params": params,
        "objectives": objectives,
        "constraints": constraints,
        "fidelity": None,
        "engine": "auto",
        "engine_options": {},
        "seed": 3,
    }
    assert (study.name, study.id, study.state, study.engine, study.trial_counts) == ("mlp", 1, "active", "sobol", {})
    assert study.spec["objectives"] == objectives


def test_listings_walk_every_page_and_keep_their_filters() -> None:
    server = Server(
        ok({"studies": [study_json("a")], "next_page_token": "t1"}),
        ok({"studies": [study_json("b")], "next_page_token": None}),
    )
    assert [s.name for s in server.client().list_studies()] == ["a", "b"]
    assert server.requests[1].url.params["page_token"] == "t1"

    server = Server(
        ok({"trials": [trial_json(0)], "next_page_token": "t1"}),
        ok({"trials": [trial_json(1)], "next_page_token": None}),
    )
    trials = server.study().trials(state=["completed", "failed"], worker_id="node-7")
    assert [t.number for t in trials] == [0, 1]
    for request in server.requests:
        assert request.url.params.get_list("state") == ["completed", "failed"]
        assert request.url.params["worker_id"] == "node-7"
    assert "page_token" not in server.requests[0].url.params
    assert server.requests[1].url.params["page_token"] == "t1"

    server = Server(ok({"trials": [], "next_page_token": None}))
    server.study().trials(state="completed")
    assert server.requests[0].url.params.get_list("state") == ["completed"]


def test_ask_report_tell_update_the_trial_in_place() -> None:
    server = Server(ok({"trials": [trial_json(3, budget=9.0, resume_from=2.0)]}))
    (trial,) = server.study().ask(n=1, worker_id="node-7")
    assert server.bodies[0] == {
        "count": 1,
        "worker_id": "node-7",
        "fresh": False,
        "request_id": server.bodies[0]["request_id"],
    }
    assert (trial.id, trial.number, trial.params, trial.budget, trial.resume_from, trial.state, trial.worker_id) == (
        103,
        3,
        {"lr": 0.01, "act": "relu"},
        9.0,
        2.0,
        "active",
        "node-7",
    )

    measured = trial_json(3, measurements=[{"step": 3, "values": {"val_loss": 0.41}}])
    server.replies = [
        ok({"action": "stop", "reason": "worse than the median", "trial": {**measured, "state": "stopped"}})
    ]
    decision = trial.report(step=3, values={"val_loss": 0.41})
    assert server.bodies[-1] == {"step": 3, "values": {"val_loss": 0.41}}
    assert server.paths[-1] == "POST /v1/studies/mlp/trials/3/report"
    assert (decision.action, decision.should_stop, decision.should_pause) == ("stop", True, False)
    assert decision.reason == "worse than the median"
    assert trial.state == "stopped" and trial.measurements == [{"step": 3, "values": {"val_loss": 0.41}}]

    server.replies = [ok(trial_json(3, state="completed", values={"val_loss": 0.38}))]
    assert trial.tell({"val_loss": 0.38}) is trial
    assert server.bodies[-1] == {
        "state": "completed",
        "values": {"val_loss": 0.38},
        "reason": None,
        "request_id": server.bodies[-1]["request_id"],
    }
    assert (trial.state, trial.values) == ("completed", {"val_loss": 0.38})


@pytest.mark.parametrize(
    ("flags", "state"),
    [
        ({"failed": True, "reason": "OOM"}, "failed"),
        ({"infeasible": True}, "infeasible"),
        ({"stopped": True}, "stopped"),
    ],
)
def test_tell_without_values(flags: dict[str, Any], state: str) -> None:
    server = Server(ok(trial_json(0, state=state, reason=flags.get("reason"))))
    trial = server.trial()
    trial.tell(**flags)
    assert server.bodies[0] == {
        "state": state,
        "values": None,
        "reason": flags.get("reason"),
        "request_id": server.bodies[0]["request_id"],
    }
    assert (trial.state, trial.reason) == (state, flags.get("reason"))


def test_tell_refuses_two_outcomes_before_sending_anything() -> None:
    server = Server(ANY_OK)
    with pytest.raises(ValueError, match="failed and infeasible"):
        server.trial().tell(failed=True, infeasible=True)
    assert server.requests == []


def test_add_trial_and_study_state_changes() -> None:
    server = Server(ok(trial_json(5, state="waiting", source="user", worker_id=None), status=201))
    study = server.study()
    queued = study.add_trial(params={"lr": 0.02, "act": "gelu"})
    assert (queued.number, queued.state, queued.source) == (5, "waiting", "user")
    assert server.bodies[0] == {"params": {"lr": 0.02, "act": "gelu"}, "values": None}
    for method, state in ((study.pause, "paused"), (study.resume, "active"), (study.complete, "completed")):
        server.replies = [ok(study_json(state=state))]
        assert method() is study and study.state == state
        assert server.paths[-1] == "PUT /v1/studies/mlp/state" and server.bodies[-1] == {"state": state}
    server.replies = [httpx.Response(204)]
    study.delete()
    assert server.paths[-1] == "DELETE /v1/studies/mlp"


def test_ask_gives_up_on_a_pending_job_when_its_timeout_is_spent() -> None:
    pending = ok(
        {"trials": [], "pending": {"id": 11, "state": "queued", "count": 1, "attempts": 0, "error": None}}, status=202
    )
    server = Server(pending)
    with pytest.raises(AskTimeoutError) as raised:
        server.study().ask(worker_id="node-7", timeout=0)
    assert raised.value.job_id == 11 and server.bodies[0]["wait_seconds"] == 0


# The async client -----------------------------------------------------------------------------------------------


async def test_async_client_maps_errors_and_retries_like_the_sync_one(slept: list[float]) -> None:
    server = Server(UNAVAILABLE, httpx.ConnectError("refused"), ok(study_json()))
    async with server.async_client() as client:
        study = await client.get_study("mlp")
    assert isinstance(study, asktell.AsyncStudy) and study.name == "mlp"
    assert len(server.requests) == 3 and len(slept) == 2

    server = Server(UNAVAILABLE, ok({"trials": []}))
    async with server.async_client() as client:
        with pytest.raises(ServerError, match="database restarting"):
            await asktell.AsyncStudy(client, study_json()).add_trial({"lr": 0.1})
    assert len(server.requests) == 1
    server = Server(UNAVAILABLE, ok({"trials": []}))
    async with server.async_client() as client:
        await asktell.AsyncStudy(client, study_json()).ask()  # an ask carries a request id: retried
    assert len(server.requests) == 2 and server.bodies[0]["request_id"] == server.bodies[1]["request_id"]

    server = Server(error(404, "not_found", "study 'nope' not found"))
    async with server.async_client() as client:
        with pytest.raises(NotFoundError, match="study 'nope' not found"):
            await client.get_study("nope")
    assert len(server.requests) == 1


async def test_async_round_trip() -> None:
    done = trial_json(0, state="completed", values={"val_loss": 0.3})
    server = Server(
        ok(study_json(), status=201),
        ok({"trials": [trial_json(0)]}),
        ok({"action": "pause", "reason": None, "trial": trial_json(0, state="paused", resume_from=1)}),
        ok({"trials": [trial_json(0, resume_from=1)]}),
        ok(done),
        ok({"trials": [done], "next_page_token": None}),
    )
    async with server.async_client() as client:
        study = await client.create_study(name="mlp", params=[], objectives=[])
        (trial,) = await study.ask(worker_id="node-7")
        decision = await trial.report(step=1, values={"val_loss": 0.5})
        assert decision.should_pause and trial.state == "paused"
        (resumed,) = await study.ask(worker_id="node-7")
        assert isinstance(resumed, asktell.AsyncTrial) and resumed.resume_from == 1
        assert await resumed.tell({"val_loss": 0.3}) is resumed and resumed.values == {"val_loss": 0.3}
        assert [t.number for t in await study.trials(state="completed")] == [0]


HYPERVOLUME = {
    "reference_point": {"error": 1.0, "seconds": None},
    "hypervolume": 0.5,
    "history": [
        {"trial": 0, "finished_at": "2026-11-22T10:00:05Z", "hypervolume": 0.25},
        {"trial": 2, "finished_at": None, "hypervolume": 0.5},
    ],
}


def test_pareto_front_and_hypervolume_history() -> None:
    server = Server(
        ok({"trials": [trial_json(0, state="completed"), trial_json(2, state="completed")]}), ok(HYPERVOLUME)
    )
    study = server.study()
    assert [t.number for t in study.pareto_front()] == [0, 2]
    history = study.hypervolume_history()
    assert server.paths == ["GET /v1/studies/mlp/best", "GET /v1/studies/mlp/hypervolume"]
    assert history.reference_point == {"error": 1.0, "seconds": None} and history.hypervolume == 0.5
    assert [(p.trial, p.hypervolume) for p in history.points] == [(0, 0.25), (2, 0.5)]
    assert history.points[0].finished_at is not None and history.points[0].finished_at.second == 5


async def test_async_pareto_front_and_hypervolume_history() -> None:
    server = Server(ok(study_json()), ok({"trials": [trial_json(1, state="completed")]}), ok(HYPERVOLUME))
    async with server.async_client() as client:
        study = await client.get_study("mlp")
        assert [t.number for t in await study.pareto_front()] == [1]
        assert isinstance(await study.hypervolume_history(), asktell.HypervolumeHistory)


# The CLI --------------------------------------------------------------------------------------------------------


@pytest.fixture
def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[..., tuple[int, str, str]]]:
    """Run `asktell ARGS` against scripted replies; (exit code, stdout, stderr)."""

    def run(*args: str, replies: list[Reply]) -> tuple[int, str, str]:
        server = Server(*replies)
        monkeypatch.setattr(
            cli, "Client", lambda url, **_: Client(url or URL, transport=httpx.MockTransport(server), max_retries=0)
        )
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    yield run


def test_cli_studies_list_prints_an_aligned_table(run_cli: Callable[..., tuple[int, str, str]]) -> None:
    studies = [
        study_json("mlp", trial_counts={"completed": 9, "failed": 1}, best_value=0.125),
        study_json("a-much-longer-name", engine="gp", state="paused", trial_counts={}),
    ]
    code, out, _ = run_cli("studies", "list", replies=[ok({"studies": studies, "next_page_token": None})])
    assert code == 0
    assert out == (
        "NAME                ENGINE  STATE   TRIALS  BY STATE                BEST  OBJECTIVES\n"
        "------------------  ------  ------  ------  ---------------------  -----  --------------\n"
        "mlp                 sobol   active      10  completed=9, failed=1  0.125  val_loss (min)\n"
        "a-much-longer-name  gp      paused       0                                val_loss (min)\n"
    )


def test_cli_trials_list_filters_limits_and_aligns(run_cli: Callable[..., tuple[int, str, str]]) -> None:
    trials = [trial_json(n, state="completed", values={"val_loss": 0.5 / (n + 1)}) for n in range(12)]
    code, out, _ = run_cli(
        "trials",
        "list",
        "mlp",
        "--state",
        "completed",
        "--limit",
        "3",
        replies=[ok(study_json()), ok({"trials": trials, "next_page_token": None})],
    )
    assert code == 0
    assert out == (
        "NUMBER  STATE      VALUES              PARAMS             WORKER\n"
        "------  ---------  ------------------  -----------------  ------\n"
        "     9  completed  val_loss=0.05       lr=0.01, act=relu  node-7\n"
        "    10  completed  val_loss=0.0454545  lr=0.01, act=relu  node-7\n"
        "    11  completed  val_loss=0.0416667  lr=0.01, act=relu  node-7\n"
    )


def test_cli_json_output_and_study_details(run_cli: Callable[..., tuple[int, str, str]]) -> None:
    replies: list[Reply] = [ok(study_json()), ok({"trials": [trial_json(0)], "next_page_token": None})]
    code, out, _ = run_cli("trials", "list", "mlp", "--json", replies=replies)
    assert code == 0 and [t["number"] for t in json.loads(out)] == [0]

    best = trial_json(4, state="completed", values={"val_loss": 0.12})
    spec = {
        **study_json()["spec"],
        "fidelity": {"name": "epoch", "min": 1, "max": 50},
        "constraints": [{"name": "mem", "op": "<=", "bound": 8.5}],
    }
    replies = [ok(study_json(trial_counts={"completed": 5, "active": 1}, spec=spec)), ok({"trials": [best]})]
    code, out, _ = run_cli("--json", "studies", "show", "mlp", replies=replies)
    assert code == 0 and json.loads(out)["best_trials"][0]["number"] == 4
    code, out, _ = run_cli("studies", "show", "mlp", replies=replies)
    assert code == 0
    assert out == (
        "study     mlp\n"
        "engine    sobol\n"
        "state     active\n"
        "trials    completed=5, active=1\n"
        "fidelity  epoch from 1 to 50\n"
        "\n"
        "PARAM  TYPE            LOW  HIGH  SCALE  CHOICES\n"
        "-----  -----------  ------  ----  -----  ----------\n"
        "lr     float        0.0001   0.1  log\n"
        "act    categorical                       relu, gelu\n"
        "\n"
        "OBJECTIVE  GOAL\n"
        "---------  --------\n"
        "val_loss   minimize\n"
        "\n"
        "CONSTRAINT  OP  BOUND\n"
        "----------  --  -----\n"
        "mem         <=    8.5\n"
        "\n"
        "best:\n"
        "TRIAL  VALUES         PARAMS\n"
        "-----  -------------  -----------------\n"
        "    4  val_loss=0.12  lr=0.01, act=relu\n"
    )


def test_cli_errors_print_the_servers_message(run_cli: Callable[..., tuple[int, str, str]]) -> None:
    code, out, err = run_cli("studies", "show", "nope", replies=[error(404, "not_found", "study 'nope' not found")])
    assert (code, out, err) == (1, "", "error: study 'nope' not found\n")


def test_cli_delete_needs_yes_when_not_interactive(
    run_cli: Callable[..., tuple[int, str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run_cli("studies", "delete", "mlp", replies=[httpx.Response(204)])
    assert code == 1 and "--yes" in err
    code, out, _ = run_cli("studies", "delete", "mlp", "--yes", replies=[httpx.Response(204)])
    assert (code, out) == (0, "deleted mlp\n")


@pytest.mark.parametrize("argv", [["serve", "--port", "9000"], ["worker", "--help"], ["db", "upgrade", "head"]])
def test_cli_forwards_server_commands(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    forwarded: list[tuple[list[str], str]] = []

    def server_main(args: list[str], prog: str) -> int:
        forwarded.append((args, prog))
        return 7

    monkeypatch.setitem(sys.modules, "service", types.ModuleType("service"))
    monkeypatch.setitem(sys.modules, "service.cli", types.SimpleNamespace(main=server_main))
    assert cli.main(argv) == 7
    assert forwarded == [(argv, "asktell")]


def test_cli_server_commands_without_the_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "service", None)
    monkeypatch.delitem(sys.modules, "service.cli", raising=False)
    assert cli.main(["serve"]) == 2
    assert capsys.readouterr().err == "asktell serve needs the server: pip install asktell-server\n"


def test_the_retry_policy_is_the_documented_one() -> None:
    policy = api.RetryPolicy()
    assert (policy.deadline_seconds, policy.max_retries) == (300, None)
    assert (policy.base_seconds, policy.cap_seconds) == (0.1, 5.0)


def test_the_sdk_and_its_integrations_package_import_no_framework() -> None:
    """`import asktell` (and the integrations package) stays light: a framework loads only with its module."""
    import subprocess

    code = (
        "import sys, asktell, asktell.integrations; "
        "print(sorted({'torch', 'xgboost', 'lightgbm', 'lightning', 'transformers', 'mlflow', 'wandb', 'ray', "
        "'numpy', 'pandas'} & set(sys.modules)))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_agent_tracking_flags_name_the_extra_they_need(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if W&B were not installed
    monkeypatch.delitem(sys.modules, "asktell.integrations.wandb", raising=False)
    args = types.SimpleNamespace(mlflow=None, wandb="")
    with pytest.raises(AsktellError, match=r"--wandb needs its package: pip install 'asktell\[wandb\]'"):
        cli._trackers(args)
    assert cli._trackers(types.SimpleNamespace(mlflow=None, wandb=None)) == ()


def test_current_trial_is_none_outside_the_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASKTELL_STUDY", raising=False)
    monkeypatch.delenv("ASKTELL_TRIAL_ID", raising=False)
    assert asktell.current_trial() is None
