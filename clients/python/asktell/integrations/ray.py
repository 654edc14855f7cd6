"""Ray Tune: a `Searcher` that takes its trials from an asktell study and tells it their results.

    tuner = ray.tune.Tuner(train, tune_config=ray.tune.TuneConfig(search_alg=AsktellSearch(study), num_samples=50,
                                                                  max_concurrent_trials=8))
    tuner.fit()

Ray runs the trials on its cluster; the study's engine chooses their configs. Each Ray trial's config is the
asktell trial's params; its reported results go to the service as the trial's curve and its last result is
told as the trial's values.
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune.search import Searcher

from asktell.client import Client, Study, Trial
from asktell.errors import ConflictError, InvalidArgumentError


class AsktellSearch(Searcher):
    """Suggests each Ray trial's config by asking `study` (one trial per Ray trial, `worker_id` by default
    "ray-tune"), reports each intermediate result at step `result[step_key]` (Ray's `training_iteration` unless
    the study's fidelity is a key of the results), and tells the final result's values of the study's
    objectives and constraint metrics (a Ray trial that errored, or whose result lacks one, is told failed).

    The study's space is the search space: `param_space` of the `Tuner` is not needed. `metric` and `mode` are
    the study's first objective, for Ray's own reporting. When the study stops handing out trials (paused or
    completed), the search is finished. A stop or pause decision of the service ends the trial there; Ray's trial
    runs to its end unless a Ray scheduler stops it, and its later results are not reported."""

    def __init__(self, study: Study, *, worker_id: str = "ray-tune", step_key: str | None = None) -> None:
        objective = study.spec["objectives"][0]
        super().__init__(metric=objective["name"], mode="max" if objective["goal"] == "maximize" else "min")
        self.study = study
        self.worker_id = worker_id
        fidelity = study.spec.get("fidelity")
        self.step_key = step_key or (fidelity["name"] if fidelity else "training_iteration")
        self.metrics = [o["name"] for o in study.spec["objectives"]] + [
            c["name"] for c in study.spec.get("constraints") or []
        ]
        self.running: dict[str, Trial] = {}  # Ray trial id -> asktell trial
        self.ended: set[str] = set()  # Ray trials the service stopped or paused

    def __getstate__(self) -> dict[str, Any]:
        """Ray pickles its searcher (into the experiment's state on disk): the study and trials travel as the
        server's URL and their JSON, never the connection nor its token (ASKTELL_TOKEN serves on unpickling)."""
        state = dict(self.__dict__)
        state["study"] = (self.study._client.url, self.study.to_dict())
        state["running"] = {ray_id: trial.to_dict() for ray_id, trial in self.running.items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        url, study = state["study"]
        client = Client(url)
        state["study"] = Study(client, study)
        state["running"] = {ray_id: Trial(client, study["name"], data) for ray_id, data in state["running"].items()}
        self.__dict__.update(state)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        """Ray's metric and mode are taken as given; the study's space stays the search space."""
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        try:
            (trial,) = self.study.ask(worker_id=self.worker_id, fresh=True)
        except ConflictError:  # the study is paused or completed: no more trials
            return Searcher.FINISHED  # type: ignore[return-value]  # Ray's "no more trials" is a str
        self.running[trial_id] = trial
        return trial.params

    def _values(self, result: dict[str, Any]) -> dict[str, float]:
        return {
            name: float(result[name])
            for name in self.metrics
            if isinstance(result.get(name), int | float) and math.isfinite(float(result[name]))
        }

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        trial = self.running.get(trial_id)
        values = self._values(result)
        if trial is None or trial_id in self.ended or not values or self.step_key not in result:
            return
        decision = trial.report(float(result[self.step_key]), values)
        if decision.should_stop or decision.should_pause:
            self.ended.add(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        trial = self.running.pop(trial_id, None)
        self.ended.discard(trial_id)
        if trial is None:
            return
        if error or result is None:
            trial.tell(failed=True, reason="the Ray trial failed (see its error in Ray's results)")
            return
        values = self._values(result)
        missing = [name for name in self.metrics if name not in values]
        if missing:
            trial.tell(failed=True, reason=f"the Ray trial's last result has no finite {', '.join(missing)}")
            return
        try:
            trial.tell(values)
        except InvalidArgumentError as refused:
            trial.tell(failed=True, reason=f"the server refused the Ray trial's result: {refused}")
