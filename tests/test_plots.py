"""The dashboard's SVG plots stay drawable for any finite values a study may hold."""

from __future__ import annotations

import re

import pytest

from service.ui import plots

EXTREMES = [
    [1e16],
    [1e20, 1e20 + 1e5],
    [-1e308, 1e308],
    [1e-300, 1e300],
    [0.0, 0.0],
    [5e-324, 1.0],
]


def _coordinates(svg: str) -> list[float]:
    return [float(v) for v in re.findall(r'(?:cx|cy|x|y|x1|x2|y1|y2)="(-?[0-9.e+-]+)"', svg)]


@pytest.mark.parametrize("values", EXTREMES)
@pytest.mark.parametrize("log", [False, True])
def test_axis_has_width_ticks_and_finite_positions(values: list[float], log: bool) -> None:
    axis = plots.Axis.fit(values, 0.0, 100.0, log)
    assert axis.high > axis.low
    ticks = axis.ticks()
    assert len(ticks) <= plots.MAX_TICKS
    positions = [axis(v) for v in values if v > 0 or not log]
    assert all(-1e6 < p < 1e6 for p, _ in ticks)
    assert all(p == p and abs(p) != float("inf") for p in positions)  # no NaN or infinity


@pytest.mark.parametrize("values", EXTREMES)
def test_every_plot_renders_extreme_values(values: list[float]) -> None:
    numbers = list(range(len(values)))
    svgs = [
        plots.history(numbers, values, values, metric="loss"),
        plots.history(numbers, values, values, metric="loss", log=True),
        plots.scatter(values, values, x_label="a", y_label="b", title="t", highlight=[True] * len(values),
                      connect=True),
        plots.lines([("trial 0", "#000", [(float(i), v) for i, v in enumerate(values)])],
                    x_label="step", y_label="loss", title="t"),
        plots.parallel_coordinates([("a", values, None, False), ("b", values, None, True)], values, title="t"),
    ]
    for svg in svgs:
        assert svg.startswith("<svg") and "nan" not in svg and "inf" not in svg
        assert all(abs(c) < 1e9 for c in _coordinates(svg))


def test_close_values_get_distinct_tick_labels() -> None:
    labels = [label for _, label in plots.Axis.fit([1e16, 1e16 + 4e10], 0.0, 100.0).ticks()]
    assert len(labels) >= 2 and len(set(labels)) == len(labels)
