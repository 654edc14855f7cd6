"""Fuzzing the live OpenAPI schema on PostgreSQL (schemathesis, bounded examples): no request may cause a 5xx, and
every 4xx names the problem in the API's error shape.

Each operation gets valid (positive) and invalid (negative) requests, with path parameters both random and aimed at
a real study and trial, so the generated bodies reach the domain checks and not only "not found". The server has
authentication on, and every request carries an admin token: token and namespace routes are fuzzed too.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.support import RunningServer, ServerFactory, make_spec

ADMIN = "at_fuzz-" + secrets.token_hex(16)
EXAMPLES = 25  # per operation and mode: about 2,500 requests in all
STUDY = "fuzzed"


@pytest.fixture(scope="module")
def fuzzed(module_servers: ServerFactory) -> RunningServer:
    running = module_servers(extra_env={"ASKTELL_ADMIN_TOKEN": ADMIN})
    with httpx.Client(base_url=running.url, headers=_auth(), timeout=30) as api:
        assert api.post("/v1/studies", json={"name": STUDY, **make_spec(engine="random")}).status_code == 201
        api.post(f"/v1/studies/{STUDY}/ask", json={"count": 5})
    return running


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


def _problems(response: httpx.Response) -> list[str]:
    """What is wrong with a response: a 5xx, or a 4xx that does not say what the problem is."""
    if response.status_code >= 500:
        return [f"{response.status_code}: {response.text[:300]}"]
    if response.status_code < 400:
        return []
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return [f"{response.status_code} without the error shape: {response.text[:300]}"]
    problems = [] if error.get("code") and error.get("message") else [f"{response.status_code} says nothing: {error}"]
    if response.status_code == 422 and not all(d.get("field") and d.get("reason") for d in error.get("details", [1])):
        problems.append(f"422 without a field and reason per problem: {error}")
    return problems


def _operations(url: str) -> list[Any]:
    schema = schemathesis.openapi.from_dict(httpx.get(f"{url}/openapi.json", timeout=30).json())
    return [result.ok() for result in schema.get_all_operations()]


def _fuzz(url: str, operation: Any, mode: GenerationMode, aimed: bool) -> list[str]:
    if mode is GenerationMode.POSITIVE and operation.label == "DELETE /v1/tokens/{token_id}":
        return []  # valid ids start at 1: it would revoke the fuzzer's own token (tests/system/test_auth.py covers it)
    aim: dict[str, Any] = {}
    if aimed:
        names = {p.name for p in operation.path_parameters}
        aim = {k: v for k, v in {"study": STUDY, "name": STUDY, "number": 1}.items() if k in names}
        if not aim or operation.method.upper() == "DELETE":
            return []  # nothing to aim at, or it would delete the target
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=aim or None)
    found: list[str] = []

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(strategy)
        kwargs = case.as_transport_kwargs(base_url=url, headers=_auth())
        response = httpx.request(
            kwargs["method"],
            kwargs["url"],
            headers=kwargs.get("headers"),
            params=kwargs.get("params"),
            json=kwargs.get("json"),
            content=kwargs.get("data") if isinstance(kwargs.get("data"), bytes | str) else None,
            timeout=30,
        )
        found.extend(f"{case.method} {case.formatted_path}: {p}" for p in _problems(response))

    with contextlib.suppress(Unsatisfiable):  # e.g. no invalid request exists for a route without parameters
        run()
    return found


def test_fuzzing_finds_no_server_error_and_no_silent_4xx(fuzzed: RunningServer) -> None:
    operations = _operations(fuzzed.url)
    assert len(operations) >= 20
    problems: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for aimed in (False, True):
                problems += _fuzz(fuzzed.url, operation, mode, aimed)
    assert not problems, "\n".join(sorted(set(problems))[:20])
    assert httpx.get(f"{fuzzed.url}/v1/studies/{STUDY}", headers=_auth()).status_code == 200  # still signed in
