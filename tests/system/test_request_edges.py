"""Hostile or careless input at the API's edge, on PostgreSQL and SQLite: every such request gets a 4xx in the
documented error shape naming the field, never a 5xx, and nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from tests.support import make_spec

DOCUMENTED_CODES = {
    "invalid_argument",
    "unauthenticated",
    "permission_denied",
    "not_found",
    "method_not_allowed",
    "already_exists",
    "conflict",
    "too_large",
    "unavailable",
    "internal",
}


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
        {"field": "body", "reason": "There was an error parsing the body"}
    ]


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
        (
            "POST",
            f"/v1/studies/{study}/trials/{number}/report",
            {"step": 1, "values": {"loss": 1.0}, "checkpoint": f"ckpt{NUL}.pt"},
            "checkpoint",
        ),
        ("POST", "/v1/studies", {"name": f"{study}-nul", **spec}, "params[0].choices[1]"),
        ("POST", "/v1/tokens", {"namespace": "default", "name": f"ci{NUL}"}, "name"),
        ("POST", f"/v1/studies/{study}/trials", {"params": {f"lr{NUL}": 0.01}}, "params.lr\\u0000"),
    ]
    for method, path, body, field in bodies:
        error = _error(api.request(method, path, json=body), 422)
        assert error["details"] == [{"field": field, "reason": "must not contain the character U+0000"}], error
    queries = [
        (f"/v1/studies/{study}/trials", {"worker_id": f"w{NUL}"}, "worker_id"),
        ("/ui", {"q": f"study{NUL}"}, "q"),
    ]
    for path, params, field in queries:
        assert _error(api.get(path, params=params), 422)["details"] == [
            {"field": field, "reason": "must not contain the character U+0000"}
        ]
    for path in ("/v1/studies/a%00b", "/v1/studies/a%00b/trials/0/tell", "/ui/studies/a%00b", "/ui/static/a%00b"):
        assert _error(api.post(path, json={}) if path.endswith("tell") else api.get(path), 422)["details"] == [
            {"field": "path", "reason": "must not contain the character U+0000"}
        ]
    assert api.get(f"/v1/studies/{study}/trials/{number}").json()["state"] == "active"  # nothing was applied
    assert api.get(f"/v1/studies/{study}-nul").status_code == 404


def _raw_post(api: httpx.Client, path: str, text: str) -> httpx.Response:
    """A body written by hand: Python's JSON reader takes NaN, Infinity and numbers of any length."""
    return api.post(path, content=text.encode(), headers={"Content-Type": "application/json"})


def test_non_finite_and_huge_numbers_in_a_spec_are_refused(api: httpx.Client, study_name: str) -> None:
    huge = "1" + "0" * 400  # OverflowError (500) as a bound
    cases = [
        (f'{{"name": "x", "type": "float", "low": 0, "high": {huge}}}', "params[0].high"),
        (f'{{"name": "x", "type": "int", "low": -{huge}, "high": 1}}', "params[0].low"),
        ('{"name": "x", "type": "float", "low": -1e308, "high": 1e308}', "params[0].low"),  # asks gave 500
        ('{"name": "x", "type": "int", "low": 0, "high": 1e17}', "params[0].high"),  # beyond whole floats
        ('{"name": "c", "type": "categorical", "choices": [NaN, 1]}', "params[0].choices[0]"),
        ('{"name": "c", "type": "categorical", "choices": [1, Infinity]}', "params[0].choices[1]"),
        (f'{{"name": "c", "type": "categorical", "choices": [1, {huge}]}}', "params[0].choices[1]"),
    ]
    for param, field in cases:
        response = _raw_post(
            api,
            "/v1/studies",
            f'{{"name": "{study_name}", "params": [{param}], "objectives": [{{"name": "y", "goal": "minimize"}}]}}',
        )
        fields = [d["field"] for d in _error(response, 422)["details"]]  # type: ignore[union-attr]
        assert field in fields, (param, response.text)
    x = '{"name": "x", "type": "float", "low": 0, "high": 1}'
    for extra, field in [
        (f'"objectives": [{{"name": "y", "goal": "minimize", "threshold": {huge}}}]', "objectives[0].threshold"),
        (
            '"objectives": [{"name": "y", "goal": "minimize"}], '
            '"constraints": [{"name": "m", "op": "<=", "bound": -Infinity}]',
            "constraints[0].bound",
        ),
        (
            '"objectives": [{"name": "y", "goal": "minimize"}], '
            f'"fidelity": {{"name": "epoch", "min": 1, "max": {huge}}}',
            "fidelity.max",
        ),
    ]:
        response = _raw_post(api, "/v1/studies", f'{{"name": "{study_name}", "params": [{x}], {extra}}}')
        assert field in [d["field"] for d in _error(response, 422)["details"]], response.text  # type: ignore[union-attr]
    assert api.get(f"/v1/studies/{study_name}").status_code == 404


def test_non_finite_params_of_an_added_trial_are_refused(api: httpx.Client, study: str) -> None:
    for value in ("NaN", "Infinity", "-Infinity", "1" + "0" * 400):
        for param in ("layers", "lr"):  # int and float
            response = _raw_post(
                api,
                f"/v1/studies/{study}/trials",
                f'{{"params": {{"lr": 0.01, "layers": 2, "act": "relu", "{param}": {value}}}}}',
            )
            assert [d["field"] for d in _error(response, 422)["details"]] == [f"params.{param}"], response.text  # type: ignore[union-attr]
    assert api.get(f"/v1/studies/{study}").json()["trial_counts"] == {}
