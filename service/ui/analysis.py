"""The analysis pages beside a study's overview: parameter importance, a contour map of two parameters, the
empirical distribution of each objective, a timeline per worker, and trials compared side by side.

Each is computed here from what the store read (no I/O), with its work capped for very large studies, and
says on its page what it capped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from service.domain.importance import MIN_TRIALS, importances
from service.domain.spec import Goal, Param, ParamType, StudySpec
from service.engines.sobol import EngineFailure
from service.errors import InvalidArgument
from service.store.browsing import TimelineRow
from service.store.records import TrialRecord
from service.ui import charts, plots
from service.ui.views import Plot, Points, Scales, objective_is_log, param_is_log

CONTOUR_BINS = 24  # per numeric axis
EDF_STEPS = 1000  # points of an EDF line at most
TIMELINE_WORKERS = 40  # rows on the timeline; the rest share one


@dataclass(frozen=True)
class ImportanceView:
    plots: list[Plot]
    count: int  # trials the estimate used


def importance_view(spec: StudySpec, points: Points) -> ImportanceView:
    """Per objective: each parameter's first-order share of the variance of the objective's ranks."""
    columns = {p.name: (points.params[p.name], p.type is ParamType.CATEGORICAL) for p in spec.params}
    out = []
    for j, objective in enumerate(spec.objectives):
        found = importances(columns, points.objectives[:, j])
        title = f"parameter importance for {objective.name}"
        if not found:
            svg = plots.empty(title, f"needs at least {MIN_TRIALS} completed trials")
        else:
            svg = charts.bars(
                [f.name for f in found], [f.share for f in found], title=title, notes=[f"{f.bins} bins" for f in found]
            )
        out.append(Plot(title, svg))
    return ImportanceView(out, points.count)


def _parameter(spec: StudySpec, name: str, field: str) -> Param:
    found = next((p for p in spec.params if p.name == name), None)
    if found is None:
        raise InvalidArgument.one(field, f"the study has no parameter {name[:100]!r}")
    return found


def default_pair(spec: StudySpec, points: Points) -> tuple[str, str]:
    """The two most important parameters for the first objective (the first two when too few trials)."""
    names = [p.name for p in spec.params]
    columns = {p.name: (points.params[p.name], p.type is ParamType.CATEGORICAL) for p in spec.params}
    ranked = [f.name for f in importances(columns, points.objectives[:, 0])] or names
    return ranked[0], ranked[1]


def _bins(values: np.ndarray, categories: list[str] | None, log: bool) -> tuple[np.ndarray, np.ndarray]:
    """(edges in the parameter's units, each value's bin); categoricals get one bin per choice."""
    if categories:
        index = np.nan_to_num(values, nan=0).astype(np.int64)
        return np.arange(len(categories) + 1, dtype=np.float64), index
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if log and low > 0:
        edges = np.logspace(math.log10(low), math.log10(high) if high > low else math.log10(low) + 1, CONTOUR_BINS + 1)
    else:
        edges = np.linspace(low, high if high > low else low + 1, CONTOUR_BINS + 1)
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, CONTOUR_BINS - 1)
    return edges, index


@dataclass(frozen=True)
class ContourView:
    plot: Plot
    surface: str  # "model": a GP's posterior mean; "binned": the mean of the trials in each cell
    anchor: int | None  # with the model, the trial whose values hold the other parameters
    reason: str  # why the binned mean was drawn when the model was asked for, else ""


def _cell_centres(edges: np.ndarray, categories: list[str] | None, log: bool) -> np.ndarray:
    if categories:
        return np.arange(len(categories), dtype=np.float64)
    if log and edges[0] > 0:
        return np.asarray(np.sqrt(edges[:-1] * edges[1:]), dtype=np.float64)
    return np.asarray((edges[:-1] + edges[1:]) / 2, dtype=np.float64)


def _best_row(points: Points, j: int, maximize: bool) -> int:
    """The best feasible completed trial's row (the best of all when none is feasible)."""
    candidates = np.flatnonzero(points.feasible) if points.feasible.any() else np.arange(points.count)
    values = points.objectives[candidates, j]
    return int(candidates[np.argmax(values) if maximize else np.argmin(values)])


def contour_view(
    spec: StudySpec,
    points: Points,
    scales: Scales,
    x_name: str,
    y_name: str,
    objective_name: str,
    link: str,
    model: bool = True,
) -> ContourView:
    """The objective over a grid of two parameters, with the trials as dots: with `model`, a GP's posterior mean
    (the other parameters at the best trial's values; engines.surface), else or where the model cannot be fitted,
    the mean of the trials in each cell."""
    x_param, y_param = _parameter(spec, x_name, "x"), _parameter(spec, y_name, "y")
    if x_name == y_name:
        raise InvalidArgument.one("y", "choose two different parameters")
    j = next((i for i, o in enumerate(spec.objectives) if o.name == objective_name), None)
    if j is None:
        raise InvalidArgument.one("objective", f"the study has no objective {objective_name[:100]!r}")
    objective = spec.objectives[j]
    title = f"{objective.name} over {x_name} and {y_name}"
    if not points.count:
        return ContourView(
            Plot(title, plots.empty(title, "no completed trials yet", plots.WIDTH, 420)), "binned", None, ""
        )
    x_values, y_values, z = points.params[x_name], points.params[y_name], points.objectives[:, j]
    present = np.isfinite(x_values) & np.isfinite(y_values)
    x_values, y_values, z, numbers = x_values[present], y_values[present], z[present], points.numbers[present]
    x_categories = [str(c) for c in x_param.choices or ()] if x_param.type is ParamType.CATEGORICAL else None
    y_categories = [str(c) for c in y_param.choices or ()] if y_param.type is ParamType.CATEGORICAL else None
    x_log, y_log = param_is_log(x_param, points, scales), param_is_log(y_param, points, scales)
    x_edges, xi = _bins(x_values, x_categories, x_log)
    y_edges, yi = _bins(y_values, y_categories, y_log)
    nx, ny = x_edges.size - 1, y_edges.size - 1
    cell = xi * ny + yi
    counts = np.bincount(cell, minlength=nx * ny).reshape(nx, ny)
    sums = np.bincount(cell, weights=z, minlength=nx * ny).reshape(nx, ny)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    maximize = objective.goal is Goal.MAXIMIZE
    surface, anchor, reason = "binned", None, ""
    if model:
        try:
            means, anchor = _model_means(
                spec,
                points,
                j,
                maximize,
                x_name,
                y_name,
                _cell_centres(x_edges, x_categories, x_log),
                _cell_centres(y_edges, y_categories, y_log),
            )
            surface = "model"
            title = f"{objective.name} over {x_name} and {y_name}: GP posterior mean"
        except (ValueError, RuntimeError, ImportError, EngineFailure) as error:  # the binned mean still draws
            reason = str(error) or type(error).__name__
    grid = charts.Grid(x_edges, y_edges, means, counts, predicted=surface == "model")
    svg = charts.heatmap(
        grid,
        x=(x_name, x_categories, x_log),
        y=(y_name, y_categories, y_log),
        metric=objective.name,
        maximize=maximize,
        title=title,
        points=(x_values, y_values, numbers),
        link=link,
        digits=points.digits(j),
    )
    return ContourView(Plot(title, svg), surface, anchor, reason)


def _model_means(
    spec: StudySpec,
    points: Points,
    j: int,
    maximize: bool,
    x_name: str,
    y_name: str,
    x_grid: np.ndarray,
    y_grid: np.ndarray,
) -> tuple[np.ndarray, int]:
    """The GP's posterior mean on the cell centres, and the number of the trial holding the other parameters."""
    from service.engines import surface  # torch: loaded on the first contour page that asks for the model

    keep = np.ones(points.count, dtype=bool)
    for name in points.params:
        keep &= np.isfinite(points.params[name])
    if not keep.all():
        raise ValueError("some completed trials lack a parameter")
    best = _best_row(points, j, maximize)
    anchor = {name: float(values[best]) for name, values in points.params.items()}
    means = surface.posterior_mean_grid(
        spec,
        points.params,
        points.objectives[:, j],
        minimize=not maximize,
        x_name=x_name,
        y_name=y_name,
        x_grid=x_grid.tolist(),
        y_grid=y_grid.tolist(),
        anchor=anchor,
    )
    return means, int(points.numbers[best])


def edf_view(spec: StudySpec, points: Points, scales: Scales, link: str) -> list[Plot]:
    """Per objective: the share of feasible completed trials whose value is at least as good as x, with a
    mark per trial (at most EDF_STEPS) that names and links it."""
    out = []
    for j, objective in enumerate(spec.objectives):
        order = np.argsort(points.objectives[points.feasible, j], kind="stable")
        values = points.objectives[points.feasible, j][order]
        numbers = points.numbers[points.feasible][order]
        title = f"empirical distribution of {objective.name}"
        if not values.size:
            out.append(Plot(title, plots.empty(title, "no feasible completed trials yet")))
            continue
        n = values.size
        shares = np.arange(1, n + 1) / n
        if objective.goal is Goal.MAXIMIZE:  # share at least as good: larger values are better
            shares = 1.0 - np.arange(0, n) / n
        keep = np.unique(np.linspace(0, n - 1, min(n, EDF_STEPS)).round().astype(np.int64))
        # A staircase, flat between values: share <= x rises at each value (right-continuous); share >= x
        # falls just after each (left-continuous).
        steps: list[tuple[float, float]] = []
        marks: list[tuple[float, float, int, str]] = []
        before = 0.0
        digits = points.digits(j)
        for i in keep.tolist():
            value, share = float(values[i]), float(shares[i])
            marks.append(
                (
                    value,
                    share,
                    int(numbers[i]),
                    f"trial {numbers[i]}: {objective.name} {plots.fmt(value, digits)}; {share:.1%} of the "
                    f"trials are at least as good",
                )
            )
            if objective.goal is Goal.MAXIMIZE:
                steps += [(value, share), (value, share - 1 / n)]
            else:
                steps += [(value, before), (value, share)]
                before = share
        label = (
            f"{objective.name}: share of {n} feasible completed trials at least as good as x "
            f"(median {plots.fmt(float(np.median(values)), points.digits(j))})"
        )
        log = objective_is_log(spec, points, j, scales)
        better = "≥" if objective.goal is Goal.MAXIMIZE else "≤"
        out.append(
            Plot(
                title,
                plots.lines(
                    [plots.Curve(label, plots.STATE_COLORS["completed"], steps)],
                    x_label=objective.name,
                    y_label=f"share of trials {better} x",
                    title=title,
                    log_x=log,
                    marks=marks,
                    link=link,
                ),
            )
        )
    return out


def _stamp(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def timeline_view(rows: list[TimelineRow], link: str, now: datetime | None = None) -> tuple[Plot, int]:
    """The trials as bars on one row per worker (trials asked without a worker id share a row); the busiest
    TIMELINE_WORKERS workers get their own row, the others share one. Also the count of workers."""
    now_s = (now or datetime.now(UTC)).timestamp()
    spans = []
    for row in rows:
        start = _stamp(row.started_at) or _stamp(row.created_at)
        if start is None:
            continue
        end = _stamp(row.finished_at)
        running = end is None
        worker = row.worker_id or "(no worker id)"
        spans.append(
            charts.Span(row.number, worker, row.state, start, end if end is not None else max(now_s, start), running)
        )
    busy: dict[str, int] = {}
    first: dict[str, float] = {}
    for s in spans:
        busy[s.worker] = busy.get(s.worker, 0) + 1
        first.setdefault(s.worker, s.start)
    own = set(sorted(busy, key=lambda w: -busy[w])[:TIMELINE_WORKERS])
    if len(busy) > len(own):
        spans = [
            s if s.worker in own else charts.Span(s.number, "(other workers)", s.state, s.start, s.end, s.running)
            for s in spans
        ]
        first["(other workers)"] = math.inf
    workers = sorted({s.worker for s in spans}, key=lambda w: (first[w], w))
    title = "trials per worker over time"
    return Plot(title, charts.timeline(spans, workers, title=title, link=link)), len(busy)


@dataclass(frozen=True)
class Comparison:
    """Trials side by side: one row per parameter and metric, `differs` when the trials disagree on it."""

    numbers: list[int]
    states: list[str]
    rows: list[tuple[str, str, list[str], bool]]  # (kind, name, cells, differs)
    curves: Plot | None


def comparison(spec: StudySpec, trials: list[TrialRecord], link: str) -> Comparison:
    rows: list[tuple[str, str, list[str], bool]] = []
    for param in spec.params:
        raw = [t.params.get(param.name) for t in trials]
        cells = [("—" if v is None else plots.fmt(v, 6) if isinstance(v, float) else str(v)) for v in raw]
        rows.append(("parameter", param.name, cells, len({repr(v) for v in raw}) > 1))
    for metric in spec.metric_names:
        raw = [(t.values or {}).get(metric) for t in trials]
        digits = plots.digits_for([v for v in raw if v is not None])
        cells = ["—" if v is None else plots.fmt(float(v), digits) for v in raw]
        rows.append(("value", metric, cells, len(set(cells)) > 1))
    rows.append(("run", "worker", [t.worker_id or "—" for t in trials], len({t.worker_id for t in trials}) > 1))
    rows.append(("run", "started", [when(t.started_at) for t in trials], False))
    durations = [
        None if t.started_at is None or t.finished_at is None else (t.finished_at - t.started_at).total_seconds()
        for t in trials
    ]
    rows.append(("run", "seconds", ["—" if d is None else plots.fmt(d) for d in durations], False))
    curves = None
    metric = spec.objectives[0].name
    palette = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4b5563"]
    series = []
    for i, trial in enumerate(trials):
        points = [(m.step, m.values[metric]) for m in trial.measurements or () if metric in m.values]
        if points:
            series.append(plots.Curve(f"trial {trial.number}", palette[i % len(palette)], points, trial.number))
    if series:
        axis = spec.fidelity.name if spec.fidelity else "step"
        title = f"{metric} by {axis} of the compared trials"
        keys = [plots.Key(c.label, c.color, "line") for c in series]
        curves = Plot(title, plots.lines(series, x_label=axis, y_label=metric, title=title, link=link, keys=keys))
    return Comparison([t.number for t in trials], [t.state.value for t in trials], rows, curves)


def when(moment: datetime | None) -> str:
    """A timestamp to the second, in UTC: what a person reads (the API keeps the microseconds)."""
    return "—" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_numbers(texts: list[str]) -> list[int]:
    """Trial numbers from `trials=3,7&trials=12` style values, in order, without repeats."""
    numbers: list[int] = []
    for text in texts:
        for part in text.replace(" ", ",").split(","):
            if not part:
                continue
            if not part.isdigit() or int(part) > 2**31 - 1:
                raise InvalidArgument.one("trials", f"trial numbers are whole numbers from 0, not {part[:40]!r}")
            if int(part) not in numbers:
                numbers.append(int(part))
    return numbers
