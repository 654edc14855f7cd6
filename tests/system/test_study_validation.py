"""Bad study specs get a 422 whose details name the field and the reason; nothing is stored."""

from __future__ import annotations

import httpx
import pytest

from tests.support import make_spec

FLOAT = {"name": "x", "type": "float", "low": 0, "high": 1}
LOSS = [{"name": "loss", "goal": "minimize"}]


def _problems(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    body = response.json()["error"]
    assert body["code"] == "invalid_argument"
    return {d["field"]: d["reason"] for d in body["details"]}


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"params": [FLOAT, FLOAT], "objectives": LOSS}, "params[1].name", "duplicate"),
        ({"params": [{**FLOAT, "low": 2, "high": 1}], "objectives": LOSS}, "params[0].low", "less than high"),
        ({"params": [{**FLOAT, "low": 1, "high": 1}], "objectives": LOSS}, "params[0].low", "less than high"),
        ({"params": [{**FLOAT, "log": True}], "objectives": LOSS}, "params[0].low", "> 0 on a log scale"),
        (
            {"params": [{"name": "c", "type": "categorical", "choices": []}], "objectives": LOSS},
            "params[0].choices",
            "at least one",
        ),
        (
            {"params": [{"name": "c", "type": "categorical", "choices": ["a", "a"]}], "objectives": LOSS},
            "params[0].choices",
            "unique",
        ),
        (
            {"params": [{"name": "c", "type": "categorical", "choices": ["a"], "low": 0}], "objectives": LOSS},
            "params[0].low",
            "not allowed",
        ),
        (
            {"params": [{"name": "n", "type": "int", "low": 0.5, "high": 3}], "objectives": LOSS},
            "params[0].low",
            "whole number",
        ),
        ({"params": [{"name": "x", "type": "float", "high": 3}], "objectives": LOSS}, "params[0].low", "required"),
        (
            {"params": [{"name": "x", "type": "complex", "low": 0, "high": 1}], "objectives": LOSS},
            "params[0].type",
            "float",
        ),
        ({"params": [FLOAT], "objectives": []}, "objectives", "at least 1"),
        ({"params": [], "objectives": LOSS}, "params", "at least 1"),
        ({"params": [FLOAT], "objectives": LOSS * 2}, "objectives[1].name", "duplicate"),
        ({"params": [FLOAT], "objectives": [{"name": "loss", "goal": "lower"}]}, "objectives[0].goal", "minimize"),
        (
            {"params": [FLOAT], "objectives": LOSS, "constraints": [{"name": "loss", "op": "<=", "bound": 1}]},
            "constraints[0].name",
            "is an objective",
        ),
        (
            {"params": [FLOAT], "objectives": LOSS, "constraints": [{"name": "mem", "op": "<", "bound": 1}]},
            "constraints[0].op",
            "<=",
        ),
        ({"params": [FLOAT], "objectives": LOSS, "engine": "simulated-annealing"}, "engine", "unknown engine"),
        (
            {"params": [FLOAT], "objectives": LOSS, "engine": "sobol", "engine_options": {"warp": 9}},
            "engine_options.warp",
            "not permitted",
        ),
        (
            {"params": [FLOAT], "objectives": LOSS, "fidelity": {"name": "epoch", "min": 5, "max": 1}},
            "fidelity.max",
            "greater than min",
        ),
        (
            {"params": [FLOAT], "objectives": LOSS, "fidelity": {"name": "loss", "min": 0, "max": 9}},
            "fidelity.name",
            "metric",
        ),
        ({"params": [FLOAT], "objectives": LOSS, "colour": "blue"}, "colour", "not permitted"),
    ],
)
def test_bad_spec_is_rejected_naming_the_field(
    api: httpx.Client, study_name: str, spec: dict[str, object], field: str, words: str
) -> None:
    problems = _problems(api.post("/v1/studies", json={"name": study_name, **spec}))
    assert field in problems, problems
    assert words in problems[field]
    assert api.get(f"/v1/studies/{study_name}").status_code == 404


def test_every_problem_is_reported_at_once(api: httpx.Client, study_name: str) -> None:
    spec = {"params": [{**FLOAT, "low": 3}, FLOAT], "objectives": LOSS, "engine": "nope"}
    assert set(_problems(api.post("/v1/studies", json={"name": study_name, **spec}))) == {
        "params[0].low",
        "params[1].name",
        "engine",
    }


def test_study_name_must_be_url_safe(api: httpx.Client) -> None:
    assert "name" in _problems(api.post("/v1/studies", json={"name": "a/b", **make_spec()}))


def test_duplicate_name_is_a_conflict_and_keeps_the_first(api: httpx.Client, study: str) -> None:
    response = api.post("/v1/studies", json={"name": study, **make_spec(engine="random")})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_exists"
    assert api.get(f"/v1/studies/{study}").json()["engine"] == "sobol"


def test_if_exists_get_returns_an_identical_study(api: httpx.Client, study: str) -> None:
    again = api.post("/v1/studies", json={"name": study, "if_exists": "get", **make_spec()})
    assert again.status_code == 200
    assert again.json()["name"] == study
    different = api.post("/v1/studies", json={"name": study, "if_exists": "get", **make_spec(engine="random")})
    assert different.status_code == 409
    assert "different spec" in different.json()["error"]["message"]


def test_limits_answer_422_naming_the_field(api: httpx.Client, study: str) -> None:
    too_many = {
        "name": "limits",
        "params": [{"name": f"p{i}", "type": "float", "low": 0, "high": 1} for i in range(1001)],
        "objectives": [{"name": "y", "goal": "minimize"}],
    }
    cases = [
        ("/v1/studies", too_many, "params"),
        (
            "/v1/studies",
            {**too_many, "params": [{"name": "c", "type": "categorical", "choices": [f"v{i}" for i in range(10_001)]}]},
            "params[0].choices",
        ),
        (
            "/v1/studies",
            {
                **too_many,
                "params": too_many["params"][:1],
                "objectives": [{"name": f"o{i}", "goal": "minimize"} for i in range(17)],
            },
            "objectives",
        ),
        (f"/v1/studies/{study}/ask", {"count": 1001}, "count"),
        (f"/v1/studies/{study}/ask", {"wait_seconds": 1e9}, "wait_seconds"),
    ]
    for path, body, field in cases:
        response = api.post(path, json=body)
        assert response.status_code == 422, (field, response.text)
        assert response.json()["error"]["details"][0]["field"] == field
    (trial,) = api.post(f"/v1/studies/{study}/ask", json={}).json()["trials"]
    report = api.post(
        f"/v1/studies/{study}/trials/{trial['number']}/report",
        content=b'{"step": Infinity, "values": {"loss": 1}}',
        headers={"Content-Type": "application/json"},
    )
    assert report.status_code == 422 and report.json()["error"]["details"][0]["field"] == "step"
    bad_metric = api.post(
        f"/v1/studies/{study}/trials/{trial['number']}/report", json={"step": 1, "values": {"bad name!": 1.0}}
    )
    assert bad_metric.status_code == 422 and "values" in bad_metric.json()["error"]["details"][0]["field"]
    assert api.get(f"/v1/studies/{study}/trials", params={"page_size": 10_001}).status_code == 422
    assert api.get(f"/v1/studies/{study}/trials/{2**40}").status_code == 422


@pytest.mark.parametrize("name", [".", ".."])
def test_dot_segments_are_not_study_names(api: httpx.Client, name: str) -> None:
    """URLs resolve `.` and `..` away (the SDK, the CLI and browsers alike), so such a study could not be reached."""
    problems = _problems(api.post("/v1/studies", json={"name": name, **make_spec()}))
    assert "path segment" in problems["name"]
    assert name not in [s["name"] for s in api.get("/v1/studies").json()["studies"]]
