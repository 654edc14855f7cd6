"""Pause and resume through the SDK: engine asha pauses runs at its rungs and promotions resume them from the
client's checkpoint. Unit tests pin the rung and promotion rules; an end-to-end test trains synthetic curves on
four threads against PostgreSQL."""

from __future__ import annotations

import json
import secrets
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

from asktell import Client
from service.domain.spec import StudySpec
from service.domain.trial import Measurement, TrialState, TrialView
from service.engines import resolve_engine
from service.engines.asha import AshaEngine, AshaOptions, rungs
from tests.support import REPO, RunningServer

FIDELITY = {"name": "epoch", "min": 1, "max": 27}
PARAMS = [{"name": "x", "type": "float", "low": 0.0, "high": 1.0}]
OBJECTIVE = [{"name": "loss", "goal": "minimize"}]


def _spec(**options: object) -> StudySpec:
    return StudySpec.model_validate({"params": PARAMS, "objectives": OBJECTIVE, "fidelity": FIDELITY,
                                     "engine": "asha", "engine_options": options})


def curve(x: float, epoch: int) -> float:
    """A learning curve whose asymptote is best at x = 0.3; worse configurations also start slower."""
    return (x - 0.3) ** 2 + (0.5 + x) / epoch


def _trial(number: int, x: float, last_epoch: int, state: TrialState) -> TrialView:
    return TrialView(number, {"x": x}, state, None,
                     tuple(Measurement(float(e), {"loss": curve(x, e)}) for e in range(1, last_epoch + 1)))


def test_rungs_rise_by_eta_to_the_fidelity_max() -> None:
    assert rungs(_spec(), AshaOptions()) == [1.0, 3.0, 9.0, 27.0]
    assert rungs(_spec(), AshaOptions(eta=2, min_step=4)) == [4.0, 8.0, 16.0, 27.0]
    assert AshaEngine().first_budget(_spec(), AshaOptions()) == 1.0


def test_rungs_are_whole_steps_on_a_whole_step_fidelity() -> None:
    def spec(low: float, high: float) -> StudySpec:
        return StudySpec.model_validate({"params": PARAMS, "objectives": OBJECTIVE, "engine": "asha",
                                         "fidelity": {"name": "epoch", "min": low, "max": high}})

    assert rungs(spec(1, 30), AshaOptions()) == [1.0, 3.0, 10.0, 30.0]  # not 1.11, 3.33, 10
    assert rungs(spec(1, 100), AshaOptions()) == [4.0, 11.0, 33.0, 100.0]
    assert rungs(spec(1, 5), AshaOptions(eta=2, min_step=1.2)) == [1.0, 2.0, 5.0]  # 1.2, 2.4, 4.8: 4.8 rounds to 5
    assert rungs(spec(0.5, 10.5), AshaOptions()) == [0.5, 1.5, 4.5, 10.5]  # a continuous axis keeps fractions


def test_promotions_take_the_top_third_of_a_rung_highest_rung_first() -> None:
    spec, options = _spec(), AshaOptions()
    engine = AshaEngine()
    xs = [0.3, 0.9, 0.8, 0.7, 0.35, 0.6]
    trials = [_trial(i, x, 1, TrialState.PAUSED) for i, x in enumerate(xs)]  # six runs paused at rung 1
    assert [(r.number, r.budget) for r in engine.resumes(spec, options, trials, 5)] == [(0, 3.0), (4, 3.0)]
    # Trial 0 resumed to rung 3 and paused there, with two more at rung 3: the top third of those three (trial 0)
    # goes on to rung 9 before anything else is promoted from rung 1.
    trials[0] = _trial(0, 0.3, 3, TrialState.PAUSED)
    trials += [_trial(6, 0.9, 3, TrialState.PAUSED), _trial(7, 0.95, 3, TrialState.PAUSED)]
    assert [(r.number, r.budget) for r in engine.resumes(spec, options, trials, 5)] == [(0, 9.0), (4, 3.0)]
    # Active runs count towards a rung but are not resumed; fewer than eta runs promote nothing.
    assert engine.resumes(spec, options, [_trial(0, 0.3, 1, TrialState.ACTIVE), _trial(1, 0.9, 1, TrialState.PAUSED),
                                          _trial(2, 0.8, 1, TrialState.PAUSED)], 5) == []
    assert engine.resumes(spec, options, trials[:2], 5) == []


def test_asha_needs_a_fidelity_and_one_objective() -> None:
    from service.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="needs a fidelity"):
        resolve_engine(StudySpec.model_validate({"params": PARAMS, "objectives": OBJECTIVE, "engine": "asha"}))
    with pytest.raises(InvalidArgument, match="eta"):
        resolve_engine(_spec(eta=1))


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
    response = api.post("/v1/studies", json={"name": name, "params": PARAMS, "objectives": OBJECTIVE,
                                             "fidelity": FIDELITY, "engine": "asha"})
    assert response.status_code == 201, response.text
    (trial,) = api.post(f"/v1/studies/{name}/ask", json={}).json()["trials"]
    assert trial["budget"] == 1 and trial["resume_from"] is None and trial["checkpoint"] is None
    paused = api.post(f"/v1/studies/{name}/trials/{trial['number']}/report",
                      json={"step": 1, "values": {"loss": 0.5}, "checkpoint": "s3://bucket/ckpt-1"}).json()
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
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ASKTELL_URL": server.url})
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(tmp_path.glob("ckpt-*.json"))
