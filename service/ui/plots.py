"""Plots as inline SVG, drawn on the server: no JavaScript charting library and nothing from a CDN.

Each function takes plain numbers and returns one `<svg>` element. Scatter plots draw at most
`MAX_POINTS` points (a study page with 50,000 trials stays small); the caller picks which.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

import numpy as np

WIDTH, HEIGHT = 560, 300
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 16, 44
MAX_POINTS = 1000
MAX_LINES = 400  # parallel-coordinates lines
STATE_COLORS = {"completed": "#2563eb", "active": "#f59e0b", "paused": "#8b5cf6", "stopped": "#6b7280",
                "failed": "#dc2626", "infeasible": "#be185d", "waiting": "#10b981"}
ACCENT = "#dc2626"


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4g}"


PLOT_LIMIT = 1e150
MAX_TICKS = 50


def _clamp(value: float) -> float:
    return min(max(value, -PLOT_LIMIT), PLOT_LIMIT)


@dataclass
class Axis:
    """A linear or log axis over [low, high] mapped onto [start, end] pixels; or categories at even steps."""

    low: float
    high: float
    start: float
    end: float
    log: bool = False
    categories: list[str] = field(default_factory=list)

    @classmethod
    def fit(cls, values: Sequence[float] | np.ndarray, start: float, end: float, log: bool = False) -> Axis:
        array = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            finite = array[np.isfinite(array) & ((array > 0) if log else True)]
        if not finite.size:
            return cls(0.0, 1.0, start, end)
        # Clamped so that the span stays finite: no plot can tell 1e200 from 1e300 apart anyway.
        low, high = _clamp(float(finite.min())), _clamp(float(finite.max()))
        if log:
            low, high = math.log10(low), math.log10(high)
        magnitude = max(abs(low), abs(high), 1.0)
        if high - low <= magnitude * 1e-9:  # one value (or floats one ulp apart): widen around it
            half = max(magnitude * 1e-6, 0.5) if not log else 0.5
            low, high = low - half, high + half
        pad = (high - low) * 0.04
        return cls(low - pad, high + pad, start, end, log)

    def __call__(self, value: float) -> float:
        value = _clamp(value)
        if self.log:
            value = math.log10(value) if value > 0 else self.low
        return self.start + (value - self.low) / (self.high - self.low) * (self.end - self.start)

    def ticks(self, count: int = 5) -> list[tuple[float, str]]:
        """Round-numbered ticks (1, 2 or 5 times a power of ten; decades on a log axis) inside the range."""
        if self.categories:
            return [(self.start + (i + 0.5) / len(self.categories) * (self.end - self.start), c)
                    for i, c in enumerate(self.categories)]
        span = self.high - self.low
        if not (math.isfinite(span) and span > 0):
            return []
        rough = span / max(count - 1, 1)
        magnitude = 10 ** math.floor(math.log10(rough))
        step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= rough)
        if self.log:
            step = max(1.0, round(step))
        ticks: list[tuple[float, str]] = []
        largest = max(abs(self.low), abs(self.high))
        # Steps far below the values (1.0000001e16, 1.0000002e16) need more digits than _fmt gives.
        digits = min(15, 2 + math.ceil(math.log10(largest / step))) if step < largest * 1e-3 else 0
        value = math.ceil(self.low / step) * step
        while value <= self.high + 1e-12 and len(ticks) < MAX_TICKS:
            position = self.start + (value - self.low) / span * (self.end - self.start)
            if self.log:
                label = _fmt(10**value if value < 308 else math.inf)
            elif digits:
                label = f"{value:.{digits}e}"
            else:
                label = _fmt(round(value, 12))
            ticks.append((position, label))
            if value + step == value:  # the step vanished in the value's precision
                break
            value += step
        return ticks


def _svg(body: list[str], title: str, width: int = WIDTH, height: int = HEIGHT) -> str:
    return (f'<svg class="plot" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
            + "".join(body) + "</svg>")


def _frame(x: Axis, y: Axis, x_label: str, y_label: str) -> list[str]:
    parts = [f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{x.end - x.start:.1f}" '
             f'height="{y.start - y.end:.1f}" class="frame"/>']
    for position, label in x.ticks():
        parts.append(f'<text x="{position:.1f}" y="{y.start + 16:.1f}" class="tick" text-anchor="middle">'
                     f"{escape(label)}</text>")
    for position, label in y.ticks():
        parts.append(f'<text x="{x.start - 6:.1f}" y="{position + 4:.1f}" class="tick" text-anchor="end">'
                     f"{escape(label)}</text>")
    parts.append(f'<text x="{(x.start + x.end) / 2:.1f}" y="{y.start + 34:.1f}" class="label" '
                 f'text-anchor="middle">{escape(x_label)}</text>')
    parts.append(f'<text x="14" y="{(y.start + y.end) / 2:.1f}" class="label" text-anchor="middle" '
                 f'transform="rotate(-90 14 {(y.start + y.end) / 2:.1f})">{escape(y_label)}</text>')
    return parts


def _axes(xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray, log_x: bool = False, log_y: bool = False,
          width: int = WIDTH, height: int = HEIGHT) -> tuple[Axis, Axis]:
    x = Axis.fit(xs, MARGIN_LEFT, width - MARGIN_RIGHT, log_x)
    y = Axis.fit(ys, height - MARGIN_BOTTOM, MARGIN_TOP, log_y)
    return x, y


def _polyline(points: Sequence[tuple[float, float]], x: Axis, y: Axis, color: str, css: str = "line") -> str:
    path = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in points)
    return f'<polyline points="{path}" class="{css}" stroke="{color}"/>'


def empty(title: str, message: str) -> str:
    return _svg([f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="empty">'
                 f"{escape(message)}</text>"], title)


def history(numbers: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray,
            best: Sequence[float] | np.ndarray, *, metric: str, log: bool = False) -> str:
    """Every completed trial's value by trial number, and the best-so-far line."""
    title = f"optimization history of {metric}"
    numbers = np.asarray(numbers, dtype=np.float64)
    values, best = np.asarray(values, dtype=np.float64), np.asarray(best, dtype=np.float64)
    if not values.size:
        return empty(title, "no completed trials yet")
    x, y = _axes(numbers, np.concatenate([values, best]), log_y=log)
    parts = _frame(x, y, "trial", metric + (" (log scale)" if log else ""))
    step = max(1, values.size // MAX_POINTS)
    parts += [f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="2.5" class="point"/>'
              for n, v in zip(numbers[::step].tolist(), values[::step].tolist(), strict=True)]
    # A staircase: a corner wherever the best value changes, then on to the last trial.
    with np.errstate(over="ignore", invalid="ignore"):  # -1e308 to 1e308 overflows and still differs
        changes = np.concatenate([[0], np.flatnonzero(best[1:] != best[:-1]) + 1])
    staircase: list[tuple[float, float]] = []
    for n, b in zip(numbers[changes].tolist(), best[changes].tolist(), strict=True):
        if staircase:
            staircase.append((n, staircase[-1][1]))
        staircase.append((n, b))
    staircase.append((float(numbers[-1]), float(best[-1])))
    parts.append(_polyline(staircase, x, y, ACCENT))
    return _svg(parts, title)


def scatter(xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray, *, x_label: str, y_label: str,
            title: str, highlight: Sequence[bool] | np.ndarray | None = None, categories: list[str] | None = None,
            log_x: bool = False, connect: bool = False, width: int = WIDTH, height: int = HEIGHT) -> str:
    """Points (categorical x given as category indices); highlighted ones drawn on top, in the accent color,
    joined by a dashed line when `connect` (a two-objective front)."""
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if not xs.size:
        return empty(title, "no completed trials yet")
    x, y = _axes(xs, ys, log_x=log_x, width=width, height=height)
    if categories:
        x = Axis(0, len(categories), MARGIN_LEFT, width - MARGIN_RIGHT, categories=categories)
    parts = _frame(x, y, x_label, y_label)
    marks = np.zeros(xs.size, dtype=bool) if highlight is None else np.asarray(highlight, dtype=bool)
    thinned = np.zeros(xs.size, dtype=bool)
    thinned[::max(1, xs.size // MAX_POINTS)] = True
    plain = list(zip(xs[thinned & ~marks].tolist(), ys[thinned & ~marks].tolist(), strict=True))
    chosen = list(zip(xs[marks].tolist(), ys[marks].tolist(), strict=True))
    offset = 0.5 if categories else 0.0
    parts += [f'<circle cx="{x(a + offset):.1f}" cy="{y(b):.1f}" r="2.5" class="point"/>' for a, b in plain]
    parts += [f'<circle cx="{x(a + offset):.1f}" cy="{y(b):.1f}" r="3.5" class="front"/>' for a, b in chosen]
    if connect and len(chosen) > 1:
        parts.append(_polyline(sorted(chosen), x, y, ACCENT, "frontline"))
    return _svg(parts, title, width, height)


def _thin(points: Sequence[tuple[float, float]]) -> Sequence[tuple[float, float]]:
    """At most MAX_POINTS points of a long series, evenly spaced, the last one kept."""
    if len(points) <= MAX_POINTS:
        return points
    step = math.ceil(len(points) / MAX_POINTS)
    return [*points[::step], points[-1]]


def lines(series: Sequence[tuple[str, str, Sequence[tuple[float, float]]]], *, x_label: str, y_label: str,
          title: str, log: bool = False) -> str:
    """Several labelled polylines (label, color, points), e.g. learning curves or hypervolume over time."""
    series = [(label, color, _thin(pts)) for label, color, pts in series]
    points = [p for _, _, pts in series for p in pts]
    if not points:
        return empty(title, "nothing reported yet")
    x, y = _axes([p[0] for p in points], [p[1] for p in points], log_y=log)
    parts = _frame(x, y, x_label, y_label)
    for label, color, pts in series:
        if len(pts) == 1:
            parts.append(f'<circle cx="{x(pts[0][0]):.1f}" cy="{y(pts[0][1]):.1f}" r="2.5" fill="{color}">'
                         f"<title>{escape(label)}</title></circle>")
        else:
            parts.append(f'<g><title>{escape(label)}</title>{_polyline(pts, x, y, color)}</g>')
    return _svg(parts, title)


def parallel_coordinates(axes: Sequence[tuple[str, Sequence[float] | np.ndarray, list[str] | None, bool]],
                         colour_by: Sequence[float] | np.ndarray, *, title: str) -> str:
    """One vertical axis per (name, values, categories, log); one line per trial, coloured by `colour_by`
    (blue for the best values, red for the worst)."""
    colour_by = np.asarray(colour_by, dtype=np.float64)
    if not colour_by.size:
        return empty(title, "no completed trials yet")
    width = max(WIDTH, 120 * len(axes))
    top, bottom = MARGIN_TOP + 14, HEIGHT - 24
    count = len(colour_by)
    keep = range(0, count, max(1, count // MAX_LINES))
    columns = []
    for i, (name, values, categories, log) in enumerate(axes):
        position = MARGIN_LEFT + i * (width - MARGIN_LEFT - 56) / max(len(axes) - 1, 1)  # room for labels
        if categories:
            scale = Axis(0, len(categories), bottom, top, categories=categories)
            mapped = [scale(values[row] + 0.5) for row in keep]
        else:
            scale = Axis.fit(values, bottom, top, log)
            mapped = [scale(values[row]) for row in keep]
        columns.append((position, name, scale, mapped))
    low, high = _clamp(float(colour_by.min())), _clamp(float(colour_by.max()))
    parts = []
    for k, row in enumerate(keep):
        shade = 0.0 if high == low else (_clamp(colour_by[row]) - low) / (high - low)
        color = f"rgb({int(37 + 183 * shade)},{int(99 - 61 * shade)},{int(235 - 197 * shade)})"
        path = " ".join(f"{position:.1f},{mapped[k]:.1f}" for position, _, _, mapped in columns)
        parts.append(f'<polyline points="{path}" class="pc" stroke="{color}"/>')
    for position, name, scale, _ in columns:
        parts.append(f'<line x1="{position:.1f}" x2="{position:.1f}" y1="{top}" y2="{bottom}" class="pcaxis"/>')
        parts.append(f'<text x="{position:.1f}" y="{MARGIN_TOP + 2}" class="label" text-anchor="middle">'
                     f"{escape(name)}</text>")
        for tick_y, label in scale.ticks(4):
            parts.append(f'<text x="{position + 4:.1f}" y="{tick_y + 4:.1f}" class="tick">{escape(label)}</text>')
    return _svg(parts, title, width, HEIGHT)
