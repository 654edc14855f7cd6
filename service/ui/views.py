"""From a study's records to what its page shows: plots and the numbers beside them (no I/O here)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from service.core.browsing import StudyOverview
from service.domain.hypervolume import HypervolumeHistory, oriented_reference
from service.domain.ranking import pareto_mask
from service.domain.spec import Goal, Param, ParamType, StudySpec
from service.ui import plots

Completed = list[tuple[int, dict[str, Any], dict[str, float | None], datetime | None]]
NUMBER_TYPES = (int, float)  # exact types: bool is not a number here


@dataclass(frozen=True)
class Plot:
    title: str
    svg: str


@dataclass(frozen=True)
class Points:
    """A study's completed trials as arrays, computed once per page: every plot reads from these.

    Only trials carrying every objective as a finite number are kept, in trial-number order.
    """

    numbers: list[int]
    params: dict[str, np.ndarray]  # per parameter: its values (categoricals as choice indices), NaN if absent
    objectives: np.ndarray  # (n, m) raw values, in spec.objectives order
    feasible: np.ndarray  # (n,) outcome constraints hold

    @classmethod
    def of(cls, spec: StudySpec, completed: Completed) -> Points:
        names = [o.name for o in spec.objectives]
        objectives = np.stack([_column([r[2] for r in completed], n) for n in names], axis=1) \
            if completed else np.empty((0, len(names)))
        keep = np.flatnonzero(np.all(np.isfinite(objectives), axis=1))
        rows = [completed[i] for i in keep]
        values = [r[2] for r in rows]
        feasible = np.ones(len(rows), dtype=bool)
        for c in spec.constraints:
            metric = _column(values, c.name)
            with np.errstate(invalid="ignore"):
                feasible &= (metric <= c.bound) if c.op == "<=" else (metric >= c.bound)
        params = [r[1] for r in rows]
        columns = {param.name: _param_column(param, params) for param in spec.params}
        return cls([r[0] for r in rows], columns, objectives[keep], feasible)

    @property
    def count(self) -> int:
        return len(self.numbers)

    def maximized(self, spec: StudySpec) -> np.ndarray:
        signs = np.array([1.0 if o.goal is Goal.MAXIMIZE else -1.0 for o in spec.objectives])
        maximized: np.ndarray = self.objectives * signs
        return maximized

    def front_mask(self, spec: StudySpec) -> np.ndarray:
        """Feasible and non-dominated (the Pareto set)."""
        mask = np.zeros(self.count, dtype=bool)
        if self.feasible.any():
            feasible = np.flatnonzero(self.feasible)
            mask[feasible[pareto_mask(self.maximized(spec)[feasible])]] = True
        return mask


def history_plots(spec: StudySpec, points: Points, log: bool) -> list[Plot]:
    """Per objective: every completed value by trial, and the best feasible value so far."""
    out = []
    for j, objective in enumerate(spec.objectives):
        maximize = objective.goal is Goal.MAXIMIZE
        values = points.objectives[:, j]
        counted = np.where(points.feasible, values, -np.inf if maximize else np.inf)
        best = np.maximum.accumulate(counted) if maximize else np.minimum.accumulate(counted)
        shown = np.isfinite(best)  # from the first feasible result on
        use_log = log and bool(np.all(values[shown] > 0))
        out.append(Plot(f"history: {objective.name}",
                        plots.history(np.asarray(points.numbers)[shown], values[shown], best[shown],
                                      metric=objective.name, log=use_log)))
    return out


def _column(dicts: list[dict[str, Any]], key: str) -> np.ndarray:
    """dicts[i][key] as floats; NaN where absent or not a number."""
    return np.fromiter((v if type(v) in NUMBER_TYPES else math.nan for v in (d.get(key) for d in dicts)),
                       dtype=np.float64, count=len(dicts))


def _param_column(param: Param, params: list[dict[str, Any]]) -> np.ndarray:
    if param.type is not ParamType.CATEGORICAL:
        return _column(params, param.name)
    assert param.choices is not None
    index = {str(c): i for i, c in enumerate(param.choices)}
    return np.fromiter((index.get(str(p.get(param.name)), 0) for p in params), dtype=np.float64, count=len(params))


def _param_axis(param: Param, points: Points) -> tuple[np.ndarray, list[str] | None]:
    labels = [str(c) for c in param.choices or ()] if param.type is ParamType.CATEGORICAL else None
    return points.params[param.name], labels


def parallel_plot(spec: StudySpec, points: Points) -> Plot:
    objective = spec.objectives[0]
    axes: list[tuple[str, Sequence[float] | np.ndarray, list[str] | None, bool]] = []
    for param in spec.params[:12]:
        values, categories = _param_axis(param, points)
        axes.append((param.name, values, categories, param.log))
    scores = points.objectives[:, 0]
    axes.append((objective.name, scores, None, False))
    colour = scores if objective.goal is Goal.MINIMIZE else -scores
    title = f"parallel coordinates: parameters and {objective.name}"
    return Plot(title, plots.parallel_coordinates(axes, colour, title=title))


def slice_plots(spec: StudySpec, points: Points) -> list[Plot]:
    objective = spec.objectives[0]
    scores = points.objectives[:, 0]
    out = []
    for param in spec.params[:24]:
        values, categories = _param_axis(param, points)
        title = f"{objective.name} by {param.name}"
        out.append(Plot(title, plots.scatter(values, scores, x_label=param.name, y_label=objective.name,
                                             title=title, categories=categories, log_x=param.log,
                                             width=360, height=240)))
    return out


def pareto_plots(spec: StudySpec, points: Points) -> tuple[list[Plot], int]:
    """Two objectives: one scatter with the front highlighted; more: every pair. Also the front's size."""
    if not points.count:
        return [Plot("Pareto front", plots.empty("Pareto front", "no completed trials yet"))], 0
    mask = points.front_mask(spec).tolist()
    names = [o.name for o in spec.objectives]
    out = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            title = f"Pareto front: {names[i]} vs {names[j]}"
            size = (plots.WIDTH, plots.HEIGHT) if len(names) == 2 else (360, 260)
            out.append(Plot(title, plots.scatter(points.objectives[:, i].tolist(), points.objectives[:, j].tolist(),
                                                 x_label=names[i], y_label=names[j], title=title, highlight=mask,
                                                 connect=len(names) == 2, width=size[0], height=size[1])))
    return out, int(sum(mask))


def hypervolume_plot(spec: StudySpec, history: HypervolumeHistory) -> tuple[Plot, dict[str, float | None], float]:
    """Hypervolume after each completed trial in finishing order, against the study's reference point."""
    title = "dominated hypervolume over completed trials"
    if history.approximate:
        title += " (quasi-Monte Carlo estimate)"
    svg = plots.lines([("hypervolume", plots.ACCENT, [(float(i + 1), v) for i, v in enumerate(history.values)])],
                      x_label="completed trials", y_label="hypervolume", title=title)
    return Plot(title, svg), oriented_reference(spec, history.reference), history.final


def learning_curve_plot(overview: StudyOverview) -> Plot:
    spec = overview.study.spec
    metric = spec.objectives[0].name
    axis = spec.fidelity.name if spec.fidelity else "step"
    series = []
    for trial in overview.curves:
        curve = [(m.step, m.values[metric]) for m in trial.measurements or () if metric in m.values]
        if curve:
            series.append((f"trial {trial.number} ({trial.state})",
                           plots.STATE_COLORS.get(trial.state.value, "#999"), curve))
    title = f"learning curves: {metric} by {axis} (latest {len(series)} trials; colour = state)"
    return Plot(title, plots.lines(series, x_label=axis, y_label=metric, title=title))


def best_value_text(spec: StudySpec, points: Points) -> str:
    """The best feasible value of a single-objective study, or the size of the front of several."""
    if len(spec.objectives) != 1:
        return f"{int(points.front_mask(spec).sum())} Pareto-optimal trials"
    values = points.objectives[points.feasible, 0]
    if not values.size:
        return "none yet"
    best = values.max() if spec.objectives[0].goal is Goal.MAXIMIZE else values.min()
    return f"{float(best):.6g}"
