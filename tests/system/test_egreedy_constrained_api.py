"""Engines egreedy and constrained end to end: the SDK, PostgreSQL, two worker processes, concurrent jobs."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from asktell import Client, Study
from tests.support import FAST_GP, RunningServer, ServerFactory, wait_until

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
PARAMS = [{"name": "x", "type": "float", "low": 0, "high": 1}, {"name": "y", "type": "float", "low": 0, "high": 1}]
OBJECTIVE = [{"name": "loss", "goal": "minimize"}]
BRANCHES = {"exploit", "thompson", "pareto", "random"}


@pytest.fixture(scope="module")
def server(module_servers: ServerFactory) -> RunningServer:
    """A PostgreSQL-backed API and two engine worker processes."""
    return module_servers(workers=2)


def concurrently(
    study: Study, evaluate: Callable[[dict[str, Any]], dict[str, float]], jobs: int, trials_each: int
) -> None:
    errors: list[BaseException] = []

    def job(worker: str) -> None:
        try:
            for _ in range(trials_each):
                (trial,) = study.ask(worker_id=worker, fresh=True)
                trial.tell(evaluate(trial.params))
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=job, args=(f"job-{i}",)) for i in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors


def bowl(params: dict[str, Any]) -> dict[str, float]:
    return {"loss": (params["x"] - 0.3) ** 2 + (params["y"] - 0.7) ** 2, "x_value": params["x"]}


def test_egreedy_study_with_concurrent_jobs_records_each_branch(server: RunningServer, study_name: str) -> None:
    client = Client(server.url, timeout=120)
    study = client.create_study(
        study_name,
        PARAMS,
        OBJECTIVE,
        engine="egreedy",
        engine_options={**FAST_GP, "variant": "eps_pf", "epsilon": 0.3, "pareto_points": 200},
    )
    concurrently(study, bowl, jobs=3, trials_each=5)

    trials = study.trials()
    assert len(trials) == 15 and all(t.state == "completed" for t in trials)
    model_trials = [t for t in trials if t.source == "egreedy" and t.engine_info]
    assert len(model_trials) >= 8
    assert {t.engine_info["branch"] for t in model_trials} <= BRANCHES
    assert "exploit" in {t.engine_info["branch"] for t in model_trials}
    assert all(not t.engine_info for t in trials[:3])  # the Sobol initial design says nothing

    rest = httpx.get(f"{server.url}/v1/studies/{study_name}/trials/{model_trials[0].number}").json()
    assert rest["engine_info"] == model_trials[0].engine_info
    frame = study.to_dataframe()
    assert set(frame["engine_branch"].dropna()) == {t.engine_info["branch"] for t in model_trials}
    page = httpx.get(f"{server.url}/ui/studies/{study_name}/trials/{model_trials[0].number}").text
    assert f"branch: {model_trials[0].engine_info['branch']}" in page
    points = np.array([[t.params["x"], t.params["y"]] for t in trials])
    gaps = np.abs(points[:, None, :] - points[None, :, :]).max(axis=-1) + np.eye(len(points))
    assert gaps.min() > 1e-3  # concurrent asks never got the same point, exploit included
    client.close()


def test_constrained_study_with_concurrent_jobs_reports_the_best_feasible_trial(
    server: RunningServer, study_name: str
) -> None:
    client = Client(server.url, timeout=120)
    study = client.create_study(
        study_name,
        PARAMS,
        OBJECTIVE,
        constraints=[{"name": "x_value", "op": ">=", "bound": 0.5}],
        engine_options={**FAST_GP, "pool_points": 300},
    )
    assert study.engine == "constrained"
    concurrently(study, bowl, jobs=2, trials_each=6)

    trials = study.trials()
    assert len(trials) == 12
    assert any(t.engine_info.get("method") == "cei" for t in trials)
    feasible = [t for t in trials if t.values and t.values["x_value"] >= 0.5]
    (best,) = study.best_trials()
    assert best.number == min(feasible, key=lambda t: t.values["loss"]).number  # type: ignore[index]
    status = study.status()
    assert status["likely_infeasible"] is False and status["infeasibility"] is None
    assert status["computations"] >= 1
    client.close()


def test_an_infeasible_study_says_so_in_its_status(server: RunningServer, study_name: str) -> None:
    client = Client(server.url, timeout=120)
    study = client.create_study(
        study_name,
        PARAMS,
        OBJECTIVE,
        engine="constrained",
        constraints=[{"name": "c", "op": "<=", "bound": 0}],
        engine_options={**FAST_GP, "pool_points": 300},
    )

    def never_feasible(params: dict[str, Any]) -> dict[str, float]:
        return {"loss": params["x"], "c": 2 + math.sin(3 * params["x"]) + params["y"] ** 2}

    for _ in range(8):
        (trial,) = study.ask(worker_id="solo")
        trial.tell(never_feasible(trial.params))

    def settled() -> bool:  # the refill queued by the last tell has run: the status has seen every trial
        jobs = study.status()["jobs"]
        return not jobs.get("queued") and not jobs.get("running")

    wait_until(settled, 120, "the last refill to finish")
    status = study.status()
    assert status["likely_infeasible"] is True
    evidence = status["infeasibility"]
    assert evidence["rounds"] >= 3 and evidence["rounds_needed"] == 3
    closest = min(study.trials(), key=lambda t: t.values["c"])  # type: ignore[index]
    assert evidence["least_violating_trial"] == closest.number
    assert study.best_trials() == []  # nothing feasible: no best trial
    assert "likely infeasible" in httpx.get(f"{server.url}/ui/studies/{study_name}").text
    client.close()
