"""From a study's records to what its page shows: plots and the numbers beside them (no I/O here)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from service.core.browsing import StudyOverview
from service.domain.hypervolume import hypervolume_history, oriented_reference
from service.domain.ranking import is_feasible, pareto_mask
from service.domain.spec import Goal, Param, ParamType, StudySpec
from service.domain.trial import TrialState, TrialView
from service.ui import plots

Completed = list[tuple[int, dict[str, Any], dict[str, float | None], datetime | None]]


@dataclass(frozen=True)
class Plot:
    title: str
    svg: str


def _finite(values: dict[str, float | None], names: list[str]) -> bool:
    return all(isinstance(values.get(n), int | float) and math.isfinite(values[n]) for n in names)  # type: ignore[arg-type]


def _usable(spec: StudySpec, completed: Completed) -> Completed:
    """Completed trials carrying every objective as a finite number."""
    names = [o.name for o in spec.objectives]
    return [row for row in completed if _finite(row[2], names)]


def history_plots(spec: StudySpec, completed: Completed, log: bool) -> list[Plot]:
    """Per objective: every completed value by trial, and the best feasible value so far."""
    rows = _usable(spec, completed)
    out = []
    for objective in spec.objectives:
        numbers, values, best = [], [], []
        incumbent: float | None = None
        better = max if objective.goal is Goal.MAXIMIZE else min
        for number, _, row_values, _ in rows:
            value = float(row_values[objective.name])  # type: ignore[arg-type]
            if is_feasible(spec, {k: v for k, v in row_values.items() if v is not None}):
                incumbent = value if incumbent is None else better(incumbent, value)
            if incumbent is not None:
                numbers.append(number)
                values.append(value)
                best.append(incumbent)
        use_log = log and all(v > 0 for v in values)
        out.append(Plot(f"history: {objective.name}", plots.history(numbers, values, best, metric=objective.name,
                                                                    log=use_log)))
    return out


def _param_axis(param: Param, rows: Completed) -> tuple[list[float], list[str] | None]:
    raw = [row[1].get(param.name) for row in rows]
    if param.type is ParamType.CATEGORICAL:
        assert param.choices is not None
        labels = [str(c) for c in param.choices]
        index = {str(c): i for i, c in enumerate(param.choices)}
        return [float(index.get(str(v), 0)) for v in raw], labels
    return [float(v) if isinstance(v, int | float) else math.nan for v in raw], None


def parallel_plot(spec: StudySpec, completed: Completed) -> Plot:
    rows = _usable(spec, completed)
    objective = spec.objectives[0]
    axes: list[tuple[str, list[float], list[str] | None, bool]] = []
    for param in spec.params[:12]:
        values, categories = _param_axis(param, rows)
        axes.append((param.name, values, categories, param.log))
    scores = [float(row[2][objective.name]) for row in rows]  # type: ignore[arg-type]
    axes.append((objective.name, scores, None, False))
    colour = scores if objective.goal is Goal.MINIMIZE else [-s for s in scores]
    title = f"parallel coordinates: parameters and {objective.name}"
    return Plot(title, plots.parallel_coordinates(axes, colour, title=title))


def slice_plots(spec: StudySpec, completed: Completed) -> list[Plot]:
    rows = _usable(spec, completed)
    objective = spec.objectives[0]
    scores = [float(row[2][objective.name]) for row in rows]  # type: ignore[arg-type]
    out = []
    for param in spec.params[:24]:
        values, categories = _param_axis(param, rows)
        title = f"{objective.name} by {param.name}"
        out.append(Plot(title, plots.scatter(values, scores, x_label=param.name, y_label=objective.name,
                                             title=title, categories=categories, log_x=param.log,
                                             width=360, height=240)))
    return out


def _front_mask(spec: StudySpec, rows: Completed) -> np.ndarray:
    """Feasible and non-dominated rows (the Pareto set), as a mask over `rows`."""
    signs = np.array([1.0 if o.goal is Goal.MAXIMIZE else -1.0 for o in spec.objectives])
    points = np.array([[float(r[2][o.name]) for o in spec.objectives] for r in rows]) * signs  # type: ignore[arg-type]
    feasible = np.array([is_feasible(spec, {k: v for k, v in r[2].items() if v is not None}) for r in rows])
    mask = np.zeros(len(rows), dtype=bool)
    if feasible.any():
        mask[np.flatnonzero(feasible)[pareto_mask(points[feasible])]] = True
    return mask


def pareto_plots(spec: StudySpec, completed: Completed) -> tuple[list[Plot], int]:
    """Two objectives: one scatter with the front highlighted; more: every pair. Also the front's size."""
    rows = _usable(spec, completed)
    if not rows:
        return [Plot("Pareto front", plots.empty("Pareto front", "no completed trials yet"))], 0
    mask = _front_mask(spec, rows)
    names = [o.name for o in spec.objectives]
    out = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            xs = [float(r[2][names[i]]) for r in rows]  # type: ignore[arg-type]
            ys = [float(r[2][names[j]]) for r in rows]  # type: ignore[arg-type]
            title = f"Pareto front: {names[i]} vs {names[j]}"
            size = (plots.WIDTH, plots.HEIGHT) if len(names) == 2 else (360, 260)
            out.append(Plot(title, plots.scatter(xs, ys, x_label=names[i], y_label=names[j], title=title,
                                                 highlight=mask.tolist(), width=size[0], height=size[1])))
    return out, int(mask.sum())


def hypervolume_plot(spec: StudySpec, completed: Completed) -> tuple[Plot, dict[str, float | None], float]:
    rows = sorted(_usable(spec, completed), key=lambda r: (r[3] or datetime.min.replace(tzinfo=UTC), r[0]))
    views = [TrialView(n, p, TrialState.COMPLETED, {k: v for k, v in vals.items() if v is not None})
             for n, p, vals, _ in rows]
    history = hypervolume_history(spec, views)
    points = [(float(i + 1), v) for i, v in enumerate(history.values)]
    title = "dominated hypervolume over completed trials"
    svg = plots.lines([("hypervolume", plots.ACCENT, points)], x_label="completed trials", y_label="hypervolume",
                      title=title)
    return Plot(title, svg), oriented_reference(spec, history.reference), history.final


def learning_curve_plot(overview: StudyOverview) -> Plot:
    spec = overview.study.spec
    metric = spec.objectives[0].name
    axis = spec.fidelity.name if spec.fidelity else "step"
    series = []
    for trial in overview.curves:
        points = [(m.step, m.values[metric]) for m in trial.measurements or () if metric in m.values]
        if points:
            series.append((f"trial {trial.number} ({trial.state})",
                           plots.STATE_COLORS.get(trial.state.value, "#999"), points))
    title = f"learning curves: {metric} by {axis} (latest {len(series)} trials; colour = state)"
    return Plot(title, plots.lines(series, x_label=axis, y_label=metric, title=title))


def best_value_text(spec: StudySpec, completed: Completed) -> str:
    """The best feasible value of a single-objective study, as shown in headers."""
    rows = _usable(spec, completed)
    if len(spec.objectives) != 1:
        return f"{int(_front_mask(spec, rows).sum()) if rows else 0} Pareto-optimal trials"
    objective = spec.objectives[0]
    feasible = [float(r[2][objective.name]) for r in rows  # type: ignore[arg-type]
                if is_feasible(spec, {k: v for k, v in r[2].items() if v is not None})]
    if not feasible:
        return "none yet"
    best = max(feasible) if objective.goal is Goal.MAXIMIZE else min(feasible)
    return f"{best:.6g}"
