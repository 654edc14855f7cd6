"""Weights & Biases: one run per trial, with its params, curves, final values and state, as an `optimize` callback.

study.optimize(objective, n_trials=50, callbacks=[WandbCallback(project="mlp-sweep")])
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import wandb

from asktell.integrations._trials import TrialRecord, integral_step, record_of

if TYPE_CHECKING:
    from asktell.client import Study, Trial


class WandbCallback:
    """Logs each trial `optimize` ends as a W&B run of `project` (default: the study's name), grouped by study:
    the params as its config, each reported curve point at its step, the final values and the trial's state in
    its summary, the state as a tag. A paused trial is logged once it ends (a later `optimize` resumes it).
    `mode="offline"` keeps the runs on disk for `wandb sync`; other keyword arguments go to `wandb.init`."""

    def __init__(
        self,
        project: str | None = None,
        *,
        mode: Literal["online", "offline", "disabled", "shared"] | None = None,
        dir: str | Path | None = None,
        **init: Any,
    ) -> None:
        self.project = project
        self.mode = mode
        self.dir = str(dir) if dir is not None else None
        self.init = init
        self.run_ids: dict[int, str] = {}  # trial number -> W&B run id

    def __call__(self, study: Study, trial: Trial) -> None:
        if trial.state not in ("paused", "active", "waiting"):
            self.log(record_of(study, trial))

    def log(self, record: TrialRecord) -> str:
        """Log one trial as a finished run; the run's id."""
        run = wandb.init(
            project=self.project or record.study,
            name=record.run_name,
            group=record.study,
            job_type="trial",
            config=record.params,
            tags=[record.state],
            mode=self.mode,
            dir=self.dir,
            reinit="create_new",
            **self.init,
        )
        try:
            for step, values in record.curves:
                run.log(values, step=integral_step(step), commit=True)
            run.summary.update({**record.values, **record.tags})
        finally:
            run.finish(exit_code=1 if record.state == "failed" else 0)
        self.run_ids[record.number] = run.id
        return str(run.id)
