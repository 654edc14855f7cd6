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
        plots.scatter(
            values, values, x_label="a", y_label="b", title="t", highlight=[True] * len(values), connect=True
        ),
        plots.lines(
            [("trial 0", "#000", [(float(i), v) for i, v in enumerate(values)])],
            x_label="step",
            y_label="loss",
            title="t",
        ),
        plots.parallel_coordinates([("a", values, None, False), ("b", values, None, True)], values, title="t"),
    ]
    for svg in svgs:
        assert svg.startswith("<svg") and "nan" not in svg and "inf" not in svg
        assert all(abs(c) < 1e9 for c in _coordinates(svg))


def test_close_values_get_distinct_tick_labels() -> None:
    labels = [label for _, label in plots.Axis.fit([1e16, 1e16 + 4e10], 0.0, 100.0).ticks()]
    assert len(labels) >= 2 and len(set(labels)) == len(labels)


def test_values_round_to_what_tells_them_apart() -> None:
    assert plots.fmt(0.123456789) == "0.1235"
    assert plots.fmt(1234567.0) == "1.235e+06"
    assert plots.fmt(float("nan")) == "—"
    assert plots.digits_for([0.1, 0.35, 0.6]) == 4
    assert plots.digits_for([1000.12, 1000.15, 1000.17, 1000.19]) >= 7  # they differ in the second decimal
    assert plots.spans_decades([0.5, 3.0, 900.0]) and not plots.spans_decades([1.0, 50.0])
    assert not plots.spans_decades([-1.0, 1e4])


def test_scatter_points_name_and_link_their_trials_and_fit_their_card() -> None:
    svg = plots.scatter(
        [1.0, 2.0, 3.0],
        [3.0, 1.0, 2.0],
        numbers=[7, 8, 9],
        x_label="a",
        y_label="b",
        title="t",
        highlight=[False, True, False],
        link="/ui/studies/s/trials/",
    )
    assert 'width="' not in svg.split(">", 1)[0] and 'viewBox="0 0 ' in svg
    assert re.findall(r'<a href="/ui/studies/s/trials/(\d+)"><circle[^>]*class="(\w+)"><title>trial \1: a ', svg) == [
        ("7", "point"),
        ("9", "point"),
        ("8", "front"),
    ]


def test_the_front_shades_what_it_dominates_up_to_the_reference_point() -> None:
    svg = plots.scatter(
        [1.0, 2.0, 4.0],
        [4.0, 2.0, 1.0],
        x_label="a",
        y_label="b",
        title="t",
        highlight=[True, True, True],
        reference=(5.0, 5.0),
        dominated=(False, False),
        connect=True,
        keys=[plots.Key("Pareto-optimal", plots.ACCENT)],
    )
    polygon = re.search(r'<polygon points="([^"]+)" class="dominated">', svg)
    assert polygon and len(polygon.group(1).split()) == 2 + 2 * 3  # two corners at the reference, a step per point
    assert 'class="reference"' in svg and ">Pareto-optimal</text>" in svg


def test_learning_curves_clip_a_diverged_run_to_the_edge() -> None:
    curves = [plots.Curve(f"trial {i}", "#000", [(1.0, 1.0 + i / 10), (2.0, 0.5 + i / 10)], i) for i in range(20)]
    curves.append(plots.Curve("trial 20", "#000", [(1.0, 1e9), (2.0, 1e9)], 20))
    svg = plots.lines(curves, x_label="epoch", y_label="loss", title="t", robust=True, link="/t/")
    assert "clipped to the bulk of the curves" in svg
    assert all(abs(c) < 1e4 for c in _coordinates(svg))
    assert max(float(t) for t in re.findall(r'text-anchor="end">([0-9.e+-]+)<', svg)) < 10
    log = plots.lines(curves, x_label="epoch", y_label="loss", title="t", robust=True, log=True)
    assert "clipped" in log and "1e+09" not in log


def test_history_shows_stopped_and_infeasible_trials_with_a_legend() -> None:
    svg = plots.history(
        [0, 1, 2],
        [3.0, 2.0, 1.0],
        [3.0, 2.0, 2.0],
        metric="loss",
        feasible=[True, True, False],
        stopped=([3], [5.0]),
        link="/t/",
    )
    assert 'class="point infeasible"><title>trial 2: loss 1 (infeasible)' in svg
    assert 'class="point stopped"><title>trial 3 (stopped): loss 5' in svg
    assert ">infeasible</text>" in svg and ">best so far</text>" in svg


def test_large_scatters_draw_a_capped_sample_and_every_highlighted_point() -> None:
    n = 50_000
    highlight = [i % 5_000 == 0 for i in range(n)]
    svg = plots.scatter(
        list(range(n)), [float(i % 97) for i in range(n)], x_label="a", y_label="b", title="t", highlight=highlight
    )
    assert svg.count('class="point"') <= plots.MAX_POINTS
    assert svg.count('class="front"') == sum(highlight)


def test_overlapping_trials_of_one_worker_get_lanes() -> None:
    from service.ui import charts

    spans = [
        charts.Span(0, "w", "completed", 0.0, 10.0, False),
        charts.Span(1, "w", "completed", 5.0, 15.0, False),
        charts.Span(2, "w", "active", 12.0, 20.0, True),
        charts.Span(3, "v", "failed", 0.0, 1.0, False),
    ]
    assert charts._lanes(spans) == [0, 1, 0, 0]
    svg = charts.timeline(spans, ["w", "v"], title="t", link="/t/")
    assert re.findall(r'<a href="/t/(\d)"><rect', svg) == ["0", "1", "2", "3"]
    assert "trial 2 (active, running) on w" in svg and ">failed</text>" in svg
