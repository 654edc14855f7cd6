"""The framework callbacks of `asktell.integrations`, each training a tiny model on scikit-learn's bundled data
against a real server (PostgreSQL; the callbacks do not depend on the backend). Each framework comes with an
extra of the SDK and `make install` installs them all (the root's `integrations` extra): a missing framework
skips its test, unless ASKTELL_REQUIRE_INTEGRATIONS=1 (as in CI), where it fails."""

from __future__ import annotations

import importlib
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split

import asktell
from asktell import Client
from tests.readme import run_snippet
from tests.support import RunningServer

pytestmark = pytest.mark.parametrize("server", ["postgresql"], indirect=True)

ROUNDS = 8
# Median stopping from the second round on, once two trials have completed.
CURVES = {"engine": "random", "engine_options": {"stopping": "median", "stopping_min_trials": 2, "stopping_grace": 2}}
LOSS = [{"name": "loss", "goal": "minimize"}]


def need(module: str) -> Any:
    """The framework's module; a skip where it is not installed, a failure where CI requires it."""
    if os.environ.get("ASKTELL_REQUIRE_INTEGRATIONS") == "1":
        return importlib.import_module(module)
    return pytest.importorskip(module)


@pytest.fixture
def client(server: RunningServer) -> Iterator[Client]:
    with Client(server.url) as connected:
        yield connected


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    return tuple(train_test_split(x, y, test_size=0.3, random_state=0))  # type: ignore[return-value]


def good_good_bad(
    client: Client,
    name: str,
    param: str,
    good: tuple[float, float],
    bad: float,
    fidelity: str = "round",
    steps: int = ROUNDS,
    **spec: Any,
) -> asktell.Study:
    """A study with median stopping and three queued trials: two that learn, then one that barely does, which
    the median rule stops at the grace step."""
    study = client.create_study(
        name,
        [{"name": param, "type": "float", "low": 1e-5, "high": 1.0, "log": True}],
        LOSS,
        fidelity={"name": fidelity, "min": 1, "max": steps},
        **{**CURVES, **spec},
    )
    for value in (*good, bad):
        study.add_trial({param: value})
    return study


def assert_two_completed_then_stopped(study: asktell.Study, steps: int = ROUNDS) -> None:
    first, second, third = study.trials(measurements=True)
    assert (first.state, second.state, third.state) == ("completed", "completed", "stopped")
    assert [m["step"] for m in first.measurements or []] == list(range(1, steps + 1))
    assert "median" in (third.reason or "") and len(third.measurements or []) == 2
    assert study.best_value == pytest.approx(min(first.values["loss"], second.values["loss"]))  # type: ignore[index,type-var]


def test_xgboost_reports_each_round_and_stops_when_told(
    client: Client, study_name: str, cancer: tuple[np.ndarray, ...]
) -> None:
    xgboost = need("xgboost")
    from asktell.integrations.xgboost import XGBoostCallback

    x_train, x_valid, y_train, y_valid = cancer
    dtrain, dvalid = xgboost.DMatrix(x_train, y_train), xgboost.DMatrix(x_valid, y_valid)
    study = good_good_bad(client, study_name, "eta", (0.3, 0.5), 1e-4)

    def objective(trial: asktell.Trial) -> float:
        params = {
            "eta": trial.params["eta"],
            "objective": "binary:logistic",
            "eval_metric": "logloss",
            "nthread": 1,
            "max_depth": 3,
        }
        booster = xgboost.train(
            params,
            dtrain,
            ROUNDS,
            evals=[(dtrain, "train"), (dvalid, "valid")],
            callbacks=[XGBoostCallback(trial, "logloss", report_as="loss")],
            verbose_eval=False,
        )
        return float(booster.eval(dvalid).split(":")[1])

    study.optimize(objective, n_trials=3, show_progress=False)
    assert_two_completed_then_stopped(study)
    with pytest.raises(ValueError, match="no metric 'auc'"):
        xgboost.train(
            {"nthread": 1}, dtrain, 1, evals=[(dvalid, "valid")], callbacks=[XGBoostCallback(study.ask()[0], "auc")]
        )


def test_lightgbm_reports_each_round_and_stops_when_told(
    client: Client, study_name: str, cancer: tuple[np.ndarray, ...]
) -> None:
    lightgbm = need("lightgbm")
    from asktell.integrations.lightgbm import LightGBMCallback

    x_train, x_valid, y_train, y_valid = cancer
    study = good_good_bad(client, study_name, "learning_rate", (0.3, 0.5), 1e-4)

    def objective(trial: asktell.Trial) -> float:
        train = lightgbm.Dataset(x_train, y_train)
        valid = lightgbm.Dataset(x_valid, y_valid, reference=train)
        params = {
            "objective": "binary",
            "learning_rate": trial.params["learning_rate"],
            "num_threads": 1,
            "verbose": -1,
            "num_leaves": 7,
        }
        booster = lightgbm.train(
            params,
            train,
            ROUNDS,
            valid_sets=[valid],
            callbacks=[LightGBMCallback(trial, "binary_logloss", report_as="loss")],
        )
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


@pytest.fixture(scope="module")
def mlflow_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow database for the module's tests: creating one takes MLflow seconds."""
    return tmp_path_factory.mktemp("mlflow")


def test_mlflow_logs_each_trial_as_a_run(client: Client, study_name: str, mlflow_folder: Path) -> None:
    need("mlflow")
    import mlflow

    from asktell.integrations.mlflow import MLflowCallback

    uri = f"sqlite:///{mlflow_folder / 'mlflow.db'}"
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
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if length == 0 and kind == 0:  # the block's zero padding
            position += left
            continue
        chunk += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


@pytest.fixture
def fresh_wandb() -> Iterator[None]:
    """W&B keeps the settings of its first run for the whole process (its folder among them): a test's runs go
    to that test's folder only after a teardown."""
    wandb = need("wandb")
    wandb.teardown()
    yield
    wandb.teardown()


def test_wandb_logs_each_trial_as_an_offline_run(
    client: Client, study_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_wandb: None
) -> None:
    from asktell.integrations.wandb import WandbCallback

    monkeypatch.setenv("WANDB_SILENT", "true")
    study = good_good_bad(client, study_name, "lr", (0.5, 0.9), 1e-4, fidelity="epoch", steps=3)
    callback = WandbCallback(mode="offline", dir=tmp_path)
    study.optimize(curves_objective, n_trials=3, show_progress=False, callbacks=[callback])
    need("wandb").teardown()  # W&B's service closes the last run's file on its own time: now
    assert sorted(callback.run_ids) == [0, 1, 2]
    (path,) = tmp_path.glob(f"wandb/offline-run-*-{callback.run_ids[0]}/run-*.wandb")
    records = wandb_records(path)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.display_name, run.run_group, list(run.tags)) == (f"{study_name}-trial-0", study_name, ["completed"])
    config = {u.key: u.value_json for u in run.config.update}
    assert config["lr"] == "0.5"
    curve = [
        {i.nested_key[0]: i.value_json for i in r.history.item}
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    assert [(row["_step"], float(row["loss"])) for row in curve] == [
        ("1", pytest.approx(0.75)),
        ("2", pytest.approx(0.75**2)),
        ("3", pytest.approx(0.75**3)),
    ]
    summary = {
        u.key: u.value_json
        for r in records
        if r.WhichOneof("record_type") == "summary"
        for u in r.summary.update
        if u.key
    }
    assert summary["asktell.state"] == '"completed"' and float(summary["loss"]) == pytest.approx(0.75**3)
    (stopped,) = tmp_path.glob(f"wandb/offline-run-*-{callback.run_ids[2]}/run-*.wandb")
    (run,) = [r.run for r in wandb_records(stopped) if r.WhichOneof("record_type") == "run"]
    assert list(run.tags) == ["stopped"]


@pytest.fixture(scope="module")
def digits() -> tuple[Any, Any, Any, Any]:
    """Scikit-learn's 8x8 digits as float tensors, scaled to [0, 1]: a model learns them in a few epochs."""
    torch = need("torch")
    x, y = load_digits(return_X_y=True)
    x_train, x_valid, y_train, y_valid = train_test_split(x / 16.0, y, test_size=0.3, random_state=0)
    return (
        torch.tensor(x_train, dtype=torch.float32),
        torch.tensor(x_valid, dtype=torch.float32),
        torch.tensor(y_train),
        torch.tensor(y_valid),
    )


def lightning_objective(digits: tuple[Any, ...], checkpoints: Path) -> Callable[[asktell.Trial], float]:
    lightning = need("lightning")
    import torch

    from asktell.integrations.lightning import LightningCallback

    x_train, x_valid, y_train, y_valid = digits

    class Classifier(lightning.LightningModule):  # type: ignore[misc]
        def __init__(self, lr: float) -> None:
            super().__init__()
            self.lr = lr
            self.net = torch.nn.Linear(64, 10)

        def training_step(self, batch: Any, index: int) -> Any:
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def validation_step(self, batch: Any, index: int) -> None:
            x, y = batch
            self.log("val_loss", torch.nn.functional.cross_entropy(self.net(x), y))

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=self.lr)

    def loader(x: Any, y: Any) -> Any:
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=128)

    def objective(trial: asktell.Trial) -> float:
        torch.manual_seed(0)
        trainer = lightning.Trainer(
            max_epochs=int(trial.budget or ROUNDS),
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=[LightningCallback(trial, "val_loss", report_as="loss", checkpoint_dir=checkpoints)],
        )
        trainer.fit(
            Classifier(trial.params["lr"]),
            loader(x_train, y_train),
            loader(x_valid, y_valid),
            ckpt_path=trial.checkpoint,
        )
        return float(trainer.callback_metrics["val_loss"])

    return objective


def test_lightning_reports_each_epoch_and_stops_when_told(
    client: Client, study_name: str, tmp_path: Path, digits: tuple[Any, ...]
) -> None:
    objective = lightning_objective(digits, tmp_path)
    study = good_good_bad(client, study_name, "lr", (0.5, 1.0), 1e-5, fidelity="epoch", steps=4)
    study.optimize(objective, n_trials=3, show_progress=False)
    assert_two_completed_then_stopped(study, steps=4)


def test_lightning_pauses_with_a_checkpoint_and_resumes_from_it(
    client: Client, study_name: str, tmp_path: Path, digits: tuple[Any, ...]
) -> None:
    import torch

    objective = lightning_objective(digits, tmp_path)
    # ASHA (eta 2, rungs at epochs 1, 2, 4) hands out each new trial for one epoch and pauses it there; with two
    # trials paused at epoch 1, the better one is promoted: handed out again to train on to epoch 2.
    study = client.create_study(
        study_name,
        [{"name": "lr", "type": "float", "low": 1e-3, "high": 1.0}],
        LOSS,
        fidelity={"name": "epoch", "min": 1, "max": 4},
        engine="asha",
        engine_options={"eta": 2},
    )
    study.add_trial({"lr": 0.001})
    study.add_trial({"lr": 1.0})
    for _ in range(2):
        (trial,) = study.ask(worker_id="a")
        assert trial.budget == 1
        with pytest.raises(asktell.TrialStopped) as paused:
            objective(trial)
        assert paused.value.action == "pause"
        trial.refresh()
        assert trial.state == "paused" and trial.checkpoint and Path(trial.checkpoint).exists()
        assert "state_dict" in torch.load(trial.checkpoint, weights_only=False)
    (resumed,) = study.ask(worker_id="a")
    assert (resumed.number, resumed.resume_from, resumed.budget) == (1, 1, 2)
    with pytest.raises(asktell.TrialStopped):
        objective(resumed)  # from its checkpoint: it trains epoch 2 only, and pauses at the next rung
    assert [m["step"] for m in study.trial(1).measurements or []] == [1, 2]


def huggingface_objective(digits: tuple[Any, ...], output: Path) -> Callable[[asktell.Trial], float]:
    transformers = need("transformers")
    import torch

    from asktell.integrations.huggingface import HuggingFaceCallback

    x_train, x_valid, y_train, y_valid = digits

    class Classifier(torch.nn.Module):
        """Any torch module whose forward returns the loss works with the Trainer: no weights to download."""

        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(64, 10)

        def forward(self, x: Any, labels: Any) -> dict[str, Any]:
            logits = self.net(x)
            return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}

    def rows(x: Any, y: Any) -> list[dict[str, Any]]:
        return [{"x": features, "labels": label} for features, label in zip(x, y, strict=True)]

    def objective(trial: asktell.Trial) -> float:
        torch.manual_seed(0)
        args = transformers.TrainingArguments(
            output_dir=str(output / f"trial-{trial.number}"),
            num_train_epochs=int(trial.budget or ROUNDS),
            learning_rate=trial.params["lr"],
            lr_scheduler_type="constant",
            optim="sgd",
            per_device_train_batch_size=128,
            eval_strategy="epoch",
            save_strategy="no",
            logging_strategy="no",
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer = transformers.Trainer(
            Classifier(),
            args,
            train_dataset=rows(x_train, y_train),
            eval_dataset=rows(x_valid, y_valid),
            callbacks=[HuggingFaceCallback(trial, "eval_loss", report_as="loss")],
        )
        trainer.train(resume_from_checkpoint=trial.checkpoint)
        return float(trainer.evaluate()["eval_loss"])

    return objective


def test_huggingface_trainer_reports_each_epoch_and_stops_when_told(
    client: Client, study_name: str, tmp_path: Path, digits: tuple[Any, ...]
) -> None:
    objective = huggingface_objective(digits, tmp_path)
    study = good_good_bad(client, study_name, "lr", (0.5, 1.0), 1e-5, fidelity="epoch", steps=4)
    study.optimize(objective, n_trials=3, show_progress=False)
    assert_two_completed_then_stopped(study, steps=4)


def test_huggingface_trainer_pauses_with_a_checkpoint_and_resumes_from_it(
    client: Client, study_name: str, tmp_path: Path, digits: tuple[Any, ...]
) -> None:
    objective = huggingface_objective(digits, tmp_path)
    study = client.create_study(
        study_name,
        [{"name": "lr", "type": "float", "low": 1e-3, "high": 1.0}],
        LOSS,
        fidelity={"name": "epoch", "min": 1, "max": 4},
        engine="asha",
        engine_options={"eta": 2},
    )  # as in the Lightning test
    study.add_trial({"lr": 0.001})
    study.add_trial({"lr": 1.0})
    for _ in range(2):
        (trial,) = study.ask(worker_id="a")
        with pytest.raises(asktell.TrialStopped):
            objective(trial)
        trial.refresh()
        assert trial.state == "paused" and trial.checkpoint and (Path(trial.checkpoint) / "trainer_state.json").exists()
    (resumed,) = study.ask(worker_id="a")
    assert (resumed.number, resumed.resume_from, resumed.budget) == (1, 1, 2)
    with pytest.raises(asktell.TrialStopped):
        objective(resumed)
    assert [m["step"] for m in study.trial(1).measurements or []] == [1, 2]


@pytest.fixture
def readme(server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], dict[str, Any]]:
    """Runs a README snippet against the test server, in a fresh folder (for the files trackers write)."""
    monkeypatch.setenv("ASKTELL_URL", server.url)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    return run_snippet


def test_readme_xgboost_and_lightgbm_snippets(readme: Callable[[str], dict[str, Any]]) -> None:
    need("xgboost")
    need("lightgbm")
    for marker in ('"readme-xgboost"', '"readme-lightgbm"'):
        study: asktell.Study = readme(marker)["study"]
        trials = study.trials(measurements=True)
        assert len(trials) == 6 and {t.state for t in trials} <= {"completed", "stopped"}
        assert all(len(t.measurements or []) == 20 for t in trials if t.state == "completed")
        assert study.best_value > 0


def test_readme_lightning_snippet(readme: Callable[[str], dict[str, Any]]) -> None:
    need("lightning")
    study: asktell.Study = readme('"readme-lightning"')["study"]
    trials = study.trials(measurements=True)
    assert trials and {t.state for t in trials} <= {"paused", "completed", "stopped"}
    assert any(t.state == "paused" and t.checkpoint and Path(t.checkpoint).exists() for t in trials)


def test_readme_huggingface_snippet(readme: Callable[[str], dict[str, Any]]) -> None:
    need("transformers")
    study: asktell.Study = readme('"readme-huggingface"')["study"]
    trials = study.trials(measurements=True)
    assert len(trials) == 4 and {t.state for t in trials} <= {"completed", "stopped"}
    assert all([m["step"] for m in t.measurements or []] == [1, 2, 3] for t in trials if t.state == "completed")


def test_readme_tracking_snippet(
    readme: Callable[[str], dict[str, Any]], mlflow_folder: Path, monkeypatch: pytest.MonkeyPatch, fresh_wandb: None
) -> None:
    need("mlflow")
    import mlflow

    monkeypatch.chdir(mlflow_folder)  # the snippet's sqlite:///mlflow.db is the other MLflow test's
    monkeypatch.setenv("WANDB_DIR", str(mlflow_folder))
    readme('"readme-tracking"')
    tracking = mlflow.MlflowClient(f"sqlite:///{mlflow_folder / 'mlflow.db'}")
    experiment = tracking.get_experiment_by_name("readme-tracking")
    assert len(tracking.search_runs([experiment.experiment_id])) == 4
    assert len(list(mlflow_folder.glob("wandb/offline-run-*/run-*.wandb"))) == 4


def ray_trainable(config: dict[str, Any]) -> None:
    """A Ray function trainable: a curve of three steps whose level depends on x."""
    from ray import tune

    for epoch in (1, 2, 3):
        tune.report({"loss": (config["x"] - 0.3) ** 2 + 1 / epoch, "epoch": epoch})


def test_ray_tune_runs_the_studys_trials_and_tells_their_results(readme: Callable[[str], dict[str, Any]]) -> None:
    """The README's snippet: Ray runs the trials, the study chose them and has their curves and values."""
    need("ray")
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        variables = readme('"readme-ray"')
    finally:  # Ray's driver keeps its own Ctrl-C handler after shutdown: later tests need Python's
        for number, handler in handlers.items():
            signal.signal(number, handler)
    study: asktell.Study = variables["study"]
    results = variables["results"]
    assert not results.errors
    trials = study.trials(measurements=True)
    assert [t.state for t in trials] == ["completed"] * 4
    assert all([m["step"] for m in t.measurements or []] == [1, 2, 3] for t in trials)
    ray_losses = sorted(r.metrics["loss"] for r in results)
    assert sorted(t.values["loss"] for t in trials) == pytest.approx(ray_losses)  # type: ignore[index,type-var]
    assert results.get_best_result(metric="loss", mode="min").config == study.best_params


def test_agent_logs_its_trials_to_mlflow_and_wandb(
    client: Client, study_name: str, mlflow_folder: Path, tmp_path: Path, server: RunningServer
) -> None:
    need("mlflow")
    need("wandb")
    import mlflow

    study = client.create_study(
        study_name,
        [{"name": "x", "type": "float", "low": 0.0, "high": 1.0}],
        LOSS,
        fidelity={"name": "epoch", "min": 1, "max": 2},
        engine="random",
    )
    program = "import sys; x = float(sys.argv[1]); [print(f'asktell: step={e} loss={x / e}') for e in (1, 2)]"
    uri = f"sqlite:///{mlflow_folder / 'mlflow.db'}"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "asktell.cli",
            "agent",
            study_name,
            "--count",
            "2",
            "--mlflow",
            uri,
            "--wandb",
            "agent-runs",
            "--literal-braces",
            "--",
            sys.executable,
            "-c",
            program,
            "{x}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={
            **os.environ,
            "ASKTELL_URL": server.url,
            "WANDB_MODE": "offline",
            "WANDB_DIR": str(tmp_path),
            "WANDB_SILENT": "true",
        },
    )
    assert done.returncode == 0, done.stderr
    assert "logging trial" not in done.stderr
    tracking = mlflow.MlflowClient(uri)
    runs = tracking.search_runs([tracking.get_experiment_by_name(study_name).experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"{study_name}-trial-0", f"{study_name}-trial-1"]
    assert all(
        r.info.status == "FINISHED" and len(tracking.get_metric_history(r.info.run_id, "loss")) == 3 for r in runs
    )
    assert len(list(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))) == 2
    assert [t.state for t in study.trials()] == ["completed"] * 2
