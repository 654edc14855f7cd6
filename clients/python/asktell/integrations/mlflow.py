"""MLflow: one run per trial, with its params, final values, curves and state, as an `optimize` callback.

study.optimize(objective, n_trials=50, callbacks=[MLflowCallback(tracking_uri="http://mlflow:5000")])
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import mlflow
from mlflow.entities import Metric, Param, RunTag

from asktell.integrations._trials import TrialRecord, integral_step, record_of

if TYPE_CHECKING:
    from asktell.client import Study, Trial

# MLflow's run statuses for the states a trial ends in; a paused trial's run stays open until it finishes.
STATUS = {"completed": "FINISHED", "stopped": "KILLED", "infeasible": "FINISHED", "failed": "FAILED"}


class MLflowCallback:
    """Logs each trial `optimize` finishes as an MLflow run of the experiment `experiment` (default: the study's
    name): params, each reported curve point as a metric at its step, the final values as the latest value of
    their metrics, and tags `asktell.study`, `asktell.trial`, `asktell.state` (and `asktell.reason`). A paused
    trial's run stays open and goes on when the trial ends. `tracking_uri` defaults to MLflow's own
    (`MLFLOW_TRACKING_URI`). It uses an `MlflowClient`, so the caller's active run is left alone."""

    def __init__(
        self, tracking_uri: str | None = None, experiment: str | None = None, *, tags: dict[str, str] | None = None
    ) -> None:
        self.client = mlflow.MlflowClient(tracking_uri)
        self.experiment = experiment
        self.tags = dict(tags or {})
        self.runs: dict[int, str] = {}  # trial number -> run id, for a paused trial logged again when it ends
        self.logged: dict[int, float] = {}  # trial number -> the last curve step logged

    def __call__(self, study: Study, trial: Trial) -> None:
        self.log(record_of(study, trial))

    def _experiment_id(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        return str(found.experiment_id) if found is not None else str(self.client.create_experiment(name))

    def log(self, record: TrialRecord) -> str:
        """Log one trial; the run's id."""
        tags = {**self.tags, **record.tags}
        run_id = self.runs.get(record.number)
        if run_id is None:
            started = int(record.started_at.timestamp() * 1000) if record.started_at else None
            run = self.client.create_run(
                self._experiment_id(self.experiment or record.study),
                start_time=started,
                tags=tags,
                run_name=record.run_name,
            )
            run_id = str(run.info.run_id)
            self.runs[record.number] = run_id
            self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in record.params.items()])
        now = int(time.time() * 1000)
        done = self.logged.get(record.number, -float("inf"))
        metrics = [
            Metric(name, value, now, integral_step(step))
            for step, values in record.curves
            if step > done
            for name, value in values.items()
        ]
        if record.curves:
            self.logged[record.number] = record.curves[-1][0]
        # The final values at the last step, a millisecond later: MLflow's latest value of each metric (by step,
        # then time) is then the trial's result, with the curve before it.
        last = integral_step(record.curves[-1][0]) if record.curves else 0
        metrics += [Metric(name, value, now + 1, last) for name, value in record.values.items()]
        self.client.log_batch(run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in tags.items()])
        if record.state in STATUS:
            ended = int(record.finished_at.timestamp() * 1000) if record.finished_at else None
            self.client.set_terminated(run_id, status=STATUS[record.state], end_time=ended)
        return run_id
