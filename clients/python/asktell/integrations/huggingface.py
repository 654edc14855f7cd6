"""Hugging Face `Trainer`: report an evaluation metric after each evaluation; stop or pause when told.

callback = HuggingFaceCallback(trial, "eval_loss", report_as="loss")
trainer = transformers.Trainer(model, args, train_dataset=..., eval_dataset=..., callbacks=[callback])
trainer.train(resume_from_checkpoint=trial.checkpoint)     # a resumed paused trial continues
"""

from __future__ import annotations

import os
from typing import Any

import transformers

from asktell.client import Trial
from asktell.integrations._reporting import Reporter


class HuggingFaceCallback(transformers.TrainerCallback):
    """Reports `metric` of each evaluation (a key of the Trainer's metrics, e.g. `eval_loss`) at step = epoch
    (`by="epoch"`, the default) or optimizer step (`by="step"`), as `report_as` (default: `metric`).

    A stop or pause decision ends training (`control.should_training_stop`) and `asktell.TrialStopped` is
    raised out of `trainer.train()` when it has ended (`Study.optimize` counts the trial as stopped or paused).
    Each report names as the trial's checkpoint the folder the Trainer saves that step to
    (`output_dir/checkpoint-STEP`); on a pause the callback makes the Trainer save there, so a paused trial
    handed out again resumes with `trainer.train(resume_from_checkpoint=trial.checkpoint)`.
    """

    def __init__(
        self, trial: Trial, metric: str = "eval_loss", *, report_as: str | None = None, by: str = "epoch"
    ) -> None:
        if by not in ("epoch", "step"):
            raise ValueError(f"by must be 'epoch' or 'step', not {by!r}")
        self.metric = metric
        self.by = by
        self.reporter = Reporter(trial, report_as or metric)

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kwargs: Any
    ) -> None:
        if self.reporter.ended:  # every process reports (the same step again replaces it): each must stop
            return
        metrics = metrics or {}
        if self.metric not in metrics:
            raise ValueError(
                f"the Trainer's evaluation has no metric {self.metric!r} (it has "
                f"{', '.join(sorted(metrics)) or 'nothing'})"
            )
        step = float(state.epoch or 0) if self.by == "epoch" else float(state.global_step)
        checkpoint = os.path.join(
            args.output_dir, f"{transformers.trainer_utils.PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        )
        decision = self.reporter.report(step, metrics[self.metric], checkpoint=checkpoint)
        if decision.should_pause:
            control.should_save = True
        if self.reporter.ended:
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.reporter.ended:
            raise self.reporter.stopped()
