"""The dashboard's views without a server: parsed points are cached per set of completed trials, and the EDF
is a staircase."""

from __future__ import annotations

import re

import pytest


def test_points_are_parsed_once_per_set_of_completed_trials() -> None:
    from service.domain.spec import StudySpec
    from service.store.browsing import Columns
    from service.ui.views import PointsCache

    spec = StudySpec.model_validate(
        {
            "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
            "objectives": [{"name": "y", "goal": "minimize"}],
        }
    )
    cache = PointsCache(size=1)
    first = cache.of(1, spec, Columns([0], {"x": [0.5]}, {"y": [1.0]}, [None]))
    assert cache.of(1, spec, Columns([0], {"x": [0.5]}, {"y": [1.0]}, [None])) is first
    grown = cache.of(1, spec, Columns([0, 1], {"x": [0.5, 0.25]}, {"y": [1.0, 2.0]}, [None, None]))
    assert grown is not first and grown.count == 2
    assert cache.get((1, 1, 0)) is None  # the older set fell out (size 1)


@pytest.mark.parametrize("goal", ["minimize", "maximize"])
def test_the_edf_is_a_staircase_from_none_to_all_trials(goal: str) -> None:
    from service.domain.spec import StudySpec
    from service.store.browsing import Columns
    from service.ui import analysis, views

    spec = StudySpec.model_validate(
        {"params": [{"name": "x", "type": "float", "low": 0, "high": 1}], "objectives": [{"name": "y", "goal": goal}]}
    )
    points = views.Points.of_columns(
        spec, Columns([0, 1, 2], {"x": [0.1, 0.2, 0.3]}, {"y": [3.0, 1.0, 2.0]}, [None] * 3)
    )
    (plot,) = analysis.edf_view(spec, points, views.Scales(), "/t/")
    assert re.findall(r'<a href="/t/(\d)"><circle', plot.svg) == ["1", "2", "0"]  # by value
    found = re.search(r'<polyline points="([^"]+)"', plot.svg)
    assert found
    corners = [tuple(float(v) for v in pair.split(",")) for pair in found.group(1).split()]
    assert len(corners) == 6 and all(a[0] == b[0] for a, b in zip(corners[::2], corners[1::2], strict=True))
    heights = sorted({y for _, y in corners})
    assert len(heights) == 4  # 0, 1/3, 2/3 and all of the trials
    assert (corners[0][1] > corners[-1][1]) == (goal == "minimize")  # rises (SVG y grows downwards) or falls
