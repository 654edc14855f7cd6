"""The framework callbacks of `asktell.integrations`, each training a tiny model on scikit-learn's bundled data
against a real server (PostgreSQL; the callbacks do not depend on the backend). Each framework comes with an
extra of the SDK and CI installs them all (the root's `integrations` extra): the import guards only keep a
partial checkout usable."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split

import asktell
from asktell import Client
from tests.conftest import RunningServer

pytestmark = pytest.mark.parametrize("server", ["postgresql"], indirect=True)

ROUNDS = 8
# Median stopping from the second round on, once two trials have completed.
CURVES = {"engine": "random", "engine_options": {"stopping": "median", "stopping_min_trials": 2, "stopping_grace": 2}}
LOSS = [{"name": "loss", "goal": "minimize"}]


@pytest.fixture
def client(server: RunningServer) -> Iterator[Client]:
    with Client(server.url) as connected:
        yield connected


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    return tuple(train_test_split(x, y, test_size=0.3, random_state=0))  # type: ignore[return-value]


def good_good_bad(client: Client, name: str, param: str, good: tuple[float, float], bad: float,
                  fidelity: str = "round", steps: int = ROUNDS, **spec: Any) -> asktell.Study:
    """A study with median stopping and three queued trials: two that learn, then one that barely does, which
    the median rule stops at the grace step."""
    study = client.create_study(name, [{"name": param, "type": "float", "low": 1e-5, "high": 1.0, "log": True}],
                                LOSS, fidelity={"name": fidelity, "min": 1, "max": steps}, **{**CURVES, **spec})
    for value in (*good, bad):
        study.add_trial({param: value})
    return study


def assert_two_completed_then_stopped(study: asktell.Study, steps: int = ROUNDS) -> None:
    first, second, third = study.trials(measurements=True)
    assert (first.state, second.state, third.state) == ("completed", "completed", "stopped")
    assert [m["step"] for m in first.measurements or []] == list(range(1, steps + 1))
    assert "median" in (third.reason or "") and len(third.measurements or []) == 2
    assert study.best_value == pytest.approx(min(first.values["loss"], second.values["loss"]))  # type: ignore[index,type-var]


def test_xgboost_reports_each_round_and_stops_when_told(client: Client, study_name: str,
                                                        cancer: tuple[np.ndarray, ...]) -> None:
    xgboost = pytest.importorskip("xgboost")
    from asktell.integrations.xgboost import XGBoostCallback

    x_train, x_valid, y_train, y_valid = cancer
    dtrain, dvalid = xgboost.DMatrix(x_train, y_train), xgboost.DMatrix(x_valid, y_valid)
    study = good_good_bad(client, study_name, "eta", (0.3, 0.5), 1e-4)

    def objective(trial: asktell.Trial) -> float:
        params = {"eta": trial.params["eta"], "objective": "binary:logistic", "eval_metric": "logloss",
                  "nthread": 1, "max_depth": 3}
        booster = xgboost.train(params, dtrain, ROUNDS, evals=[(dtrain, "train"), (dvalid, "valid")],
                                callbacks=[XGBoostCallback(trial, "logloss", report_as="loss")], verbose_eval=False)
        return float(booster.eval(dvalid).split(":")[1])

    study.optimize(objective, n_trials=3, show_progress=False)
    assert_two_completed_then_stopped(study)
    with pytest.raises(ValueError, match="no metric 'auc'"):
        xgboost.train({"nthread": 1}, dtrain, 1, evals=[(dvalid, "valid")],
                      callbacks=[XGBoostCallback(study.ask()[0], "auc")])


def test_lightgbm_reports_each_round_and_stops_when_told(client: Client, study_name: str,
                                                         cancer: tuple[np.ndarray, ...]) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    from asktell.integrations.lightgbm import LightGBMCallback

    x_train, x_valid, y_train, y_valid = cancer
    study = good_good_bad(client, study_name, "learning_rate", (0.3, 0.5), 1e-4)

    def objective(trial: asktell.Trial) -> float:
        train = lightgbm.Dataset(x_train, y_train)
        valid = lightgbm.Dataset(x_valid, y_valid, reference=train)
        params = {"objective": "binary", "learning_rate": trial.params["learning_rate"], "num_threads": 1,
                  "verbose": -1, "num_leaves": 7}
        booster = lightgbm.train(params, train, ROUNDS, valid_sets=[valid],
                                 callbacks=[LightGBMCallback(trial, "binary_logloss", report_as="loss")])
        return float(booster.best_score["valid_0"]["binary_logloss"])

    study.optimize(objective, n_trials=3, show_progress=False)
    assert_two_completed_then_stopped(study)


def curves_objective(trial: asktell.Trial) -> float:
    """A learning curve without a framework: what the trackers log."""
    loss = 1.0
    for step in (1, 2, 3):
        loss *= 1 - trial.params["lr"] / 2
        trial.report(step, {"loss": loss}).raise_if_stopped()
    return loss


def test_mlflow_logs_each_trial_as_a_run(client: Client, study_name: str, tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    import mlflow

    from asktell.integrations.mlflow import MLflowCallback

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    study = good_good_bad(client, study_name, "lr", (0.5, 0.9), 1e-4, fidelity="epoch", steps=3)
    study.optimize(curves_objective, n_trials=3, show_progress=False, callbacks=[MLflowCallback(uri)])
    tracking = mlflow.MlflowClient(uri)
    experiment = tracking.get_experiment_by_name(study_name)
    runs = {r.info.run_name: r for r in tracking.search_runs([experiment.experiment_id])}
    assert set(runs) == {f"{study_name}-trial-{n}" for n in range(3)}
    first, stopped = runs[f"{study_name}-trial-0"], runs[f"{study_name}-trial-2"]
    assert first.data.params == {"lr": "0.5"} and first.info.status == "FINISHED"
    assert first.data.tags["asktell.state"] == "completed"
    assert first.data.metrics["loss"] == pytest.approx(0.75**3)  # the final value is the latest
    history = tracking.get_metric_history(first.info.run_id, "loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 3]
    assert stopped.info.status == "KILLED" and "median" in stopped.data.tags["asktell.reason"]


def wandb_records(path: Path) -> list[Any]:
    """The records of an offline W&B run file (LevelDB log blocks of 32 KiB after a 7-byte header)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, chunk, records = 7, b"", []
    while position + 7 <= len(data):
        left = 32768 - position % 32768
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if length == 0 and kind == 0:  # the block's zero padding
            position += left
            continue
        chunk += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


def test_wandb_logs_each_trial_as_an_offline_run(client: Client, study_name: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    from asktell.integrations.wandb import WandbCallback

    monkeypatch.setenv("WANDB_SILENT", "true")
    study = good_good_bad(client, study_name, "lr", (0.5, 0.9), 1e-4, fidelity="epoch", steps=3)
    callback = WandbCallback(mode="offline", dir=tmp_path)
    study.optimize(curves_objective, n_trials=3, show_progress=False, callbacks=[callback])
    assert sorted(callback.run_ids) == [0, 1, 2]
    (path,) = tmp_path.glob(f"wandb/offline-run-*-{callback.run_ids[0]}/run-*.wandb")
    records = wandb_records(path)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.display_name, run.run_group, list(run.tags)) == (f"{study_name}-trial-0", study_name, ["completed"])
    config = {u.key: u.value_json for u in run.config.update}
    assert config["lr"] == "0.5"
    curve = [{i.nested_key[0]: i.value_json for i in r.history.item} for r in records
             if r.WhichOneof("record_type") == "history"]
    assert [(row["_step"], float(row["loss"])) for row in curve] == [
        ("1", pytest.approx(0.75)), ("2", pytest.approx(0.75**2)), ("3", pytest.approx(0.75**3))]
    summary = {u.key: u.value_json for r in records if r.WhichOneof("record_type") == "summary"
               for u in r.summary.update if u.key}
    assert summary["asktell.state"] == '"completed"' and float(summary["loss"]) == pytest.approx(0.75**3)
    (stopped,) = tmp_path.glob(f"wandb/offline-run-*-{callback.run_ids[2]}/run-*.wandb")
    (run,) = [r.run for r in wandb_records(stopped) if r.WhichOneof("record_type") == "run"]
    assert list(run.tags) == ["stopped"]
