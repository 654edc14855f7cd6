"""The examples in examples/, run end to end in a short mode against PostgreSQL (the README uses them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asktell import Client
from tests.support import REPO, RunningServer, ServerFactory

EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def pg(module_servers: ServerFactory) -> RunningServer:
    return module_servers()


def run(pg: RunningServer, *argv: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "ASKTELL_URL": pg.url, "OMP_NUM_THREADS": "1", **(env or {})},
    )
    assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def asktell(*args: str) -> list[str]:
    return [sys.executable, "-m", "asktell.cli", *args]


def test_sklearn_example_tunes_an_svm_with_the_sdk(pg: RunningServer, study_name: str) -> None:
    out = run(pg, sys.executable, str(EXAMPLES / "sklearn_svc.py"), "--study", study_name, "--trials", "4")
    assert "best cv_error" in out
    assert [t.state for t in Client(pg.url).get_study(study_name).trials()] == ["completed"] * 4


def test_multiobjective_example_reports_a_pareto_front(pg: RunningServer, study_name: str) -> None:
    out = run(
        pg, sys.executable, str(EXAMPLES / "multiobjective_efficiency.py"), "--study", study_name, "--trials", "4"
    )
    assert "Pareto front" in out and "dominated hypervolume" in out
    study = Client(pg.url).get_study(study_name)
    assert study.engine == "multiobjective" and len(study.pareto_front()) >= 1


def test_torch_example_trains_under_the_agent_with_checkpoints(
    pg: RunningServer, study_name: str, tmp_path: Path
) -> None:
    spec = json.loads((EXAMPLES / "torch_mlp" / "study.json").read_text())
    spec["fidelity"]["max"] = 3  # short mode: rungs at 1 and 3 epochs
    (tmp_path / "study.json").write_text(json.dumps(spec))
    run(pg, *asktell("studies", "create", study_name, "--spec", str(tmp_path / "study.json")))
    run(
        pg,
        *asktell(
            "agent",
            study_name,
            "--count",
            "3",
            "--",
            sys.executable,
            str(EXAMPLES / "torch_mlp" / "train.py"),
            "--lr",
            "{lr}",
            "--hidden",
            "{hidden}",
            "--dropout",
            "{dropout}",
            "--epochs",
            "{budget}",
            "--checkpoint",
            str(tmp_path / "checkpoints" / "{trial_id}.pt"),
        ),
    )
    study = Client(pg.url).get_study(study_name)
    assert study.engine == "freeze_thaw"  # the default for a study with a fidelity
    trials = study.trials(measurements=True)
    # The warm-up: Sobol runs that train to the first rung and pause there, each with its checkpoint.
    assert [(t.state, [m["step"] for m in t.measurements or []]) for t in trials] == [("paused", [1])] * 3
    assert all(0 <= m["values"]["val_error"] < 1 for t in trials for m in t.measurements or [])
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["0.pt", "1.pt", "2.pt"]


def test_shell_example_runs_under_the_agent(pg: RunningServer, study_name: str) -> None:
    run(pg, *asktell("studies", "create", study_name, "--spec", str(EXAMPLES / "shell" / "study.json")))
    run(
        pg,
        *asktell("agent", study_name, "--count", "3", "--", "bash", str(EXAMPLES / "shell" / "train.sh"), "{x}", "{y}"),
        env={"STEPS": "5"},
    )
    trials = Client(pg.url).get_study(study_name).trials()
    assert [t.state for t in trials] == ["completed"] * 3
    for trial in trials:
        x, y = trial.params["x"], trial.params["y"]
        assert trial.values == {"loss": pytest.approx((x - 1) ** 2 + (y + 0.5) ** 2 + 1 / 5, abs=1e-5)}
