"""From a study's records to what its page shows: plots and the numbers beside them (no I/O here)."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import numpy as np

from service.core.browsing import StudyOverview
from service.domain.hypervolume import HypervolumeHistory, oriented_reference
from service.domain.ranking import pareto_mask
from service.domain.spec import Goal, Param, ParamType, StudySpec
from service.domain.trial import Timings
from service.store.browsing import Columns
from service.ui import plots

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

    numbers: np.ndarray  # (n,) trial numbers
    params: dict[str, np.ndarray]  # per parameter: its values (categoricals as choice indices), NaN if absent
    objectives: np.ndarray  # (n, m) raw values, in spec.objectives order
    feasible: np.ndarray  # (n,) outcome constraints hold

    @classmethod
    def of_columns(cls, spec: StudySpec, columns: Columns) -> Points:
        count = len(columns.numbers)
        objectives = (
            np.array([columns.values[o.name] for o in spec.objectives], dtype=np.float64)
            .reshape(len(spec.objectives), count)
            .T
        )
        keep = np.all(np.isfinite(objectives), axis=1)
        feasible = np.ones(count, dtype=bool)
        for c in spec.constraints:
            metric = np.array(columns.values[c.name], dtype=np.float64)
            with np.errstate(invalid="ignore"):
                feasible &= (metric <= c.bound) if c.op == "<=" else (metric >= c.bound)
        params = {}
        for param in spec.params:
            raw = columns.params[param.name]
            if param.type is ParamType.CATEGORICAL:
                index = {str(c): i for i, c in enumerate(param.choices or ())}
                column = np.fromiter((index.get(str(v), 0) for v in raw), dtype=np.float64, count=count)
            else:
                column = np.array(raw, dtype=np.float64).reshape(count)
            params[param.name] = column[keep]
        return cls(np.array(columns.numbers, dtype=np.int64)[keep], params, objectives[keep], feasible[keep])

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

    def digits(self, j: int) -> int:
        """Significant digits that tell objective j's values apart."""
        return plots.digits_for(self.objectives[:, j])


class PointsCache:
    """Studies' completed trials as Points, remembered while their set of completed trials stays the same (it
    only grows, so its count and largest trial number identify it): the overview refreshed every few
    seconds and the analysis views of one study parse its trials once per new result. Thread-safe."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._found: OrderedDict[tuple[int, int, int], Points] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int, int]) -> Points | None:
        with self._lock:
            found = self._found.get(key)
            if found is not None:
                self._found.move_to_end(key)
            return found

    def put(self, key: tuple[int, int, int], points: Points) -> None:
        with self._lock:
            self._found[key] = points
            self._found.move_to_end(key)
            while len(self._found) > self.size:
                self._found.popitem(last=False)

    def of(self, study_id: int, spec: StudySpec, completed: Columns) -> Points:
        """The Points of a study's completed trials, from memory when they were built before."""
        key = (study_id, len(completed.numbers), completed.numbers[-1] if completed.numbers else -1)
        found = self.get(key)
        if found is None:
            found = Points.of_columns(spec, completed)
            self.put(key, found)
        return found


REMEMBERED_POINTS = 8  # a few MB each at 50,000 trials
points_cache = PointsCache(REMEMBERED_POINTS)


@dataclass(frozen=True)
class Scale:
    """One axis' scale switch on the page: its key, what it shows now, and the link that flips it."""

    key: str
    label: str
    log: bool
    possible: bool  # every value is positive: a log axis can show them
    url: str


@dataclass(frozen=True)
class Scales:
    """Which axes are on a log scale. Every objective and numeric parameter has a default (the spec's log
    parameters; cost objectives and any objective whose values are all positive and span more than two
    decades), which the page's `log` and `linear` query parameters override, one key (`value:NAME` or
    `param:NAME`) each. `log=1` (older links) turns every objective's axis to log."""

    log: frozenset[str] = frozenset()
    linear: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, log: Iterable[str], linear: Iterable[str]) -> Scales:
        return cls(frozenset(log), frozenset(linear))

    def is_log(self, key: str, default: bool, values: np.ndarray) -> bool:
        """Log when asked for or by default, and only where every value is positive."""
        finite = values[np.isfinite(values)]
        possible = bool(np.all(finite > 0))
        chosen = (
            key in self.log or (key.startswith("value:") and "1" in self.log) or (default and key not in self.linear)
        )
        return chosen and possible

    def query(self, **extra: str) -> str:
        pairs = [("log", k) for k in sorted(self.log)] + [("linear", k) for k in sorted(self.linear)]
        return urlencode(pairs + sorted(extra.items()))

    def flipped(self, key: str, now_log: bool) -> Scales:
        log, linear = set(self.log) - {key, "1"}, set(self.linear) - {key}
        (linear if now_log else log).add(key)
        return Scales(frozenset(log), frozenset(linear))


def objective_is_log(spec: StudySpec, points: Points, j: int, scales: Scales) -> bool:
    objective = spec.objectives[j]
    values = points.objectives[:, j]
    return scales.is_log(f"value:{objective.name}", objective.cost or plots.spans_decades(values), values)


def param_is_log(param: Param, points: Points, scales: Scales) -> bool:
    if param.type is ParamType.CATEGORICAL:
        return False
    values = points.params[param.name]
    return scales.is_log(f"param:{param.name}", param.log, values)


def scale_switches(spec: StudySpec, points: Points, scales: Scales, url: str, **extra: str) -> list[Scale]:
    """A switch for every objective and numeric parameter axis, each linking to the page with it flipped."""
    out = []
    axes: list[tuple[str, str, bool, np.ndarray]] = [
        (f"value:{o.name}", o.name, objective_is_log(spec, points, j, scales), points.objectives[:, j])
        for j, o in enumerate(spec.objectives)
    ]
    axes += [
        (f"param:{p.name}", p.name, param_is_log(p, points, scales), points.params[p.name])
        for p in spec.params
        if p.type is not ParamType.CATEGORICAL
    ]
    for key, label, log, values in axes:
        finite = values[np.isfinite(values)]
        possible = bool(finite.size) and bool(np.all(finite > 0))
        out.append(Scale(key, label, log, possible, f"{url}?{scales.flipped(key, log).query(**extra)}"))
    return out


def history_plots(
    spec: StudySpec,
    points: Points,
    scales: Scales,
    link: str,
    stopped: Sequence[tuple[int, dict[str, float | None]]] = (),
) -> list[Plot]:
    """Per objective: every completed value by trial, the values stopped trials had reached, and the best
    feasible value so far."""
    out = []
    for j, objective in enumerate(spec.objectives):
        maximize = objective.goal is Goal.MAXIMIZE
        values = points.objectives[:, j]
        counted = np.where(points.feasible, values, -np.inf if maximize else np.inf)
        best = np.maximum.accumulate(counted) if maximize else np.minimum.accumulate(counted)
        shown = np.isfinite(best)  # from the first feasible result on
        stopped_values = _column([v for _, v in stopped], objective.name)
        has = np.isfinite(stopped_values)
        stopped_numbers = np.array([n for n, _ in stopped], dtype=np.int64)[has]
        stopped_values = stopped_values[has]
        use_log = objective_is_log(spec, points, j, scales) and bool(np.all(stopped_values > 0))
        out.append(
            Plot(
                f"history: {objective.name}",
                plots.history(
                    points.numbers[shown],
                    values[shown],
                    best[shown],
                    metric=objective.name,
                    log=use_log,
                    feasible=points.feasible[shown],
                    stopped=(stopped_numbers.tolist(), stopped_values.tolist()),
                    link=link,
                    digits=points.digits(j),
                ),
            )
        )
    return out


def _column(dicts: list[dict[str, Any]], key: str) -> np.ndarray:
    """dicts[i][key] as floats; NaN where absent or not a number."""
    return np.fromiter(
        (v if type(v) in NUMBER_TYPES else math.nan for v in (d.get(key) for d in dicts)),
        dtype=np.float64,
        count=len(dicts),
    )


def _param_axis(param: Param, points: Points) -> tuple[np.ndarray, list[str] | None]:
    labels = [str(c) for c in param.choices or ()] if param.type is ParamType.CATEGORICAL else None
    return points.params[param.name], labels


def parallel_plot(spec: StudySpec, points: Points, scales: Scales, link: str) -> Plot:
    objective = spec.objectives[0]
    axes: list[tuple[str, Sequence[float] | np.ndarray, list[str] | None, bool]] = []
    for param in spec.params[:12]:
        values, categories = _param_axis(param, points)
        axes.append((param.name, values, categories, param_is_log(param, points, scales)))
    scores = points.objectives[:, 0]
    axes.append((objective.name, scores, None, objective_is_log(spec, points, 0, scales)))
    colour = scores if objective.goal is Goal.MINIMIZE else -scores
    title = f"parallel coordinates: parameters and {objective.name}"
    return Plot(
        title,
        plots.parallel_coordinates(
            axes, colour, title=title, numbers=points.numbers, link=link, colour_label=objective.name
        ),
    )


def slice_plots(spec: StudySpec, points: Points, scales: Scales, link: str) -> list[Plot]:
    objective = spec.objectives[0]
    scores = points.objectives[:, 0]
    log_y = objective_is_log(spec, points, 0, scales)
    out = []
    for param in spec.params[:24]:
        values, categories = _param_axis(param, points)
        title = f"{objective.name} by {param.name}"
        out.append(
            Plot(
                title,
                plots.scatter(
                    values,
                    scores,
                    x_label=param.name,
                    y_label=objective.name,
                    title=title,
                    numbers=points.numbers,
                    categories=categories,
                    log_x=param_is_log(param, points, scales),
                    log_y=log_y,
                    link=link,
                    digits=(plots.digits_for(values), points.digits(0)),
                    width=plots.CARD_WIDTH,
                    height=plots.CARD_HEIGHT,
                    limit=plots.MAX_CARD_POINTS,
                ),
            )
        )
    return out


def pareto_plots(
    spec: StudySpec, points: Points, scales: Scales, link: str, reference: dict[str, float | None]
) -> tuple[list[Plot], int]:
    """Two objectives: one scatter with the front highlighted, the reference point and the region the front
    dominates; more: every pair, with the reference point projected. Also the front's size."""
    if not points.count:
        return [Plot("Pareto front", plots.empty("Pareto front", "no completed trials yet"))], 0
    mask = points.front_mask(spec)
    names = [o.name for o in spec.objectives]
    keys = [
        plots.Key("Pareto-optimal", plots.ACCENT),
        plots.Key("dominated", plots.STATE_COLORS["completed"]),
        plots.Key("reference point", "#111827", "cross"),
    ]
    if len(names) == 2:
        keys.append(plots.Key("dominated region", "#fca5a5", "box"))
    out = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            title = f"Pareto front: {names[i]} vs {names[j]}"
            size = (plots.WIDTH, 360) if len(names) == 2 else (plots.CARD_WIDTH, plots.CARD_HEIGHT)
            ref_i, ref_j = reference.get(names[i]), reference.get(names[j])
            ref = (ref_i, ref_j) if ref_i is not None and ref_j is not None else None
            goals = (spec.objectives[i].goal is Goal.MAXIMIZE, spec.objectives[j].goal is Goal.MAXIMIZE)
            out.append(
                Plot(
                    title,
                    plots.scatter(
                        points.objectives[:, i],
                        points.objectives[:, j],
                        x_label=names[i],
                        y_label=names[j],
                        title=title,
                        numbers=points.numbers,
                        highlight=mask,
                        connect=len(names) == 2,
                        log_x=objective_is_log(spec, points, i, scales),
                        log_y=objective_is_log(spec, points, j, scales),
                        reference=ref,
                        dominated=goals if len(names) == 2 else None,
                        link=link,
                        digits=(points.digits(i), points.digits(j)),
                        keys=keys,
                        width=size[0],
                        height=size[1],
                    ),
                )
            )
    return out, int(mask.sum())


def reference_box_share(spec: StudySpec, points: Points, history: HypervolumeHistory) -> float | None:
    """The hypervolume as a share of the box between the reference point and the ideal point (each
    objective's best feasible value): 1 would be a single trial best on every objective at once."""
    reference = history.reference
    if np.isnan(reference).any() or not points.feasible.any():
        return None
    ideal = points.maximized(spec)[points.feasible].max(axis=0)
    sides = ideal - reference
    if np.any(sides <= 0):
        return None
    return float(history.final / float(np.prod(sides)))


def hypervolume_plot(spec: StudySpec, history: HypervolumeHistory) -> tuple[Plot, dict[str, float | None], float]:
    """Hypervolume after each completed trial in finishing order, against the study's reference point."""
    title = "dominated hypervolume over completed trials"
    if history.approximate:
        title += " (quasi-Monte Carlo estimate)"
    curve = plots.Curve("hypervolume", plots.ACCENT, [(float(i + 1), v) for i, v in enumerate(history.values)])
    svg = plots.lines([curve], x_label="completed trials", y_label="hypervolume", title=title)
    return Plot(title, svg), oriented_reference(spec, history.reference), history.final


def learning_curve_plot(overview: StudyOverview, points: Points, scales: Scales, link: str) -> Plot:
    """The latest trials' curves of the first objective, coloured by state; the y-range is their bulk, so one
    diverged run does not squash the others. On a log axis when the objective's own axis is."""
    spec = overview.study.spec
    metric = spec.objectives[0].name
    axis = spec.fidelity.name if spec.fidelity else "step"
    series = []
    for trial in overview.curves:
        curve = [(m.step, m.values[metric]) for m in trial.measurements or () if metric in m.values]
        if curve:
            last = curve[-1][1]
            series.append(
                plots.Curve(
                    f"trial {trial.number} ({trial.state}): {metric} {plots.fmt(last)} at "
                    f"{axis} {plots.fmt(curve[-1][0])}",
                    plots.STATE_COLORS.get(trial.state.value, "#999"),
                    curve,
                    trial.number,
                )
            )
    states = sorted({t.state.value for t in overview.curves})
    keys = [plots.Key(state, plots.STATE_COLORS.get(state, "#999"), "line") for state in states]
    values = np.array([p[1] for s in series for p in s.points], dtype=np.float64)
    default = spec.objectives[0].cost or plots.spans_decades(points.objectives[:, 0])
    log = scales.is_log(f"value:{metric}", default, values)
    title = f"learning curves: {metric} by {axis} (latest {len(series)} trials)"
    return Plot(
        title,
        plots.lines(series, x_label=axis, y_label=metric, title=title, log=log, robust=True, link=link, keys=keys),
    )


def best_value_text(spec: StudySpec, points: Points) -> str:
    """The best feasible value of a single-objective study, or the size of the front of several."""
    if len(spec.objectives) != 1:
        return f"{int(points.front_mask(spec).sum())} Pareto-optimal trials"
    values = points.objectives[points.feasible, 0]
    if not values.size:
        return "none yet"
    best = values.max() if spec.objectives[0].goal is Goal.MAXIMIZE else values.min()
    return plots.fmt(float(best), max(points.digits(0), 6))


def duration_text(seconds: float) -> str:
    """1.2 s, 3 min 05 s, 2 h 07 min: as precise as a reader of a training run's page needs."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def timings_text(spent: Timings | None) -> dict[str, str] | None:
    """A trial's time training and time paused, as shown on its page (None before it started)."""
    if spent is None:
        return None
    if spent.running_seconds is None or spent.paused_seconds is None:
        unknown = "unknown (paused before pause history was kept)"
        return {"running": unknown, "paused": unknown}
    return {"running": duration_text(spent.running_seconds), "paused": duration_text(spent.paused_seconds)}
