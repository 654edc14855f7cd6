"""XGBoost: report a validation metric after each boosting round; the service's stop ends training.

booster = xgboost.train(params, dtrain, evals=[(dvalid, "valid")],
                        callbacks=[XGBoostCallback(trial, "logloss", report_as="loss")])
"""

from __future__ import annotations

from typing import Any

import xgboost

from asktell.client import Trial
from asktell.integrations._reporting import Reporter, last_value


class XGBoostCallback(xgboost.callback.TrainingCallback):
    """Reports `metric` of the evaluation set `data` (default: the last of `evals`, the one XGBoost's own early
    stopping watches) at step = boosting round (from 1), as `report_as` (default: `metric`). On a stop or pause
    decision it raises `asktell.TrialStopped` out of `xgboost.train` / `fit` (the trial is already ended on the
    server; `Study.optimize` counts it as stopped)."""

    def __init__(self, trial: Trial, metric: str, *, data: str | None = None, report_as: str | None = None) -> None:
        super().__init__()
        self.metric = metric
        self.data = data
        self.reporter = Reporter(trial, report_as or metric)

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, dict[str, Any]]) -> bool:
        if not evals_log:
            raise ValueError("XGBoostCallback needs an evaluation set: pass evals= (or eval_set= to fit)")
        data = self.data or list(evals_log)[-1]
        if data not in evals_log or self.metric not in evals_log[data]:
            known = [f"{d}: {', '.join(m)}" for d, m in evals_log.items()]
            raise ValueError(f"XGBoost reports no metric {self.metric!r} on {data!r} (it has {'; '.join(known)})")
        self.reporter.report(epoch + 1, last_value(evals_log[data][self.metric]))
        if self.reporter.ended:
            raise self.reporter.stopped()
        return False
