"""Hostile or careless input at the API's edge, on PostgreSQL and SQLite: every such request gets a 4xx in the
documented error shape naming the field, never a 5xx, and nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

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
