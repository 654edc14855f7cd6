"""The analysis pages' charts as inline SVG: importance bars, a binned contour map and a timeline per worker.

Same conventions as `plots`: a viewBox and no fixed size, a hover title on every mark, and a link to the
trial a mark stands for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

import numpy as np

from service.ui import plots
from service.ui.plots import Axis, Key

BAR_HEIGHT = 22
LABEL_WIDTH = 150


def bars(labels: Sequence[str], shares: Sequence[float], *, title: str, notes: Sequence[str] = ()) -> str:
    """Horizontal bars of shares in [0, 1], largest first as given, each labelled with its percentage."""
    if not labels:
        return plots.empty(title, "not enough completed trials yet")
    height = plots.MARGIN_TOP + BAR_HEIGHT * len(labels) + 30
    scale = Axis(0.0, max(max(shares), 1e-9), LABEL_WIDTH, plots.WIDTH - plots.MARGIN_RIGHT - 60)
    parts = []
    for i, (label, share) in enumerate(zip(labels, shares, strict=True)):
        top = plots.MARGIN_TOP + i * BAR_HEIGHT
        tip = f"{label}: {share:.1%} of the variance" + (f" ({notes[i]})" if notes and notes[i] else "")
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{top + 15}" class="label" text-anchor="end">{escape(label)}</text>'
        )
        parts.append(
            plots.linked(
                f'<rect x="{LABEL_WIDTH}" y="{top + 3}" width="{scale(share) - LABEL_WIDTH:.1f}" '
                f'height="{BAR_HEIGHT - 6}" class="bar"/>',
                tip,
                None,
                None,
            )
        )
        parts.append(f'<text x="{scale(share) + 6:.1f}" y="{top + 15}" class="tick">{share:.1%}</text>')
    return plots.document(parts, title, plots.WIDTH, height)


@dataclass(frozen=True)
class Grid:
    """A binned map: `means[i, j]` is the mean objective over the trials in x-bin i and y-bin j (NaN when the
    bin is plots.empty). Numeric edges are in the parameter's own units (log-spaced on a log axis)."""

    x_edges: np.ndarray  # (nx + 1,)
    y_edges: np.ndarray  # (ny + 1,)
    means: np.ndarray  # (nx, ny)
    counts: np.ndarray  # (nx, ny)
    predicted: bool = False  # the means are a model's predictions at the cell centres, not trial averages


def heatmap(
    grid: Grid,
    *,
    x: tuple[str, list[str] | None, bool],
    y: tuple[str, list[str] | None, bool],
    metric: str,
    maximize: bool,
    title: str,
    points: tuple[np.ndarray, np.ndarray, np.ndarray],
    link: str | None,
    digits: int,
) -> str:
    """The grid's cells coloured by their mean (blue best, red worst), with the trials as dots on top.

    `x` and `y` are (name, categories or None, log); categorical values arrive as choice indices."""
    height = 420
    finite = grid.means[np.isfinite(grid.means)]
    if not finite.size:
        return plots.empty(title, "no completed trials yet", plots.WIDTH, height)
    bottom = height - plots.MARGIN_BOTTOM

    def axis(spec: tuple[str, list[str] | None, bool], edges: np.ndarray, start: float, end: float) -> Axis:
        _, categories, log = spec
        if categories:
            return Axis(0, len(categories), start, end, categories=categories)
        return Axis.between(float(edges[0]), float(edges[-1]), start, end, log)

    x_axis = axis(x, grid.x_edges, plots.MARGIN_LEFT, plots.WIDTH - plots.MARGIN_RIGHT - 20)
    y_axis = axis(y, grid.y_edges, bottom, plots.MARGIN_TOP)
    x_edges = np.arange(len(x[1]) + 1, dtype=float) if x[1] else grid.x_edges
    y_edges = np.arange(len(y[1]) + 1, dtype=float) if y[1] else grid.y_edges
    low, high = float(finite.min()), float(finite.max())
    parts = plots.frame(
        x_axis, y_axis, x[0] + (" (log)" if x[2] and not x[1] else ""), y[0] + (" (log)" if y[2] and not y[1] else "")
    )

    def span(edges: np.ndarray, i: int, categories: list[str] | None) -> str:
        return categories[i] if categories else f"{plots.fmt(float(edges[i]))}…{plots.fmt(float(edges[i + 1]))}"

    for i in range(grid.means.shape[0]):
        for j in range(grid.means.shape[1]):
            mean = grid.means[i, j]
            if not np.isfinite(mean):
                continue
            share = 0.0 if high == low else (mean - low) / (high - low)
            colour = plots.colour_scale(1 - share if maximize else share)
            left, right = x_axis(float(x_edges[i])), x_axis(float(x_edges[i + 1]))
            top, base = y_axis(float(y_edges[j + 1])), y_axis(float(y_edges[j]))
            where = f"{x[0]} {span(grid.x_edges, i, x[1])}, {y[0]} {span(grid.y_edges, j, y[1])}"
            if grid.predicted:
                tip = (
                    f"{where}: predicted {metric} {plots.fmt(float(mean), digits)} "
                    f"({int(grid.counts[i, j])} trials in the cell)"
                )
            else:
                tip = f"{where}: mean {metric} {plots.fmt(float(mean), digits)} over {int(grid.counts[i, j])} trials"
            parts.append(
                plots.linked(
                    f'<rect x="{left:.1f}" y="{top:.1f}" width="{right - left + 0.3:.1f}" '
                    f'height="{base - top + 0.3:.1f}" fill="{colour}" class="cell"/>',
                    tip,
                    None,
                    None,
                )
            )
    xs, ys, numbers = points
    keep = plots.thin_mask(xs.size, plots.MAX_POINTS)
    x_offset, y_offset = (0.5 if x[1] else 0.0), (0.5 if y[1] else 0.0)
    for a, b, n in zip(xs[keep].tolist(), ys[keep].tolist(), numbers[keep].tolist(), strict=True):
        shown_a = x[1][int(a)] if x[1] else plots.fmt(a)
        shown_b = y[1][int(b)] if y[1] else plots.fmt(b)
        parts.append(
            plots.linked(
                f'<circle cx="{x_axis(a + x_offset):.1f}" cy="{y_axis(b + y_offset):.1f}" r="1.8" class="dot"/>',
                f"trial {n}: {x[0]} {shown_a}, {y[0]} {shown_b}",
                int(n),
                link,
            )
        )
    best, worst = (high, low) if maximize else (low, high)
    parts += plots.gradient_key(
        plots.MARGIN_LEFT + 150,
        14,
        f"best mean {metric} {plots.fmt(best, digits)}",
        f"worst {plots.fmt(worst, digits)}",
    )
    return plots.document(parts, title, plots.WIDTH, height, link=link)


@dataclass(frozen=True)
class Span:
    """One trial on the timeline: its row (worker), when it started and ended (seconds since the epoch)."""

    number: int
    worker: str
    state: str
    start: float
    end: float
    running: bool  # still going: its bar ends now


def _clock(span: float) -> Callable[[float], str]:
    """Tick labels as clock times, coarser the longer the timeline."""

    def label(value: float) -> str:
        moment = datetime.fromtimestamp(value, UTC)
        return moment.strftime("%H:%M:%S" if span < 3 * 3600 else "%m-%d %H:%M" if span < 30 * 86400 else "%Y-%m-%d")

    return label


MAX_LANES = 6  # trials of one worker that overlap in time get lanes of their own, up to this many


def _lanes(spans: Sequence[Span]) -> list[int]:
    """Each span's lane within its worker's row: greedy interval partitioning in start order, so overlapping
    trials (a worker running several at once) sit side by side; past MAX_LANES they share the freest lane."""
    lanes = [0] * len(spans)
    ends: dict[str, list[float]] = {}
    for i in sorted(range(len(spans)), key=lambda k: spans[k].start):
        span = spans[i]
        row = ends.setdefault(span.worker, [])
        free = next((lane for lane, end in enumerate(row) if end <= span.start), None)
        if free is None and len(row) < MAX_LANES:
            row.append(span.end)
            free = len(row) - 1
        elif free is None:
            free = min(range(len(row)), key=lambda lane: row[lane])
        row[free] = max(row[free], span.end)
        lanes[i] = free
    return lanes


def timeline(spans: Sequence[Span], workers: Sequence[str], *, title: str, link: str | None) -> str:
    """One row per worker, one bar per trial from its start to its end, coloured by its state; trials that
    overlap on one worker are stacked in lanes."""
    if not spans:
        return plots.empty(title, "no trials have started yet")
    lanes = _lanes(spans)
    count = {w: 1 for w in workers}
    for span, lane in zip(spans, lanes, strict=True):
        count[span.worker] = max(count[span.worker], lane + 1)
    lane_height = 9
    tops: dict[str, float] = {}
    top = plots.MARGIN_TOP
    for worker in workers:
        tops[worker] = top
        top += count[worker] * lane_height + 8
    height = int(top + plots.MARGIN_BOTTOM)
    starts = np.array([s.start for s in spans])
    ends = np.array([s.end for s in spans])
    low, high = float(starts.min()), float(ends.max())
    x = Axis.between(low, max(high, low + 1.0), LABEL_WIDTH, plots.WIDTH - plots.MARGIN_RIGHT)
    x.label = _clock(x.high - x.low)
    bottom = top
    parts = [
        f'<rect x="{x.start:.1f}" y="{plots.MARGIN_TOP}" width="{x.end - x.start:.1f}" '
        f'height="{bottom - plots.MARGIN_TOP:.1f}" class="frame"/>'
    ]
    for position, label in x.ticks(6):
        parts.append(
            f'<text x="{position:.1f}" y="{bottom + 16:.1f}" class="tick" text-anchor="middle">{escape(label)}</text>'
        )
    parts.append(
        f'<text x="{(x.start + x.end) / 2:.1f}" y="{bottom + 34:.1f}" class="label" '
        f'text-anchor="middle">time (UTC)</text>'
    )
    for worker in workers:
        middle = tops[worker] + 4 + count[worker] * lane_height / 2
        parts.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{middle + 4:.1f}" class="tick" text-anchor="end">'
            f"{escape(worker[:24])}</text>"
        )
    for s, lane in zip(spans, lanes, strict=True):
        bar_top = tops[s.worker] + 4 + lane * lane_height
        left, right = x(s.start), x(s.end)
        tip = (
            f"trial {s.number} ({s.state}{', running' if s.running else ''}) on {s.worker}: "
            f"{datetime.fromtimestamp(s.start, UTC):%Y-%m-%d %H:%M:%S} for {plots.fmt(s.end - s.start)} s"
        )
        colour = plots.STATE_COLORS.get(s.state, "#999")
        parts.append(
            plots.linked(
                f'<rect x="{left:.1f}" y="{bar_top:.1f}" width="{max(right - left, 1.0):.1f}" '
                f'height="{lane_height - 2}" fill="{colour}" class="span"/>',
                tip,
                s.number,
                link,
            )
        )
    states = sorted({s.state for s in spans})
    parts += plots.legend([Key(state, plots.STATE_COLORS.get(state, "#999"), "box") for state in states], LABEL_WIDTH)
    return plots.document(parts, title, plots.WIDTH, height, link=link)
