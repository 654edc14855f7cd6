"""LightGBM: report a validation metric after each boosting round; the service's stop ends training.

booster = lightgbm.train(params, train_set, valid_sets=[valid_set],
                         callbacks=[LightGBMCallback(trial, "binary_logloss", report_as="loss")])
"""

from __future__ import annotations

from typing import Any

from asktell.client import Trial
from asktell.integrations._reporting import Reporter


class LightGBMCallback:
    """Reports `metric` of the validation set `data` (default: the last of `valid_sets`) at step = boosting
    round (from 1), as `report_as` (default: `metric`). On a stop or pause decision it raises
    `asktell.TrialStopped` out of `lightgbm.train` / `fit` (the trial is already ended on the server;
    `Study.optimize` counts it as stopped)."""

    order = 25  # before LightGBM's early stopping (30): each round is reported before that may end training

    def __init__(self, trial: Trial, metric: str, *, data: str | None = None, report_as: str | None = None) -> None:
        self.metric = metric
        self.data = data
        self.reporter = Reporter(trial, report_as or metric)

    def __call__(self, env: Any) -> None:
        results = env.evaluation_result_list or []
        if not results:
            raise ValueError("LightGBMCallback needs a validation set: pass valid_sets= (or eval_set= to fit)")
        data = self.data or results[-1][0]
        matches = [r[2] for r in results if r[0] == data and r[1] == self.metric]
        if not matches:
            known = sorted({f"{r[0]} {r[1]}" for r in results})
            raise ValueError(f"LightGBM reports no metric {self.metric!r} on {data!r} (it has {', '.join(known)})")
        self.reporter.report(env.iteration + 1, matches[-1])
        if self.reporter.ended:
            raise self.reporter.stopped()
