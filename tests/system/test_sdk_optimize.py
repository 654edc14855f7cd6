"""`Study.optimize` with a time limit and callbacks, `TrialStopped`, and `best_trial` / `best_params` /
`best_value`, against a real server on PostgreSQL and SQLite."""

from __future__ import annotations

import time

import pytest

import asktell
from asktell import Client
from tests.readme import run_snippet
from tests.support import RunningServer

SPACE = [{"name": "x", "type": "float", "low": 0.0, "high": 1.0}]
LOSS = [{"name": "loss", "goal": "minimize"}]
CURVES = {
    "fidelity": {"name": "epoch", "min": 1, "max": 4},
    "engine": "random",
    "engine_options": {"stopping": "median", "stopping_min_trials": 3, "stopping_grace": 2},
}


def test_timeout_ends_the_loop_and_callbacks_see_every_trial(server: RunningServer, study_name: str) -> None:
    with Client(server.url) as client:
        study = client.create_study(study_name, SPACE, LOSS, engine="random")
        seen: list[tuple[str, int, str]] = []

        def objective(trial: asktell.Trial) -> float:
            time.sleep(0.2)
            return float(trial.params["x"])

        started = time.monotonic()
        study.optimize(
            objective,
            timeout=0.5,
            n_workers=2,
            show_progress=False,
            callbacks=[lambda s, t: seen.append((s.name, t.number, t.state))],
        )
        assert time.monotonic() - started < 5
        trials = study.trials()
        assert 2 <= len(trials) <= 8 and all(t.state == "completed" for t in trials)  # no trial is left active
        assert sorted(seen) == sorted((study_name, t.number, "completed") for t in trials)
        study.optimize(objective, n_trials=2, timeout=60, show_progress=False)  # n_trials comes first
        assert len(study.trials()) == len(trials) + 2
        with pytest.raises(ValueError, match="n_trials, timeout or both"):
            study.optimize(objective)
        with pytest.raises(ValueError, match="timeout >= 0"):
            study.optimize(objective, timeout=-1)

        def broken(study: asktell.Study, trial: asktell.Trial) -> None:
            raise RuntimeError("callback failed")

        with pytest.raises(RuntimeError, match="callback failed"):  # a failing callback ends the loop
            study.optimize(objective, n_trials=5, callbacks=[broken], show_progress=False)
        assert len(study.trials()) == len(trials) + 3


def test_trial_stopped_ends_trials_without_failing_them(server: RunningServer, study_name: str) -> None:
    with Client(server.url) as client:
        study = client.create_study(study_name, SPACE, LOSS, **CURVES)  # type: ignore[arg-type]
        for x in (0.1, 0.2, 0.3, 0.9, 0.05, 0.5):  # the loop evaluates these in order
            study.add_trial({"x": x})

        def objective(trial: asktell.Trial) -> float:
            x = trial.params["x"]
            if x == 0.5:
                raise asktell.TrialStopped("not worth it")  # the loop's own decision, trial still active
            for epoch in range(1, 5):
                trial.report(epoch, {"loss": x + 1 / epoch}).raise_if_stopped()
            return float(x + 0.25)

        ended: list[str] = []
        study.optimize(objective, n_trials=6, show_progress=False, callbacks=[lambda s, t: ended.append(t.state)])
        states = {t.params["x"]: (t.state, t.reason, t.values) for t in study.trials()}
        # 0.9 is worse than the median of the three completed curves at epoch 2: the median rule stopped it.
        assert states[0.9][0] == "stopped" and "median" in (states[0.9][1] or "")
        assert states[0.9][2] == {"loss": pytest.approx(0.9 + 1 / 2)}
        assert states[0.05][0] == "completed"
        assert states[0.5] == ("stopped", "not worth it", None)
        assert ended == ["completed", "completed", "completed", "stopped", "completed", "stopped"]


def test_best_trial_params_and_value(server: RunningServer, study_name: str) -> None:
    with Client(server.url) as client:
        study = client.create_study(study_name, SPACE, LOSS, engine="random")
        with pytest.raises(ValueError, match="no completed feasible trial yet"):
            study.best_value  # noqa: B018
        for x in (0.7, 0.2, 0.5):
            study.add_trial({"x": x}, values={"loss": x * 2})
        assert study.best_params == {"x": 0.2} and study.best_value == pytest.approx(0.4)
        assert study.best_trial.number == 1
        pareto = client.create_study(f"{study_name}-2", SPACE, [*LOSS, {"name": "seconds", "goal": "minimize"}])
        with pytest.raises(ValueError, match="best_trials"):
            pareto.best_params  # noqa: B018


def test_readme_optimize_snippet(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASKTELL_URL", server.url)
    variables = run_snippet('"readme-curves"')
    study: asktell.Study = variables["study"]
    finished: list[str] = variables["finished"]
    assert len(finished) == 12 and set(finished) <= {"completed", "stopped"}
    completed = [t.values["loss"] for t in study.trials(state="completed") if t.values]
    assert study.best_value == min(completed)  # type: ignore[type-var]
    assert set(study.best_params) == {"lr"}
