"""Plots as inline SVG, drawn on the server: no JavaScript charting library and nothing from a CDN.

Each function takes plain numbers and returns one `<svg>` element with a viewBox and no fixed size, so the
browser scales it to its card. Every mark that stands for a trial carries a `<title>` (shown on hover)
naming the trial and its values, and links to the trial's page when the caller gives `link` (the trial
page's URL without the number). Scatter plots draw at most `MAX_POINTS` points (a study page with 50,000
trials stays small); the caller picks which.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import NamedTuple

import numpy as np

WIDTH, HEIGHT = 960, 320  # a plot across the page
CARD_WIDTH, CARD_HEIGHT = 480, 300  # a plot in a grid of cards
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 30, 44
MAX_POINTS = 1000
MAX_CARD_POINTS = 500  # in a small plot of a grid of cards (the slices)
MAX_LINES = 400  # parallel-coordinates lines
STATE_COLORS = {
    "completed": "#2563eb",
    "active": "#f59e0b",
    "paused": "#8b5cf6",
    "stopped": "#6b7280",
    "failed": "#dc2626",
    "infeasible": "#be185d",
    "waiting": "#10b981",
}
ACCENT = "#dc2626"
DIGITS = 4  # significant digits of a value shown on its own


def fmt(value: float, digits: int = DIGITS) -> str:
    """A value with `digits` significant digits; exponent notation when very large or small."""
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == 0:
        return "0"
    return f"{value:.{digits}g}"


_fmt = fmt


def digits_for(values: Sequence[float] | np.ndarray) -> int:
    """Significant digits that tell a metric's values apart: 4, more when they differ only far to the right
    of their leading digit (1000.12 against 1000.17), at most 12."""
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    if finite.size < 2:
        return DIGITS
    low, high = np.quantile(finite, [0.1, 0.9])
    spread = float(high - low) or float(finite.max() - finite.min())
    largest = float(np.abs(finite).max())
    if spread <= 0 or largest <= 0:
        return DIGITS
    return int(min(12, max(DIGITS, 2 + math.ceil(math.log10(largest / spread)))))


def spans_decades(values: Sequence[float] | np.ndarray, decades: float = 2.0) -> bool:
    """All positive and spanning more than `decades` powers of ten: a cost-like metric, read on a log axis."""
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    return bool(finite.size) and bool(np.all(finite > 0)) and float(finite.max() / finite.min()) > 10**decades


PLOT_LIMIT = 1e150
MAX_TICKS = 50


def _clamp(value: float) -> float:
    return min(max(value, -PLOT_LIMIT), PLOT_LIMIT)


@dataclass
class Axis:
    """A linear or log axis over [low, high] mapped onto [start, end] pixels; or categories at even steps.

    `label` turns a tick's value into its text (a clock time on a timeline); the default rounds to 4 digits.
    """

    low: float
    high: float
    start: float
    end: float
    log: bool = False
    categories: list[str] = field(default_factory=list)
    label: Callable[[float], str] | None = None

    @classmethod
    def fit(cls, values: Sequence[float] | np.ndarray, start: float, end: float, log: bool = False) -> Axis:
        array = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            finite = array[np.isfinite(array) & ((array > 0) if log else True)]
        if not finite.size:
            return cls(0.0, 1.0, start, end)
        # Clamped so that the span stays finite: no plot can tell 1e200 from 1e300 apart anyway.
        low, high = _clamp(float(finite.min())), _clamp(float(finite.max()))
        return cls.between(low, high, start, end, log)

    @classmethod
    def between(cls, low: float, high: float, start: float, end: float, log: bool = False) -> Axis:
        """An axis over [low, high] (both positive when `log`), padded by 4% each side."""
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

    def inside(self, value: float) -> float:
        """The pixel position, held to the axis' ends (a value beyond the range is drawn at the edge)."""
        low, high = sorted((self.start, self.end))
        return min(max(self(value), low), high)

    def ticks(self, count: int = 5) -> list[tuple[float, str]]:
        """Round-numbered ticks (1, 2 or 5 times a power of ten; decades on a log axis) inside the range."""
        if self.categories:
            return [
                (self.start + (i + 0.5) / len(self.categories) * (self.end - self.start), c)
                for i, c in enumerate(self.categories)
            ]
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
        # Steps far below the values (1.0000001e16, 1.0000002e16) need more digits than fmt gives.
        digits = min(15, 2 + math.ceil(math.log10(largest / step))) if step < largest * 1e-3 else 0
        value = math.ceil(self.low / step) * step
        while value <= self.high + 1e-12 and len(ticks) < MAX_TICKS:
            position = self.start + (value - self.low) / span * (self.end - self.start)
            if self.log:
                label = fmt(10**value if value < 308 else math.inf)
            elif self.label is not None:
                label = self.label(value)
            elif digits:
                label = f"{value:.{digits}e}"
            else:
                label = fmt(round(value, 12))
            ticks.append((position, label))
            if value + step == value:  # the step vanished in the value's precision
                break
            value += step
        return ticks


def document(body: list[str], title: str, width: int = WIDTH, height: int = HEIGHT, link: str | None = None) -> str:
    data = f' data-trial-link="{escape(link)}"' if link is not None else ""
    return (
        f'<svg class="plot" viewBox="0 0 {width} {height}" preserveAspectRatio="xMidYMid meet" role="img" '
        f'aria-label="{escape(title)}"{data} xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        + "".join(body)
        + "</svg>"
    )


def frame(x: Axis, y: Axis, x_label: str, y_label: str) -> list[str]:
    parts = [
        f'<rect x="{x.start:.1f}" y="{y.end:.1f}" width="{x.end - x.start:.1f}" '
        f'height="{y.start - y.end:.1f}" class="frame"/>'
    ]
    for position, label in x.ticks():
        parts.append(
            f'<text x="{position:.1f}" y="{y.start + 16:.1f}" class="tick" text-anchor="middle">{escape(label)}</text>'
        )
    for position, label in y.ticks():
        parts.append(
            f'<text x="{x.start - 6:.1f}" y="{position + 4:.1f}" class="tick" text-anchor="end">{escape(label)}</text>'
        )
    parts.append(
        f'<text x="{(x.start + x.end) / 2:.1f}" y="{y.start + 34:.1f}" class="label" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text x="14" y="{(y.start + y.end) / 2:.1f}" class="label" text-anchor="middle" '
        f'transform="rotate(-90 14 {(y.start + y.end) / 2:.1f})">{escape(y_label)}</text>'
    )
    return parts


class Key(NamedTuple):
    """One legend entry: a swatch of `kind` (dot, ring, line, dash, box, cross) in `color`, and its text."""

    label: str
    color: str
    kind: str = "dot"


def legend(keys: Sequence[Key], x: float, y: float = 14) -> list[str]:
    """A row of legend entries starting at (x, y), above the plot's frame."""
    parts = ['<g class="legend">']
    for key in keys:
        color = escape(key.color)
        if key.kind == "dot":
            parts.append(f'<circle cx="{x + 4:.1f}" cy="{y - 4:.1f}" r="3.5" fill="{color}"/>')
        elif key.kind == "ring":
            parts.append(f'<circle cx="{x + 4:.1f}" cy="{y - 4:.1f}" r="3.5" fill="none" stroke="{color}"/>')
        elif key.kind in ("line", "dash"):
            dash = ' stroke-dasharray="4 3"' if key.kind == "dash" else ""
            parts.append(
                f'<line x1="{x:.1f}" x2="{x + 14:.1f}" y1="{y - 4:.1f}" y2="{y - 4:.1f}" stroke="{color}" '
                f'stroke-width="2"{dash}/>'
            )
        elif key.kind == "cross":
            parts.append(f'<path d="M{x:.1f},{y - 8:.1f}l8,8m0,-8l-8,8" stroke="{color}" stroke-width="2"/>')
        else:
            parts.append(f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{color}"/>')
        width = 14 if key.kind in ("line", "dash") else 10
        parts.append(f'<text x="{x + width + 4:.1f}" y="{y:.1f}" class="tick">{escape(key.label)}</text>')
        x += width + 14 + 6.2 * len(key.label)
    parts.append("</g>")
    return parts


def _axes(
    xs: Sequence[float] | np.ndarray,
    ys: Sequence[float] | np.ndarray,
    log_x: bool = False,
    log_y: bool = False,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> tuple[Axis, Axis]:
    x = Axis.fit(xs, MARGIN_LEFT, width - MARGIN_RIGHT, log_x)
    y = Axis.fit(ys, height - MARGIN_BOTTOM, MARGIN_TOP, log_y)
    return x, y


def _polyline(
    points: Sequence[tuple[float, float]], x: Axis, y: Axis, color: str, css: str = "line", clip: bool = False
) -> str:
    position = y.inside if clip else y
    path = " ".join(f"{x(a):.1f},{position(b):.1f}" for a, b in points)
    return f'<polyline points="{path}" class="{css}" stroke="{color}"/>'


def linked(mark: str, tip: str, number: int | None, link: str | None) -> str:
    """A mark with its hover text, inside a link to trial `number`'s page when there is one."""
    body = mark.replace("/>", f"><title>{escape(tip)}</title></{mark[1:].split(' ', 1)[0]}>", 1)
    if link is None or number is None:
        return body
    return f'<a href="{escape(link)}{number}">{body}</a>'


def empty(title: str, message: str, width: int = WIDTH, height: int = HEIGHT) -> str:
    return document(
        [f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="empty">{escape(message)}</text>'],
        title,
        width,
        height,
    )


def thin_mask(count: int, limit: int = MAX_POINTS) -> np.ndarray:
    keep = np.zeros(count, dtype=bool)
    keep[:: max(1, math.ceil(count / limit))] = True
    return keep


def history(
    numbers: Sequence[int] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    best: Sequence[float] | np.ndarray,
    *,
    metric: str,
    log: bool = False,
    feasible: Sequence[bool] | np.ndarray | None = None,
    stopped: tuple[Sequence[int], Sequence[float]] = ((), ()),
    link: str | None = None,
    digits: int = DIGITS,
) -> str:
    """Every completed trial's value by trial number (hollow when infeasible), the values stopped trials had
    reached, and the best-so-far line."""
    title = f"optimization history of {metric}"
    numbers = np.asarray(numbers, dtype=np.float64)
    values, best = np.asarray(values, dtype=np.float64), np.asarray(best, dtype=np.float64)
    stopped_numbers = np.asarray(stopped[0], dtype=np.float64)
    stopped_values = np.asarray(stopped[1], dtype=np.float64)
    if not values.size and not stopped_values.size:
        return empty(title, "no completed trials yet")
    x, y = _axes(np.concatenate([numbers, stopped_numbers]), np.concatenate([values, best, stopped_values]), log_y=log)
    parts = frame(x, y, "trial", metric + (" (log scale)" if log else ""))
    ok = np.ones(values.size, dtype=bool) if feasible is None else np.asarray(feasible, dtype=bool)
    keys = [Key("completed", STATE_COLORS["completed"])]
    if not ok.all():
        keys.append(Key("infeasible", STATE_COLORS["completed"], "ring"))
    if stopped_values.size:
        keys.append(Key("stopped (value when stopped)", STATE_COLORS["stopped"]))
    keys.append(Key("best so far", ACCENT, "line"))
    thinned = thin_mask(values.size)
    for n, v, good in zip(numbers[thinned].tolist(), values[thinned].tolist(), ok[thinned].tolist(), strict=True):
        css = "point" if good else "point infeasible"
        tip = f"trial {int(n)}: {metric} {fmt(v, digits)}" + ("" if good else " (infeasible)")
        parts.append(linked(f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="2.5" class="{css}"/>', tip, int(n), link))
    kept = thin_mask(stopped_values.size)
    for n, v in zip(stopped_numbers[kept].tolist(), stopped_values[kept].tolist(), strict=True):
        parts.append(
            linked(
                f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="2.5" class="point stopped"/>',
                f"trial {int(n)} (stopped): {metric} {fmt(v, digits)}",
                int(n),
                link,
            )
        )
    if best.size:
        # A staircase: a corner wherever the best value changes, then on to the last trial.
        with np.errstate(over="ignore", invalid="ignore"):  # -1e308 to 1e308 overflows and still differs
            changes = np.concatenate([[0], np.flatnonzero(best[1:] != best[:-1]) + 1])
        staircase: list[tuple[float, float]] = []
        for n, b in zip(numbers[changes].tolist(), best[changes].tolist(), strict=True):
            if staircase:
                staircase.append((n, staircase[-1][1]))
            staircase.append((n, b))
        staircase.append((float(numbers[-1]), float(best[-1])))
        parts.append(
            f'<g class="best"><title>best so far: {escape(fmt(float(best[-1]), digits))}</title>'
            f"{_polyline(staircase, x, y, ACCENT)}</g>"
        )
    parts += legend(keys, MARGIN_LEFT)
    return document(parts, title, link=link)


def scatter(
    xs: Sequence[float] | np.ndarray,
    ys: Sequence[float] | np.ndarray,
    *,
    x_label: str,
    y_label: str,
    title: str,
    numbers: Sequence[int] | np.ndarray | None = None,
    highlight: Sequence[bool] | np.ndarray | None = None,
    categories: list[str] | None = None,
    log_x: bool = False,
    log_y: bool = False,
    connect: bool = False,
    reference: tuple[float, float] | None = None,
    dominated: tuple[bool, bool] | None = None,
    link: str | None = None,
    digits: tuple[int, int] = (DIGITS, DIGITS),
    keys: Sequence[Key] = (),
    width: int = WIDTH,
    height: int = HEIGHT,
    limit: int = MAX_POINTS,
) -> str:
    """Points (categorical x given as category indices); highlighted ones drawn on top, in the accent color,
    joined by a dashed line when `connect` (a two-objective front). `reference` draws the hypervolume's
    reference point; with `dominated` (whether x and y are maximized) it also shades the region the
    highlighted points dominate up to it. At most `limit` plain points are drawn, evenly spaced."""
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if not xs.size:
        return empty(title, "no completed trials yet", width, height)
    numbers_ = np.arange(xs.size) if numbers is None else np.asarray(numbers)
    extra_x, extra_y = ([reference[0]], [reference[1]]) if reference is not None else ([], [])
    x, y = _axes(
        np.concatenate([xs, extra_x]),
        np.concatenate([ys, extra_y]),
        log_x=log_x,
        log_y=log_y,
        width=width,
        height=height,
    )
    if categories:
        x = Axis(0, len(categories), MARGIN_LEFT, width - MARGIN_RIGHT, categories=categories)
    parts = frame(x, y, x_label + (" (log)" if log_x and not categories else ""), y_label + (" (log)" if log_y else ""))
    marks = np.zeros(xs.size, dtype=bool) if highlight is None else np.asarray(highlight, dtype=bool)
    chosen = list(zip(xs[marks].tolist(), ys[marks].tolist(), strict=True))
    if reference is not None and dominated is not None and chosen:
        parts.append(_dominated_region(chosen, reference, dominated, x, y))
    thinned = thin_mask(xs.size, limit)
    offset = 0.5 if categories else 0.0

    def point(a: float, b: float, n: int, css: str, radius: float) -> str:
        shown_x = categories[int(a)] if categories and 0 <= int(a) < len(categories) else fmt(a, digits[0])
        tip = f"trial {n}: {x_label} {shown_x}, {y_label} {fmt(b, digits[1])}"
        return linked(f'<circle cx="{x(a + offset):.1f}" cy="{y(b):.1f}" r="{radius}" class="{css}"/>', tip, n, link)

    plain = thinned & ~marks
    parts += [
        point(a, b, int(n), "point", 2.5)
        for a, b, n in zip(xs[plain].tolist(), ys[plain].tolist(), numbers_[plain].tolist(), strict=True)
    ]
    if connect and len(chosen) > 1:
        parts.append(_polyline(sorted(chosen), x, y, ACCENT, "frontline"))
    parts += [
        point(a, b, int(n), "front", 3.5)
        for a, b, n in zip(xs[marks].tolist(), ys[marks].tolist(), numbers_[marks].tolist(), strict=True)
    ]
    if reference is not None:
        rx, ry = x(reference[0]), y(reference[1])
        parts.append(
            f'<path d="M{rx - 5:.1f},{ry - 5:.1f}l10,10m0,-10l-10,10" class="reference">'
            f"<title>reference point: {escape(x_label)} {escape(fmt(reference[0]))}, "
            f"{escape(y_label)} {escape(fmt(reference[1]))}</title></path>"
        )
    if keys:
        parts += legend(keys, MARGIN_LEFT)
    return document(parts, title, width, height, link=link)


def _dominated_region(
    front: Sequence[tuple[float, float]], reference: tuple[float, float], maximized: tuple[bool, bool], x: Axis, y: Axis
) -> str:
    """The union of the boxes between each front point and the reference point, as one polygon."""
    sx, sy = (1.0 if maximized[0] else -1.0), (1.0 if maximized[1] else -1.0)
    ru, rv = sx * reference[0], sy * reference[1]
    inside = sorted((sx * a, sy * b) for a, b in front if sx * a > ru and sy * b > rv)
    if not inside:
        return ""
    corners = [(ru, rv), (ru, inside[0][1])]
    for i, (u, v) in enumerate(inside):
        corners.append((u, v))
        if i + 1 < len(inside):
            corners.append((u, inside[i + 1][1]))
    corners.append((inside[-1][0], rv))
    path = " ".join(f"{x(sx * u):.1f},{y(sy * v):.1f}" for u, v in corners)
    return f'<polygon points="{path}" class="dominated"><title>dominated region</title></polygon>'


def _thin(points: Sequence[tuple[float, float]]) -> Sequence[tuple[float, float]]:
    """At most MAX_POINTS points of a long series, evenly spaced, the last one kept."""
    if len(points) <= MAX_POINTS:
        return points
    step = math.ceil(len(points) / MAX_POINTS)
    return [*points[::step], points[-1]]


class Curve(NamedTuple):
    """One line of a `lines` plot: its label (the hover text), color, points, and the trial it belongs to."""

    label: str
    color: str
    points: Sequence[tuple[float, float]]
    number: int | None = None


FENCE = 3.0  # Tukey's "far out" fence, in interquartile ranges


def _robust_range(values: np.ndarray, log: bool) -> tuple[float, float] | None:
    """The values within Tukey's far-out fences (quartiles widened by FENCE interquartile ranges; on the
    logarithms for a log axis): the y-range of many curves, which up to a quarter of outlying points do
    not stretch. None when that range would clip nothing."""
    if log:
        found = _robust_range(np.log10(values[values > 0]), False)
        return None if found is None else (10 ** found[0], 10 ** found[1])
    q1, q3 = (float(v) for v in np.quantile(values, [0.25, 0.75]))
    spread = (q3 - q1) or max(abs(q3), 1.0) * 0.1
    inside = values[(values >= q1 - FENCE * spread) & (values <= q3 + FENCE * spread)]
    low, high = float(inside.min()), float(inside.max())
    if low <= float(values.min()) and high >= float(values.max()):
        return None
    return low, high


def lines(
    series: Sequence[tuple[str, str, Sequence[tuple[float, float]]] | Curve],
    *,
    x_label: str,
    y_label: str,
    title: str,
    log: bool = False,
    log_x: bool = False,
    robust: bool = False,
    link: str | None = None,
    keys: Sequence[Key] = (),
    marks: Sequence[tuple[float, float, int, str]] = (),
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """Several labelled polylines, e.g. learning curves or hypervolume over time, and `marks` (x, y, trial
    number, hover text) on top. With `robust` the y-range is the curves' bulk (see `_robust_range`) and values
    beyond it are drawn at the frame's edge."""
    curves = [Curve(*item) for item in series]
    curves = [c._replace(points=_thin(c.points)) for c in curves]
    points = [p for c in curves for p in c.points]
    if not points:
        return empty(title, "nothing reported yet", width, height)
    ys = np.array([p[1] for p in points], dtype=np.float64)
    x, y = _axes([p[0] for p in points], ys, log_y=log, log_x=log_x, width=width, height=height)
    clipped = None
    if robust:
        finite = ys[np.isfinite(ys)]
        clipped = _robust_range(finite, log) if finite.size > 10 else None
        if clipped is not None:
            y = Axis.between(clipped[0], clipped[1], height - MARGIN_BOTTOM, MARGIN_TOP, log)
    label = y_label + (" (log scale)" if log else "") + (" (clipped to the bulk of the curves)" if clipped else "")
    parts = frame(x, y, x_label, label)
    for curve in curves:
        if len(curve.points) == 1:
            ((a, b),) = curve.points
            parts.append(
                linked(
                    f'<circle cx="{x(a):.1f}" cy="{y.inside(b):.1f}" r="2.5" fill="{curve.color}"/>',
                    curve.label,
                    curve.number,
                    link,
                )
            )
        else:
            line = _polyline(curve.points, x, y, curve.color, clip=clipped is not None)
            parts.append(linked(line, curve.label, curve.number, link))
    for a, b, number, tip in marks[:MAX_POINTS]:
        parts.append(
            linked(f'<circle cx="{x(a):.1f}" cy="{y.inside(b):.1f}" r="2.5" class="mark"/>', tip, number, link)
        )
    if keys:
        parts += legend(keys, MARGIN_LEFT)
    return document(parts, title, width, height, link=link)


def colour_scale(share: float) -> str:
    """Blue (0, the best) through to red (1, the worst)."""
    share = min(max(share, 0.0), 1.0)
    return f"rgb({int(37 + 183 * share)},{int(99 - 61 * share)},{int(235 - 197 * share)})"


def gradient_key(x: float, y: float, low: str, high: str) -> list[str]:
    """A small colour bar from blue to red with its two end labels."""
    parts = [f'<text x="{x:.1f}" y="{y:.1f}" class="tick" text-anchor="end">{escape(low)}</text>']
    for i in range(10):
        parts.append(
            f'<rect x="{x + 4 + i * 8:.1f}" y="{y - 9:.1f}" width="8" height="10" fill="{colour_scale(i / 9)}"/>'
        )
    parts.append(f'<text x="{x + 88:.1f}" y="{y:.1f}" class="tick">{escape(high)}</text>')
    return ['<g class="legend">', *parts, "</g>"]


def parallel_coordinates(
    axes: Sequence[tuple[str, Sequence[float] | np.ndarray, list[str] | None, bool]],
    colour_by: Sequence[float] | np.ndarray,
    *,
    title: str,
    numbers: Sequence[int] | np.ndarray | None = None,
    link: str | None = None,
    colour_label: str = "",
) -> str:
    """One vertical axis per (name, values, categories, log); one line per trial, coloured by `colour_by`
    (blue for the best values, red for the worst)."""
    colour_by = np.asarray(colour_by, dtype=np.float64)
    if not colour_by.size:
        return empty(title, "no completed trials yet")
    width = max(WIDTH, 120 * len(axes))
    top, bottom = MARGIN_TOP + 24, HEIGHT - 24
    count = len(colour_by)
    numbers_ = np.arange(count) if numbers is None else np.asarray(numbers)
    keep = range(0, count, max(1, math.ceil(count / MAX_LINES)))
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
        path = " ".join(f"{position:.1f},{mapped[k]:.1f}" for position, _, _, mapped in columns)
        tip = f"trial {int(numbers_[row])}: " + ", ".join(
            f"{name} {fmt(float(values[row])) if not categories else categories[int(values[row])]}"
            for name, values, categories, _ in axes
        )
        parts.append(
            linked(
                f'<polyline points="{path}" class="pc" stroke="{colour_scale(shade)}"/>', tip, int(numbers_[row]), link
            )
        )
    for position, name, scale, _ in columns:
        parts.append(f'<line x1="{position:.1f}" x2="{position:.1f}" y1="{top}" y2="{bottom}" class="pcaxis"/>')
        parts.append(f'<text x="{position:.1f}" y="{top - 8}" class="label" text-anchor="middle">{escape(name)}</text>')
        for tick_y, label in scale.ticks(4):
            parts.append(f'<text x="{position + 4:.1f}" y="{tick_y + 4:.1f}" class="tick">{escape(label)}</text>')
    parts += gradient_key(MARGIN_LEFT + 40, 14, f"best {colour_label}".strip(), "worst")
    return document(parts, title, width, HEIGHT, link=link)
