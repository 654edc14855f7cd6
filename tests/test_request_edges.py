"""Hostile or careless input at the API's edge, on PostgreSQL and SQLite: every such request gets a 4xx in the
documented error shape naming the field, never a 5xx, and nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from tests.conftest import make_spec

DOCUMENTED_CODES = {"invalid_argument", "unauthenticated", "permission_denied", "not_found", "method_not_allowed",
                    "already_exists", "conflict", "too_large", "unavailable", "internal"}


def _error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    error: dict[str, object] = response.json()["error"]
    assert error["code"] in DOCUMENTED_CODES and error["message"]
    return error


def _chunks(total: int) -> Iterator[bytes]:
    yield b'{"name": "chunked", "padding": "'
    for _ in range(total // (1024 * 1024)):
        yield b" " * (1024 * 1024)
    yield b'"}'


def test_a_chunked_body_over_the_limit_is_too_large(api: httpx.Client) -> None:
    response = api.post("/v1/studies", content=_chunks(5 * 1024 * 1024), headers={"Content-Type": "application/json"})
    assert _error(response, 413)["code"] == "too_large"


def test_a_body_that_is_not_utf8_is_an_invalid_argument(api: httpx.Client) -> None:
    response = api.post("/v1/studies", content=b'{"name": "\xff"}', headers={"Content-Type": "application/json"})
    error = _error(response, 422)
    assert error["code"] == "invalid_argument" and error["details"] == [
        {"field": "body", "reason": "There was an error parsing the body"}]


NUL = "\u0000"


def test_nul_characters_are_refused_everywhere(api: httpx.Client, study: str) -> None:
    """PostgreSQL's text cannot hold U+0000: it was a 500 there (and stored on SQLite). Now a 422 naming the field,
    in bodies (values and keys), query parameters and path segments alike."""
    (trial,) = api.post(f"/v1/studies/{study}/ask", json={}).json()["trials"]
    number = trial["number"]
    spec = make_spec(params=[{"name": "c", "type": "categorical", "choices": ["a", f"b{NUL}"]}])
    bodies = [
        ("POST", f"/v1/studies/{study}/ask", {"worker_id": f"node{NUL}7"}, "worker_id"),
        ("POST", f"/v1/studies/{study}/trials/{number}/tell", {"state": "failed", "reason": f"oom{NUL}"}, "reason"),
        ("POST", f"/v1/studies/{study}/trials/{number}/report",
         {"step": 1, "values": {"loss": 1.0}, "checkpoint": f"ckpt{NUL}.pt"}, "checkpoint"),
        ("POST", "/v1/studies", {"name": f"{study}-nul", **spec}, "params[0].choices[1]"),
        ("POST", "/v1/tokens", {"namespace": "default", "name": f"ci{NUL}"}, "name"),
        ("POST", f"/v1/studies/{study}/trials", {"params": {f"lr{NUL}": 0.01}}, "params.lr\\u0000"),
    ]
    for method, path, body, field in bodies:
        error = _error(api.request(method, path, json=body), 422)
        assert error["details"] == [{"field": field, "reason": "must not contain the character U+0000"}], error
    queries = [(f"/v1/studies/{study}/trials", {"worker_id": f"w{NUL}"}, "worker_id"),
               ("/ui", {"q": f"study{NUL}"}, "q")]
    for path, params, field in queries:
        assert _error(api.get(path, params=params), 422)["details"] == [
            {"field": field, "reason": "must not contain the character U+0000"}]
    for path in ("/v1/studies/a%00b", "/v1/studies/a%00b/trials/0/tell", "/ui/studies/a%00b", "/ui/static/a%00b"):
        assert _error(api.post(path, json={}) if path.endswith("tell") else api.get(path), 422)["details"] == [
            {"field": "path", "reason": "must not contain the character U+0000"}]
    assert api.get(f"/v1/studies/{study}/trials/{number}").json()["state"] == "active"  # nothing was applied
    assert api.get(f"/v1/studies/{study}-nul").status_code == 404
