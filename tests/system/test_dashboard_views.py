"""The dashboard's pages as HTML and SVG, without a browser, on both backends: every view renders, each mark
names and links its trial, axes switch between linear and log, and bad choices are 4xx naming the field.

(The same pages in Chromium, with screenshots, are in test_dashboard.py.)
"""

from __future__ import annotations

import math
import re
import secrets
from typing import Any

import httpx
import pytest

from asktell import Client, Study
from tests.support import RunningServer

SPACE = [
    {"name": "lr", "type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    {"name": "layers", "type": "int", "low": 1, "high": 6},
    {"name": "act", "type": "categorical", "choices": ["relu", "gelu"]},
]


def loss(params: dict[str, Any], epoch: int = 3) -> float:
    return (math.log10(params["lr"]) + 2) ** 2 + 0.1 * params["layers"] + 1 / epoch


@pytest.fixture(scope="module")
def made(server: RunningServer) -> dict[str, Study]:
    """A single-objective study with curves (one diverged), stopped trials and two workers; a two-objective
    study with a cost objective spanning four decades."""
    client = Client(server.url)
    tag = secrets.token_hex(4)
    single = client.create_study(
        f"views-single-{tag}",
        SPACE,
        [{"name": "loss", "goal": "minimize"}],
        fidelity={"name": "epoch", "min": 1, "max": 3},
        engine="random",
        seed=1,
    )
    trials = single.ask(6, worker_id="gpu-a") + single.ask(6, worker_id="gpu-b", fresh=True) + single.ask(12)
    for trial in trials:
        for epoch in (1, 2, 3):
            diverged = 1e6 if trial.number == 4 else 0.0
            trial.report(epoch, {"loss": loss(trial.params, epoch) + diverged})
        if trial.number % 6 == 5:
            trial.tell(stopped=True)
        else:
            trial.tell({"loss": loss(trial.params)})
    two = client.create_study(
        f"views-two-{tag}",
        SPACE,
        [{"name": "error", "goal": "minimize"}, {"name": "seconds", "goal": "minimize", "cost": True}],
        engine="random",
        seed=2,
    )
    for trial in two.ask(20):
        trial.tell({"error": loss(trial.params), "seconds": 10.0 ** trial.params["layers"]})
    return {"single": single, "two": two}


def page(api: httpx.Client, path: str, **params: Any) -> str:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.text


def svg(html: str, label_start: str) -> str:
    found = re.search(r'<svg class="plot"[^>]*aria-label="' + re.escape(label_start) + r".*?</svg>", html, re.S)
    assert found, f"no plot titled {label_start!r}"
    return found.group(0)


def test_study_page_marks_link_their_trials_and_plots_fit_their_cards(
    api: httpx.Client, made: dict[str, Study]
) -> None:
    study = made["single"]
    html = page(api, f"/ui/studies/{study.name}")
    history = svg(html, "optimization history of loss")
    assert "width=" not in history.split(">", 1)[0]  # a viewBox only: the card decides the size
    marks = re.findall(r'<a href="/ui/studies/[^"]+/trials/(\d+)"><circle[^>]*><title>trial (\d+)', history)
    assert marks and all(a == b for a, b in marks)
    stopped = [t.number for t in study.trials() if t.state == "stopped"]
    assert re.findall(r'class="point stopped"><title>trial (\d+) \(stopped\)', history) == [str(n) for n in stopped]
    for entry in ("completed", "stopped (value when stopped)", "best so far"):
        assert f">{entry}</text>" in history  # the legend
    values = re.findall(r"<title>trial \d+: loss ([0-9.e+-]+)</title>", history)
    assert values and all(len(v.replace(".", "").lstrip("0")) <= 4 for v in values)  # 4 significant digits
    assert 'class="pc"' in svg(html, "parallel coordinates") and ">worst</text>" in html
    for title in ("loss by lr", "loss by layers", "loss by act"):
        assert "<a href=" in svg(html, title)
    assert re.search(r'<input type="checkbox" name="trials" value="0" form="compare-form"', html)
    for view in ("importance", "contour", "edf", "timeline", "compare"):
        assert f'data-view="{view}"' in html


def test_learning_curves_keep_their_range_despite_a_diverged_run(api: httpx.Client, made: dict[str, Study]) -> None:
    curves = svg(page(api, f"/ui/studies/{made['single'].name}"), "learning curves")
    assert "clipped to the bulk of the curves" in curves
    ticks = [float(t) for t in re.findall(r'class="tick" text-anchor="end">([0-9.e+-]+)<', curves)]
    assert ticks and max(ticks) < 100  # the diverged run (1e6) did not set the scale
    assert re.search(r'<a href="[^"]+/trials/4"><polyline[^>]*><title>trial 4 \(completed\)', curves)


def test_cost_objectives_start_on_log_axes_and_every_axis_switches(api: httpx.Client, made: dict[str, Study]) -> None:
    study = made["two"]
    html = page(api, f"/ui/studies/{study.name}")
    assert 'data-axis="value:seconds" data-log="1"' in html  # cost, four decades: log by default
    assert 'data-axis="value:error" data-log="0"' in html
    front = svg(html, "Pareto front: error vs seconds")
    assert "seconds (log)" in front and "error (log)" not in front
    assert 'class="reference"' in front and 'class="dominated"' in front and ">reference point</text>" in front
    assert len(re.findall(r'class="front"', front)) == len(study.pareto_front())
    switched = page(api, f"/ui/studies/{study.name}", linear="value:seconds", log="value:error")
    front = svg(switched, "Pareto front: error vs seconds")
    assert "error (log)" in front and "seconds (log)" not in front
    history = svg(switched, "optimization history of error")
    assert "error (log scale)" in history
    share = re.search(r'id="hypervolume-share"[^>]*>([0-9.]+)% of the reference box', html)
    assert share and 0 < float(share.group(1)) <= 100


def test_pareto_optimal_trials_carry_a_badge(api: httpx.Client, made: dict[str, Study]) -> None:
    study = made["two"]
    front = {t.number for t in study.pareto_front()}
    for trial in study.trials()[:8]:
        html = page(api, f"/ui/studies/{study.name}/trials/{trial.number}")
        assert ('id="pareto-optimal"' in html) == (trial.number in front)


def test_importance_ranks_the_parameter_the_loss_depends_on_first(api: httpx.Client, made: dict[str, Study]) -> None:
    html = page(api, f"/ui/studies/{made['single'].name}/importance")
    bars = svg(html, "parameter importance for loss")
    names = re.findall(r'class="label" text-anchor="end">([a-z]+)</text>', bars)
    assert names[0] == "lr" and set(names) == {"lr", "layers", "act"}
    assert re.search(r"from \d+ completed trials", html)


def test_contour_bins_two_parameters_and_names_a_bad_choice(api: httpx.Client, made: dict[str, Study]) -> None:
    name = made["single"].name
    html = page(api, f"/ui/studies/{name}/contour", x="lr", y="act", surface="binned")
    contour = svg(html, "loss over lr and act")
    cells = re.findall(
        r'class="cell"><title>lr [^,]+, act (relu|gelu): mean loss [0-9.e+-]+ over (\d+) trials', contour
    )
    completed = [t for t in made["single"].trials() if t.state == "completed"]
    assert cells and sum(int(n) for _, n in cells) == len(completed)
    assert "lr (log)" in contour and re.search(r'<a href="[^"]+/trials/\d+"><circle', contour)
    for params, field in (
        ({"x": "nope", "y": "lr"}, "x"),
        ({"x": "lr", "y": "lr"}, "y"),
        ({"x": "lr", "y": "act", "objective": "nope"}, "objective"),
    ):
        response = api.get(f"/ui/studies/{name}/contour", params=params)
        assert response.status_code == 422 and response.json()["error"]["details"][0]["field"] == field


def test_contour_draws_a_gp_posterior_mean_by_default(api: httpx.Client, made: dict[str, Study]) -> None:
    """Every cell filled with the model's prediction, the other parameters at the best trial's values; the
    predicted minimum sits in the decade where the error is lowest (lr near 1e-2), far from the box's edges."""
    study = made["two"]
    html = page(api, f"/ui/studies/{study.name}/contour", x="lr", y="layers", objective="error")
    contour = svg(html, "error over lr and layers: GP posterior mean")
    cells = re.findall(
        r'class="cell"><title>lr ([0-9.e+-]+)…([0-9.e+-]+), layers [^:]+: predicted error '
        r"([0-9.e+-]+) \((\d+) trials in the cell\)",
        contour,
    )
    assert len(cells) >= 24 * 5, "every cell of the grid has a prediction"
    assert sum(int(c[3]) for c in cells) == 20
    low, high, _, _ = min(cells, key=lambda c: float(c[2]))
    assert 1e-3 <= math.sqrt(float(low) * float(high)) <= 1e-1
    best = min((t for t in study.trials() if t.state == "completed"), key=lambda t: t.values["error"])
    assert f'/trials/{best.number}">trial {best.number}</a>' in html
    assert "binned" in page(api, f"/ui/studies/{study.name}/contour", x="lr", y="layers", surface="binned")
    response = api.get(f"/ui/studies/{study.name}/contour", params={"surface": "nope"})
    assert response.status_code == 422 and response.json()["error"]["details"][0]["field"].endswith("surface")


def test_a_study_with_one_parameter_says_why_it_has_no_contour(api: httpx.Client, server: RunningServer) -> None:
    study = Client(server.url).create_study(
        f"views-one-{secrets.token_hex(4)}", SPACE[:1], [{"name": "loss", "goal": "minimize"}], engine="random"
    )
    html = page(api, f"/ui/studies/{study.name}/contour")
    assert "needs a study with two parameters or more" in html


def test_edf_rises_from_the_best_value_to_all_trials(api: httpx.Client, made: dict[str, Study]) -> None:
    html = page(api, f"/ui/studies/{made['two'].name}/edf")
    for metric in ("error", "seconds"):
        edf = svg(html, f"empirical distribution of {metric}")
        assert f"{metric}: share of 20 feasible completed trials" in edf
    assert "seconds (log)" not in html or 'data-axis="value:seconds" data-log="1"' in html


def test_timeline_has_a_row_per_worker(api: httpx.Client, made: dict[str, Study]) -> None:
    html = page(api, f"/ui/studies/{made['single'].name}/timeline")
    timeline = svg(html, "trials per worker over time")
    for worker in ("gpu-a", "gpu-b", "(no worker id)"):
        assert f">{worker}</text>" in timeline
    bars = re.findall(r'<a href="[^"]+/trials/(\d+)"><rect[^>]*class="span"><title>trial \d+ \((\w+)', timeline)
    assert len(bars) == 24 and {state for _, state in bars} == {"completed", "stopped"}
    assert "24 trials" in html and "3 workers" in html


def test_compare_puts_trials_side_by_side(api: httpx.Client, made: dict[str, Study]) -> None:
    name = made["single"].name
    html = page(api, f"/ui/studies/{name}/compare", trials="1, 2,3")
    assert re.findall(r'<th><a href="[^"]+/trials/(\d+)">trial', html) == ["1", "2", "3"]
    assert 'data-name="lr"' in html and 'class="parameter differs"' in html
    assert "loss by epoch of the compared trials" in html
    started = re.search(r'data-name="started">.*?</tr>', html, re.S)
    assert started and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", started.group(0))
    assert not re.search(r":\d\d\.\d{3,6}", started.group(0))  # to the second: no microseconds
    assert 'data-name="worker"' in html
    missing = page(api, f"/ui/studies/{name}/compare", trials="1,999")
    assert 'id="missing"' in missing and "999" in missing
    for bad in ("x", ",".join(str(n) for n in range(13))):
        response = api.get(f"/ui/studies/{name}/compare", params={"trials": bad})
        assert response.status_code == 422 and response.json()["error"]["details"][0]["field"] == "trials"


def test_columns_read_in_the_database_match_the_trials(server: RunningServer) -> None:
    """The dashboard's read of completed trials as columns (arrays aggregated in PostgreSQL, rows on SQLite)
    gives each trial's own numbers, categorical choices of every JSON type included, and the finishing order."""
    import asyncio

    import numpy as np

    from service.core import browsing, hypervolume
    from service.store.db import Database
    from service.ui.views import Points

    choices = [1, "two", True, 0.5]
    space = [*SPACE[:2], {"name": "kind", "type": "categorical", "choices": choices}]
    objectives = [{"name": "loss", "goal": "minimize"}, {"name": "cost", "goal": "maximize"}]
    study = Client(server.url).create_study(
        f"views-columns-{secrets.token_hex(4)}",
        space,
        objectives,
        constraints=[{"name": "memory", "op": "<=", "bound": 3}],
        engine="random",
    )
    asked = study.ask(24)
    for trial in reversed(asked):  # finishing order differs from number order
        if trial.number % 7 == 6:
            trial.tell(failed=True)
        else:
            trial.tell(
                {"loss": loss(trial.params), "cost": float(trial.number), "memory": float(trial.params["layers"])}
            )

    async def read() -> tuple[Points, list[int]]:
        db = Database(server.database_url)
        try:
            record, _ = await browsing.completed_version(db, "default", study.name)
            columns = await browsing.completed_columns(db, record)
            return Points.of_columns(record.spec, columns), [t.number for t in hypervolume.in_finishing_order(columns)]
        finally:
            await db.dispose()

    points, finishing = asyncio.run(read())
    completed = sorted((t for t in study.trials() if t.state == "completed"), key=lambda t: t.number)
    assert points.numbers.tolist() == [t.number for t in completed]
    assert finishing == [t.number for t in reversed(completed)]
    expected = np.array([[t.values["loss"], t.values["cost"]] for t in completed])  # type: ignore[index]
    assert np.array_equal(points.objectives, expected)
    assert points.feasible.tolist() == [t.params["layers"] <= 3 for t in completed]
    assert points.params["lr"].tolist() == [t.params["lr"] for t in completed]
    assert points.params["kind"].tolist() == [
        float(choices.index(t.params["kind"])) if t.params["kind"] is not True else 2.0 for t in completed
    ]
