"""Pause and resume through the SDK: engine asha pauses runs at its rungs and promotions resume them from the
client's checkpoint. An end-to-end test trains synthetic curves on four threads against PostgreSQL (the rung and
promotion rules themselves: tests/unit/test_asha_engine.py)."""

from __future__ import annotations

import json
import secrets
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

from asktell import Client
from tests.support import REPO, RunningServer

FIDELITY = {"name": "epoch", "min": 1, "max": 27}
PARAMS = [{"name": "x", "type": "float", "low": 0.0, "high": 1.0}]
OBJECTIVE = [{"name": "loss", "goal": "minimize"}]


def curve(x: float, epoch: int) -> float:
    """A learning curve whose asymptote is best at x = 0.3; worse configurations also start slower."""
    return (x - 0.3) ** 2 + (0.5 + x) / epoch


def test_four_workers_pause_and_resume_from_their_checkpoints(server: RunningServer, tmp_path: Path) -> None:
    """Every resume continues from the step the trial paused at, with the checkpoint it reported; no trial is ever
    trained by two workers at once; promoted trials finish at the fidelity's max."""
    if not server.database_url.startswith("postgresql"):
        pytest.skip("the concurrent case runs on PostgreSQL; the rules are the same on SQLite")
    name = f"asha-{secrets.token_hex(4)}"
    with Client(server.url) as client:
        client.create_study(name, PARAMS, OBJECTIVE, fidelity=FIDELITY, engine="asha", seed=7)
    training: set[int] = set()
    lock = threading.Lock()
    resumes: list[tuple[int, float, float]] = []
    problems: list[str] = []
    asks_left = [80]

    def work(worker: str) -> None:
        with Client(server.url) as own:
            study = own.get_study(name)
            while True:
                with lock:
                    if asks_left[0] <= 0:
                        return
                    asks_left[0] -= 1
                (trial,) = study.ask(worker_id=worker)
                with lock:
                    if trial.number in training:
                        problems.append(f"trial {trial.number} handed to {worker} while being trained")
                    training.add(trial.number)
                start = 1
                if trial.resume_from:
                    saved = json.loads(Path(trial.checkpoint or "").read_text())
                    if saved != {"trial": trial.number, "epoch": trial.resume_from}:
                        problems.append(f"trial {trial.number}: checkpoint {saved} for resume_from {trial.resume_from}")
                    with lock:
                        resumes.append((trial.number, trial.resume_from, trial.budget or 0))
                    start = int(trial.resume_from) + 1
                for epoch in range(start, int(trial.budget or 0) + 1):
                    path = tmp_path / f"trial-{trial.number}.json"
                    path.write_text(json.dumps({"trial": trial.number, "epoch": epoch}))
                    decision = trial.report(epoch, {"loss": curve(trial.params["x"], epoch)}, checkpoint=str(path))
                    if decision.should_pause or decision.should_stop:
                        break
                else:
                    trial.tell({"loss": curve(trial.params["x"], int(trial.budget or 0))})
                with lock:
                    training.discard(trial.number)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not problems, problems[:5]
    assert len(resumes) >= 5 and {budget for _, _, budget in resumes} >= {3.0, 9.0}
    with Client(server.url) as client:
        trials = client.get_study(name).trials(measurements=True)
    for trial in trials:  # every step trained exactly once, in order, across pauses and resumes
        steps = [m["step"] for m in trial.measurements or []]
        assert steps == [float(e) for e in range(1, len(steps) + 1)], (trial.number, steps)
    states = Counter(t.state for t in trials)
    assert states["paused"] > 0 and states["active"] == 0
    assert all(len(t.measurements or []) == 27 for t in trials if t.state == "completed")
    best = min((t for t in trials if t.measurements), key=lambda t: t.measurements[-1]["values"]["loss"])
    assert abs(best.params["x"] - 0.3) < 0.25


def test_report_pauses_at_the_budget_with_its_checkpoint(api: httpx.Client) -> None:
    name = f"asha-rest-{secrets.token_hex(4)}"
    response = api.post(
        "/v1/studies",
        json={"name": name, "params": PARAMS, "objectives": OBJECTIVE, "fidelity": FIDELITY, "engine": "asha"},
    )
    assert response.status_code == 201, response.text
    (trial,) = api.post(f"/v1/studies/{name}/ask", json={}).json()["trials"]
    assert trial["budget"] == 1 and trial["resume_from"] is None and trial["checkpoint"] is None
    paused = api.post(
        f"/v1/studies/{name}/trials/{trial['number']}/report",
        json={"step": 1, "values": {"loss": 0.5}, "checkpoint": "s3://bucket/ckpt-1"},
    ).json()
    assert paused["action"] == "pause" and paused["trial"]["state"] == "paused"
    assert paused["trial"]["checkpoint"] == "s3://bucket/ckpt-1" and paused["trial"]["resume_from"] == 1
    again = api.post(f"/v1/studies/{name}/trials/{trial['number']}/report", json={"step": 2, "values": {"loss": 1}})
    assert again.status_code == 409  # a paused trial reports nothing until an ask resumes it


def test_the_readme_training_loop_recipe_runs(server: RunningServer, tmp_path: Path) -> None:
    """The README's pause/resume recipe, as printed (20 asks instead of forever), with checkpoints on disk."""
    import os
    import subprocess
    import sys

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Pause and resume", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) < 25
    code = code.replace('create_study("mlp"', f'create_study("{f"recipe-{secrets.token_hex(4)}"}"')
    code = code.replace("while True:", "for _ in range(20):")
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ASKTELL_URL": server.url},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(tmp_path.glob("ckpt-*.json"))
