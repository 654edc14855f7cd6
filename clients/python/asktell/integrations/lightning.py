"""PyTorch Lightning: report a logged metric after each validation epoch; stop or pause when the service says so.

callback = LightningCallback(trial, "val_loss", checkpoint_dir="checkpoints")
trainer = lightning.pytorch.Trainer(max_epochs=int(trial.budget or 10), callbacks=[callback])
trainer.fit(model, datamodule, ckpt_path=trial.checkpoint)   # a resumed paused trial continues
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from asktell.client import Trial
from asktell.integrations._reporting import Reporter


class LightningCallback(pl.Callback):
    """Reports `monitor` (a metric the module logs, as `trainer.callback_metrics` has it) at step = epoch (from 1)
    after each validation, as `report_as` (default: `monitor`).

    A stop or pause decision sets `trainer.should_stop`, and when the fit ends `asktell.TrialStopped` is raised
    out of `trainer.fit` (`Study.optimize` counts the trial as stopped or paused). With `checkpoint_dir` the
    trainer's state is saved there (one file per trial, overwritten) before each report, and reported as the
    trial's checkpoint: a paused trial handed out again resumes with `trainer.fit(..., ckpt_path=trial.checkpoint)`.
    """

    def __init__(
        self, trial: Trial, monitor: str, *, report_as: str | None = None, checkpoint_dir: str | Path | None = None
    ) -> None:
        super().__init__()
        self.monitor = monitor
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.reporter = Reporter(trial, report_as or monitor)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.reporter.ended:
            return
        metrics: dict[str, Any] = trainer.callback_metrics
        if self.monitor not in metrics:
            raise ValueError(
                f"the Lightning module logs no metric {self.monitor!r} (it logs "
                f"{', '.join(sorted(metrics)) or 'nothing'}): call self.log({self.monitor!r}, ...)"
            )
        checkpoint = None
        if self.checkpoint_dir is not None:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            path = self.checkpoint_dir / f"{self.reporter.trial.study_name}-trial-{self.reporter.trial.number}.ckpt"
            trainer.save_checkpoint(path)
            checkpoint = str(path)
        self.reporter.report(trainer.current_epoch + 1, float(metrics[self.monitor]), checkpoint=checkpoint)
        if self.reporter.ended:
            trainer.should_stop = True

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.reporter.ended:
            raise self.reporter.stopped()
