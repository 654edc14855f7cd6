"""Ask, report, tell, enqueue and best over HTTP, on PostgreSQL and SQLite."""

from __future__ import annotations

import math

import httpx
import pytest

from tests.support import make_spec


def _ask(api: httpx.Client, study: str, **body: object) -> list[dict[str, object]]:
    response = api.post(f"/v1/studies/{study}/ask", json=body)
    assert response.status_code == 200, response.text
    return response.json()["trials"]  # type: ignore[no-any-return]


def _tell(api: httpx.Client, study: str, number: object, **body: object) -> httpx.Response:
    return api.post(f"/v1/studies/{study}/trials/{number}/tell", json=body)


def test_asked_params_lie_in_the_space(api: httpx.Client, study: str) -> None:
    trials = _ask(api, study, count=40)
    assert [t["number"] for t in trials] == list(range(40))
    for trial in trials:
        params = trial["params"]
        assert isinstance(params, dict)
        assert 1e-4 <= params["lr"] <= 1e-1
        assert isinstance(params["layers"], int) and 1 <= params["layers"] <= 8
        assert params["act"] in ("relu", "tanh", "gelu")
        assert trial["state"] == "active" and trial["source"] == "sobol"
    assert {t["params"]["act"] for t in trials} == {"relu", "tanh", "gelu"}  # type: ignore[index]


def test_tell_completes_and_a_repeat_is_idempotent(api: httpx.Client, study: str) -> None:
    (trial,) = _ask(api, study)
    first = _tell(api, study, trial["number"], values={"loss": 0.25, "extra": 3})
    assert first.status_code == 200 and first.json()["state"] == "completed"
    again = _tell(api, study, trial["number"], values={"loss": 0.25, "extra": 3})
    assert again.status_code == 200 and again.json()["finished_at"] == first.json()["finished_at"]
    other = _tell(api, study, trial["number"], values={"loss": 0.5})
    assert other.status_code == 409 and "already completed" in other.json()["error"]["message"]
    failed = _tell(api, study, trial["number"], state="failed")
    assert failed.status_code == 409
    assert api.get(f"/v1/studies/{study}/trials/{trial['number']}").json()["values"] == {"loss": 0.25, "extra": 3}


def test_tell_without_every_objective_is_rejected(api: httpx.Client, study: str) -> None:
    (trial,) = _ask(api, study)
    response = _tell(api, study, trial["number"], values={"accuracy": 0.9})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "values.loss"
    assert api.get(f"/v1/studies/{study}/trials/{trial['number']}").json()["state"] == "active"


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_values_are_rejected_unless_failed(api: httpx.Client, study: str, bad: str) -> None:
    (trial,) = _ask(api, study)
    url = f"/v1/studies/{study}/trials/{trial['number']}/tell"
    body = '{"values": {"loss": BAD}}'.replace("BAD", bad)
    response = api.post(url, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "finite" in response.json()["error"]["details"][0]["reason"]
    failed = api.post(
        url,
        content=body.replace("{", '{"state": "failed", "reason": "diverged", ', 1),
        headers={"content-type": "application/json"},
    )
    assert failed.status_code == 200, failed.text
    assert failed.json()["state"] == "failed" and failed.json()["reason"] == "diverged"
    assert failed.json()["values"] == {"loss": None}


def test_infeasible_and_unknown_trials(api: httpx.Client, study: str) -> None:
    (trial,) = _ask(api, study)
    assert _tell(api, study, trial["number"], state="infeasible").json()["state"] == "infeasible"
    missing = _tell(api, study, 999, values={"loss": 1})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert _tell(api, study, trial["number"], state="active").status_code == 422


def test_worker_that_asks_again_gets_its_own_trials_back(api: httpx.Client, study: str) -> None:
    held = _ask(api, study, count=2, worker_id="node-7")
    assert _ask(api, study, count=2, worker_id="node-7") == held
    assert [t["number"] for t in _ask(api, study, count=1, worker_id="node-8")] == [2]
    fresh = _ask(api, study, count=1, worker_id="node-7", fresh=True)
    assert fresh[0]["number"] == 3
    _tell(api, study, held[0]["number"], values={"loss": 1.0})
    again = _ask(api, study, count=3, worker_id="node-7")
    assert [t["number"] for t in again] == [1, 3, 4]


def test_enqueued_trials_come_before_suggestions(api: httpx.Client, study: str) -> None:
    params = {"lr": 0.01, "layers": 3, "act": "tanh"}
    added = api.post(f"/v1/studies/{study}/trials", json={"params": params})
    assert added.status_code == 201 and added.json()["state"] == "waiting"
    with_values = api.post(f"/v1/studies/{study}/trials", json={"params": params, "values": {"loss": 0.3}})
    assert with_values.json()["state"] == "completed"
    trials = _ask(api, study, count=2, worker_id="w")
    assert trials[0]["params"] == params and trials[0]["source"] == "user" and trials[0]["number"] == 0
    assert trials[1]["source"] == "sobol" and trials[1]["number"] == 2
    assert _tell(api, study, 0, values={"loss": 0.2}).status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lr": 5.0, "layers": 3, "act": "tanh"}, "params.lr"),
        ({"lr": 0.01, "layers": 2.5, "act": "tanh"}, "params.layers"),
        ({"lr": 0.01, "layers": 3, "act": "sigmoid"}, "params.act"),
        ({"lr": 0.01, "layers": 3}, "params.act"),
        ({"lr": 0.01, "layers": 3, "act": "tanh", "dropout": 0.1}, "params.dropout"),
    ],
)
def test_added_params_must_lie_in_the_space(
    api: httpx.Client, study: str, params: dict[str, object], field: str
) -> None:
    response = api.post(f"/v1/studies/{study}/trials", json={"params": params})
    assert response.status_code == 422
    assert field in [d["field"] for d in response.json()["error"]["details"]]


def test_a_waiting_trial_cannot_be_told(api: httpx.Client, study: str) -> None:
    api.post(f"/v1/studies/{study}/trials", json={"params": {"lr": 0.01, "layers": 3, "act": "tanh"}})
    assert _tell(api, study, 0, values={"loss": 1}).status_code == 409


def test_report_records_measurements_and_continues(api: httpx.Client, study_name: str) -> None:
    spec = make_spec(fidelity={"name": "epoch", "min": 1, "max": 20})
    api.post("/v1/studies", json={"name": study_name, **spec}).raise_for_status()
    (trial,) = _ask(api, study_name)
    assert trial["budget"] == 20
    url = f"/v1/studies/{study_name}/trials/{trial['number']}"
    for step, loss in [(1, 0.9), (2, 0.7), (2, 0.6)]:
        decision = api.post(f"{url}/report", json={"step": step, "values": {"loss": loss}})
        assert decision.status_code == 200 and decision.json()["action"] == "continue"
    assert api.post(f"{url}/report", json={"step": 21, "values": {"loss": 0.1}}).status_code == 422
    assert api.post(f"{url}/report", json={"step": 3, "values": {}}).status_code == 422
    stored = api.get(url).json()["measurements"]
    assert stored == [{"step": 1.0, "values": {"loss": 0.9}}, {"step": 2.0, "values": {"loss": 0.6}}]
    stopped = _tell(api, study_name, trial["number"], state="stopped")
    assert stopped.json()["state"] == "stopped" and stopped.json()["values"] == {"loss": 0.6}
    assert api.post(f"{url}/report", json={"step": 4, "values": {"loss": 0.5}}).status_code == 409


def test_reports_without_a_fidelity_take_the_common_path_and_keep_every_rule(api: httpx.Client, study: str) -> None:
    """The server knows the study after its first ask, so these reports run as prepared statements."""
    _ask(api, study)
    (trial,) = _ask(api, study)
    url = f"/v1/studies/{study}/trials/{trial['number']}"
    first = api.post(f"{url}/report", json={"step": 1, "values": {"loss": 0.9}, "checkpoint": "s3://run/1"})
    assert first.status_code == 200 and first.json()["action"] == "continue"
    assert first.json()["trial"]["checkpoint"] == "s3://run/1" and first.json()["trial"]["heartbeat_at"]
    again = api.post(f"{url}/report", json={"step": 1, "values": {"loss": 0.8}})  # the same step replaces its value
    assert again.status_code == 200 and again.json()["trial"]["checkpoint"] == "s3://run/1"
    api.post(f"{url}/report", json={"step": 2, "values": {"loss": 0.7}}).raise_for_status()
    stored = api.get(url).json()
    assert stored["measurements"] == [{"step": 1.0, "values": {"loss": 0.8}}, {"step": 2.0, "values": {"loss": 0.7}}]
    missing = api.post(f"/v1/studies/{study}/trials/999/report", json={"step": 1, "values": {"loss": 1}})
    assert missing.status_code == 404
    _tell(api, study, trial["number"], values={"loss": 0.5}).raise_for_status()
    late = api.post(f"{url}/report", json={"step": 3, "values": {"loss": 0.4}})
    assert late.status_code == 409 and "only an active trial" in late.json()["error"]["message"]


def test_heartbeats_and_reports_mark_an_active_trial_alive(api: httpx.Client, study: str) -> None:
    (trial,) = _ask(api, study)
    assert trial["heartbeat_at"] is None
    beat = api.post(f"/v1/studies/{study}/trials/{trial['number']}/heartbeat")
    assert beat.status_code == 200 and beat.json()["heartbeat_at"] is not None
    report = api.post(f"/v1/studies/{study}/trials/{trial['number']}/report", json={"step": 1, "values": {"loss": 1}})
    assert report.json()["trial"]["heartbeat_at"] > beat.json()["heartbeat_at"]
    _tell(api, study, trial["number"], values={"loss": 0.5}).raise_for_status()
    late = api.post(f"/v1/studies/{study}/trials/{trial['number']}/heartbeat")
    assert late.status_code == 409 and "only an active trial" in late.json()["error"]["message"]
    assert api.post(f"/v1/studies/{study}/trials/999/heartbeat").status_code == 404


def test_best_single_objective_honours_constraints(api: httpx.Client, study_name: str) -> None:
    spec = make_spec(constraints=[{"name": "memory", "op": "<=", "bound": 10}])
    api.post("/v1/studies", json={"name": study_name, **spec}).raise_for_status()
    assert api.get(f"/v1/studies/{study_name}/best").json()["trials"] == []
    trials = _ask(api, study_name, count=4)
    results = [(0.5, 5), (0.1, 50), (0.3, 9), (0.3, 1)]
    for trial, (loss, memory) in zip(trials, results, strict=True):
        _tell(api, study_name, trial["number"], values={"loss": loss, "memory": memory}).raise_for_status()
    assert _tell(api, study_name, 0, values={"loss": 0.5, "memory": 5}).status_code == 200
    best = api.get(f"/v1/studies/{study_name}/best").json()["trials"]
    assert [t["number"] for t in best] == [2]  # trial 1 is infeasible; ties keep the earliest


def test_best_for_several_objectives_is_the_pareto_set(api: httpx.Client, study_name: str) -> None:
    spec = make_spec(objectives=[{"name": "loss", "goal": "minimize"}, {"name": "speed", "goal": "maximize"}])
    api.post("/v1/studies", json={"name": study_name, **spec}).raise_for_status()
    results = [(1, 1), (2, 3), (0.5, 0.5), (2, 2), (3, 3)]
    for trial, (loss, speed) in zip(_ask(api, study_name, count=5), results, strict=True):
        _tell(api, study_name, trial["number"], values={"loss": loss, "speed": speed}).raise_for_status()
    best = api.get(f"/v1/studies/{study_name}/best").json()["trials"]
    assert sorted(t["number"] for t in best) == [0, 1, 2]


def test_study_states_gate_asks_but_not_tells(api: httpx.Client, study: str) -> None:
    (trial,) = _ask(api, study)
    paused = api.put(f"/v1/studies/{study}/state", json={"state": "paused"})
    assert paused.json()["state"] == "paused"
    response = api.post(f"/v1/studies/{study}/ask", json={})
    assert response.status_code == 409 and "paused" in response.json()["error"]["message"]
    assert _tell(api, study, trial["number"], values={"loss": 1}).status_code == 200
    api.put(f"/v1/studies/{study}/state", json={"state": "active"}).raise_for_status()
    assert _ask(api, study)[0]["number"] == 1
    assert api.put(f"/v1/studies/{study}/state", json={"state": "sleeping"}).status_code == 422


def test_trials_filter_and_page(api: httpx.Client, study: str) -> None:
    trials = _ask(api, study, count=7, worker_id="a")
    for trial in trials[:3]:
        _tell(api, study, trial["number"], values={"loss": 1}).raise_for_status()
    completed = api.get(f"/v1/studies/{study}/trials", params={"state": "completed"}).json()["trials"]
    assert [t["number"] for t in completed] == [0, 1, 2]
    both = api.get(f"/v1/studies/{study}/trials", params=[("state", "completed"), ("state", "active")])
    assert len(both.json()["trials"]) == 7
    numbers, token = [], None
    while True:
        page = api.get(
            f"/v1/studies/{study}/trials", params={"page_size": 3, **({"page_token": token} if token else {})}
        ).json()
        numbers += [t["number"] for t in page["trials"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert numbers == list(range(7))
    assert api.get(f"/v1/studies/{study}/trials", params={"page_token": "garbage"}).status_code == 422
    assert api.get(f"/v1/studies/{study}").json()["trial_counts"] == {"completed": 3, "active": 4}


def test_studies_list_and_delete(api: httpx.Client, study: str) -> None:
    _ask(api, study, count=2)
    names = []
    token = None
    while True:
        page = api.get("/v1/studies", params={"page_size": 2, **({"page_token": token} if token else {})}).json()
        names += [s["name"] for s in page["studies"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert study in names
    assert api.delete(f"/v1/studies/{study}").status_code == 204
    assert api.get(f"/v1/studies/{study}").status_code == 404
    assert api.delete(f"/v1/studies/{study}").status_code == 404
    recreated = api.post("/v1/studies", json={"name": study, **make_spec()})
    assert recreated.status_code == 201
    assert _ask(api, study)[0]["number"] == 0


def test_sobol_sequence_is_reproducible_for_a_seed(api: httpx.Client, study_name: str) -> None:
    draws = []
    for suffix in ("a", "b"):
        api.post("/v1/studies", json={"name": study_name + suffix, **make_spec(seed=7)}).raise_for_status()
        draws.append([t["params"] for t in _ask(api, study_name + suffix, count=3)])
    assert draws[0] == draws[1]
    assert all(math.isfinite(p["lr"]) for p in draws[0])  # type: ignore[index]


def test_health_probes(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ok"}
    assert api.get("/v1/nothing").json()["error"]["code"] == "not_found"


def test_tells_stay_right_when_a_study_is_recreated_under_the_same_name(api: httpx.Client, study: str) -> None:
    for _ in range(2):  # the second tell takes the single-statement path
        (trial,) = _ask(api, study)
        assert _tell(api, study, trial["number"], values={"loss": 1.0}).status_code == 200
    api.delete(f"/v1/studies/{study}").raise_for_status()
    api.post("/v1/studies", json={"name": study, **make_spec(objectives=[{"name": "acc", "goal": "maximize"}])})
    (trial,) = _ask(api, study)
    assert trial["number"] == 0
    wrong = _tell(api, study, 0, values={"loss": 1.0})  # the old study's objective: must not be accepted
    assert wrong.status_code == 422 and wrong.json()["error"]["details"][0]["field"] == "values.acc"
    assert _tell(api, study, 0, values={"acc": 0.9}).json()["values"] == {"acc": 0.9}
    (second,) = _ask(api, study)
    assert _tell(api, study, second["number"], values={"acc": 0.8}).json()["state"] == "completed"


def test_a_valid_tell_is_accepted_after_the_study_is_recreated_with_another_spec(api: httpx.Client, study: str) -> None:
    for _ in range(2):  # the second tell takes the single-statement path, which remembers the study's spec
        (trial,) = _ask(api, study)
        assert _tell(api, study, trial["number"], values={"loss": 1.0}).status_code == 200
    api.delete(f"/v1/studies/{study}").raise_for_status()
    api.post("/v1/studies", json={"name": study, **make_spec(objectives=[{"name": "acc", "goal": "maximize"}])})
    (trial,) = _ask(api, study)
    told = _tell(api, study, trial["number"], values={"acc": 0.9})  # valid for the new spec, not for the old
    assert told.status_code == 200, told.text
    assert told.json()["values"] == {"acc": 0.9}
