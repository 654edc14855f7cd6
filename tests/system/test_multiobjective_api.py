"""Multi-objective studies over REST and the SDK: Pareto front, hypervolume history, MO reports."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from asktell import Client
from service.domain.hypervolume import hypervolume
from service.domain.ranking import pareto_mask
from tests.support import FAST_GP, RunningServer, ServerFactory

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

EFFICIENCY = {
    "params": [
        {"name": "width", "type": "int", "low": 8, "high": 512, "log": True},
        {"name": "lr", "type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    ],
    "objectives": [
        {"name": "error", "goal": "minimize", "threshold": 1.0},
        {"name": "train_seconds", "goal": "minimize", "cost": True, "threshold": 100.0},
    ],
}


def train(params: dict[str, object]) -> tuple[float, float]:
    """A toy model: wider trains slower but errs less; the error is lowest at lr = 1e-2."""
    width, lr = float(params["width"]), float(params["lr"])  # type: ignore[arg-type]
    error = 0.05 + 2.0 / width + 0.05 * (math.log10(lr) + 2) ** 2
    return error, 0.1 * width


def test_cost_objectives_must_be_minimized_and_positive(api: httpx.Client, study_name: str) -> None:
    bad = {
        **EFFICIENCY,
        "objectives": [
            EFFICIENCY["objectives"][0],  # type: ignore[index]
            {"name": "train_seconds", "goal": "maximize", "cost": True, "threshold": -1},
        ],
    }
    response = api.post("/v1/studies", json={"name": study_name, **bad})
    assert response.status_code == 422
    fields = {d["field"]: d["reason"] for d in response.json()["error"]["details"]}
    assert "minimized" in fields["objectives[1].goal"] and "> 0" in fields["objectives[1].threshold"]

    assert api.post("/v1/studies", json={"name": study_name, "engine": "random", **EFFICIENCY}).status_code == 201
    (trial,) = api.post(f"/v1/studies/{study_name}/ask", json={}).json()["trials"]
    tell = api.post(
        f"/v1/studies/{study_name}/trials/{trial['number']}/tell", json={"values": {"error": 0.2, "train_seconds": 0.0}}
    )
    assert tell.status_code == 422
    assert tell.json()["error"]["details"] == [
        {"field": "values.train_seconds", "reason": "a cost must be > 0, got 0.0"}
    ]
    assert api.get(f"/v1/studies/{study_name}/trials/{trial['number']}").json()["state"] == "active"


def test_a_five_objective_hypervolume_of_200_trials_is_estimated_quickly(api: httpx.Client, study_name: str) -> None:
    """200 trials with 5 objectives took 31 s (and 1,500 took 363 s) to compute exactly; now an estimate, flagged."""
    objectives = [f"f{i}" for i in range(5)]
    spec = {
        "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "engine": "random",
        "objectives": [{"name": name, "goal": "minimize"} for name in objectives],
    }
    assert api.post("/v1/studies", json={"name": study_name, **spec}).status_code == 201
    directions = np.abs(np.random.default_rng(0).normal(size=(200, 5)))
    for row in 1 - directions / np.linalg.norm(directions, axis=1, keepdims=True):  # every trial on the front
        values = {name: float(v) for name, v in zip(objectives, row, strict=True)}
        assert (
            api.post(f"/v1/studies/{study_name}/trials", json={"params": {"x": 0.5}, "values": values}).status_code
            == 201
        )
    started = time.perf_counter()
    body = api.get(f"/v1/studies/{study_name}/hypervolume").json()
    assert time.perf_counter() - started < 10
    assert body["approximate"] is True and len(body["history"]) == 200 and body["hypervolume"] > 0
    assert api.get(f"/v1/studies/{study_name}/hypervolume").json() == body  # the same trials: the same answer


def test_pareto_front_and_hypervolume_history_over_rest(api: httpx.Client, study_name: str) -> None:
    spec = {**EFFICIENCY, "engine": "random", "constraints": [{"name": "memory_gb", "op": "<=", "bound": 8}]}
    assert api.post("/v1/studies", json={"name": study_name, **spec}).status_code == 201
    told = [  # (error, train_seconds, memory_gb)
        (0.5, 50.0, 1.0),  # box (1 - 0.5) x (100 - 50) = 25
        (0.1, 10.0, 16.0),  # infeasible: memory
        (0.8, 20.0, 2.0),  # adds 0.2 x 30 = 6
        (0.6, 60.0, 1.0),  # dominated by the first
        (2.0, 1.0, 1.0),  # beyond the error threshold
        (0.3, 30.0, 4.0),  # dominates the first: 0.7 x 70, plus the third's strip 0.2 x 10
    ]
    for error, seconds, memory in told:
        response = api.post(
            f"/v1/studies/{study_name}/trials",
            json={
                "params": {"width": 64, "lr": 0.01},
                "values": {"error": error, "train_seconds": seconds, "memory_gb": memory},
            },
        )
        assert response.status_code == 201, response.text
    body = api.get(f"/v1/studies/{study_name}/hypervolume").json()
    assert body["reference_point"] == {"error": 1.0, "train_seconds": 100.0}
    assert [p["trial"] for p in body["history"]] == list(range(6))
    expected = [25.0, 25.0, 31.0, 31.0, 31.0, 0.7 * 70 + 0.2 * 10]
    assert [p["hypervolume"] for p in body["history"]] == pytest.approx(expected)
    assert body["hypervolume"] == pytest.approx(expected[-1])
    best = api.get(f"/v1/studies/{study_name}/best").json()["trials"]
    assert sorted(t["number"] for t in best) == [2, 4, 5]  # feasible and non-dominated (4 is cheapest)


def test_reports_carry_several_metrics_per_step(api: httpx.Client, study_name: str) -> None:
    spec = {**EFFICIENCY, "engine": "random", "fidelity": {"name": "epoch", "min": 1, "max": 3}}
    assert api.post("/v1/studies", json={"name": study_name, **spec}).status_code == 201
    (trial,) = api.post(f"/v1/studies/{study_name}/ask", json={}).json()["trials"]
    for epoch in (1, 2, 3):
        decision = api.post(
            f"/v1/studies/{study_name}/trials/{trial['number']}/report",
            json={"step": epoch, "values": {"error": 1 / epoch, "train_seconds": 10.0 * epoch}},
        )
        assert decision.status_code == 200 and decision.json()["action"] == "continue"
    stored = api.get(f"/v1/studies/{study_name}/trials/{trial['number']}").json()["measurements"]
    assert stored == [{"step": e, "values": {"error": 1 / e, "train_seconds": 10.0 * e}} for e in (1.0, 2.0, 3.0)]
    # Stopping without values keeps the last report's metrics: both objectives.
    stopped = api.post(f"/v1/studies/{study_name}/trials/{trial['number']}/tell", json={"state": "stopped"})
    assert stopped.json()["values"] == {"error": 1 / 3, "train_seconds": 30.0}


@pytest.fixture(scope="module")
def pg_with_worker(module_servers: ServerFactory) -> RunningServer:
    """A PostgreSQL-backed API and one engine worker process."""
    return module_servers(workers=1)


def test_efficiency_study_through_the_sdk_with_concurrent_training_jobs(
    pg_with_worker: RunningServer, study_name: str, tmp_path: Path
) -> None:
    client = Client(pg_with_worker.url, timeout=120)
    study = client.create_study(
        study_name,
        EFFICIENCY["params"],
        EFFICIENCY["objectives"],  # type: ignore[arg-type]
        fidelity={"name": "epoch", "min": 1, "max": 2},
        engine_options=FAST_GP,
    )
    assert study.engine == "multiobjective"
    told: dict[int, tuple[float, float]] = {}
    errors: list[BaseException] = []

    def training_job(worker: str) -> None:
        try:
            for _ in range(5):
                (trial,) = study.ask(worker_id=worker, fresh=True)
                error, seconds = train(trial.params)
                for epoch in (1, 2):
                    metrics = {"error": error * (3 - epoch), "train_seconds": seconds * epoch / 2}
                    assert trial.report(epoch, metrics).action == "continue"
                trial.tell({"error": error, "train_seconds": seconds})
                told[trial.number] = (error, seconds)
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    jobs = [threading.Thread(target=training_job, args=(f"job-{i}",)) for i in range(2)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=600)
    assert not errors, errors
    assert len(told) == 10

    trials = study.trials(measurements=True)
    assert {t.source for t in trials} >= {"multiobjective"}  # the worker's model, after the initial design
    assert all(
        len(t.measurements or []) == 2 and set(t.measurements[0]["values"]) == {"error", "train_seconds"}
        for t in trials
    )

    numbers = sorted(told)
    points = -np.array([told[n] for n in numbers])  # maximized
    front = [n for n, keep in zip(numbers, pareto_mask(points), strict=True) if keep]
    assert sorted(t.number for t in study.pareto_front()) == front

    history = study.hypervolume_history()
    assert history.reference_point == {"error": 1.0, "train_seconds": 100.0}
    assert len(history.points) == 10 and sorted(p.trial for p in history.points) == numbers
    assert all(b.hypervolume >= a.hypervolume for a, b in zip(history.points, history.points[1:], strict=False))
    assert history.hypervolume == pytest.approx(hypervolume(points, -np.array([1.0, 100.0])))
    status = study.engine_status()
    assert status["computations"] >= 1 and status["fallbacks"] == 0
    client.close()
