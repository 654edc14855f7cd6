"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against PostgreSQL.

Studies of each kind are made through the SDK; each page is opened, its numbers are checked against the
REST API, and a screenshot of each lands in test-artifacts/dashboard/. Without /usr/bin/chromium the
tests skip, unless ASKTELL_REQUIRE_BROWSER=1 (as in CI), where they fail.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from asktell import Client, Study
from tests.support import REPO, RunningServer, ServerFactory, start_server, stop_server, wait_until

CHROMIUM = os.environ.get("ASKTELL_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = REPO / "test-artifacts" / "dashboard"

if not Path(CHROMIUM).exists():
    if os.environ.get("ASKTELL_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"the dashboard tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

SPACE = [
    {"name": "lr", "type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    {"name": "layers", "type": "int", "low": 1, "high": 6},
    {"name": "act", "type": "categorical", "choices": ["relu", "gelu"]},
]


@pytest.fixture(scope="module")
def pg(module_servers: ServerFactory) -> RunningServer:
    return module_servers()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    opened = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    opened.close()
    assert not errors, f"JavaScript errors: {errors}"


def loss(params: dict[str, Any], epoch: int = 3) -> float:
    return (
        (math.log10(params["lr"]) + 2) ** 2
        + 0.1 * params["layers"]
        + (0.3 if params["act"] == "relu" else 0)
        + 1 / epoch
    )


@pytest.fixture(scope="module")
def studies(pg: RunningServer) -> dict[str, Study]:
    """A single-objective study with a fidelity, a constraint and every finished state; two and three
    objective studies; all through the SDK."""
    client = Client(pg.url)
    single = client.create_study(
        "dash-single",
        SPACE,
        [{"name": "loss", "goal": "minimize"}],
        constraints=[{"name": "memory", "op": "<=", "bound": 5}],
        fidelity={"name": "epoch", "min": 1, "max": 3},
        engine="random",
        seed=1,
    )
    for trial in single.ask(120):
        for epoch in (1, 2, 3):
            trial.report(epoch, {"loss": loss(trial.params, epoch), "memory": float(trial.params["layers"])})
        if trial.number % 10 == 9:
            trial.tell(failed=True, reason="CUDA out of memory")
        elif trial.number % 10 == 8:
            trial.tell(stopped=True)
        else:
            trial.tell({"loss": loss(trial.params), "memory": float(trial.params["layers"])})
    single.ask(2)  # two still running
    two = client.create_study(
        "dash-pareto",
        SPACE,
        [{"name": "error", "goal": "minimize"}, {"name": "seconds", "goal": "minimize", "cost": True}],
        engine="random",
        seed=2,
    )
    three = client.create_study(
        "dash-three",
        SPACE,
        [{"name": "a", "goal": "minimize"}, {"name": "b", "goal": "maximize"}, {"name": "c", "goal": "minimize"}],
        engine="random",
        seed=3,
    )
    for trial in two.ask(30):
        trial.tell({"error": loss(trial.params), "seconds": 10.0 * trial.params["layers"]})
    for trial in three.ask(20):
        trial.tell({"a": trial.params["lr"], "b": float(trial.params["layers"]), "c": loss(trial.params)})
    return {"single": single, "two": two, "three": three}


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_studies_page_lists_counts_and_best_values(pg: RunningServer, page: Page, studies: dict[str, Study]) -> None:
    page.goto(f"{pg.url}/ui")
    single = studies["single"].refresh()
    row = page.locator("tr[data-study='dash-single']")
    expect(row).to_contain_text("random")
    for state, count in (single.trial_counts or {}).items():
        expect(row.locator(f"td.counts .badge.state-{state}")).to_have_text(f"{state} {count}")
    (best,) = single.best_trials()
    expect(row.locator("td.num")).to_have_text(f"{best.values['loss']:.6g}")  # type: ignore[index]
    shot(page, "studies")
    page.fill("input[name=q]", "pareto")
    page.click("form.search button")
    expect(page.locator("#studies tbody tr")).to_have_count(1)
    expect(page.locator("#studies-total")).to_contain_text("1 study")


def test_study_page_shows_the_spec_engine_and_every_plot(
    pg: RunningServer, page: Page, studies: dict[str, Study]
) -> None:
    study = studies["single"].refresh()
    page.goto(f"{pg.url}/ui/studies/dash-single")
    expect(page.locator("h1")).to_have_text("dash-single")
    (best,) = study.best_trials()
    expect(page.locator("#best")).to_have_text(f"{best.values['loss']:.6g}")  # type: ignore[index]
    for state, count in (study.trial_counts or {}).items():
        expect(page.locator(f"#counts [data-state={state}]")).to_have_attribute("data-count", str(count))
    for title in (
        "optimization history of loss",
        "parallel coordinates: parameters and loss",
        "loss by lr",
        "loss by layers",
        "loss by act",
    ):
        expect(page.locator(f"svg[aria-label='{title}']")).to_have_count(1)
    expect(page.locator("#learning-curves svg polyline")).to_have_count(120)  # every trial that reported
    # Plots fill their cards: the SVG is as wide as its figure, less the padding.
    sizes = page.evaluate("""() => [...document.querySelectorAll('figure > svg.plot')].map(
        (svg) => [svg.getBoundingClientRect().width, svg.parentElement.clientWidth])""")
    assert sizes and all(svg_width >= figure_width - 12 for svg_width, figure_width in sizes)
    page.click("a.scale[data-axis='value:loss']")
    expect(page.locator("svg[aria-label='optimization history of loss'] text.label").last).to_contain_text("log")
    expect(page.locator("a.scale[data-axis='value:loss']")).to_have_attribute("data-log", "1")
    shot(page, "study-single")


def test_trials_table_sorts_filters_and_pages_in_place(
    pg: RunningServer, page: Page, studies: dict[str, Study]
) -> None:
    study = studies["single"]
    trials = study.trials()
    page.goto(f"{pg.url}/ui/studies/dash-single")
    page.evaluate("window.notReloaded = true")
    expect(page.locator("#trials-total")).to_contain_text(f"{len(trials)} matching trials · page 1 of 3")

    page.click("#trials-table th a:text-is('loss')")
    completed = sorted(
        (t for t in trials if t.values and t.values.get("loss") is not None), key=lambda t: (t.values["loss"], t.number)
    )  # type: ignore[index]
    expect(page.locator("#trials-table tbody tr").first).to_have_attribute("data-number", str(completed[0].number))
    page.click("#trials-table th a:text-is('loss ▲')")
    expect(page.locator("#trials-table tbody tr").first).to_have_attribute("data-number", str(completed[-1].number))

    page.check("input[name=state][value=failed]")
    page.click("#filters button")
    failed = [t.number for t in trials if t.state == "failed"]
    expect(page.locator("#trials-total")).to_contain_text(f"{len(failed)} matching trials")
    expect(page.locator("#trials-table tbody tr")).to_have_count(len(failed))

    page.uncheck("input[name=state][value=failed]")
    page.select_option("select[name=range_field]", "param:layers")
    page.fill("input[name=range_min]", "2")
    page.fill("input[name=range_max]", "3")
    page.click("#filters button")
    in_range = [t for t in trials if 2 <= t.params["layers"] <= 3]
    expect(page.locator("#trials-total")).to_contain_text(f"{len(in_range)} matching trials")

    page.fill("input[name=range_min]", "")
    page.fill("input[name=range_max]", "")
    page.click("#filters button")
    # The table's links carry the filters of the table they sit in: wait for the unfiltered one before clicking
    # (a loaded machine answered late, and the header clicked was still the filtered table's).
    expect(page.locator("#trials-total")).to_contain_text(f"{len(trials)} matching trials")
    page.locator("#trials-table th a").first.click()  # back to trial order, then the second page
    page.click("nav.pager a[rel=next]")
    expect(page.locator("#trials-table tbody tr").first).to_have_attribute("data-number", "50")
    assert page.evaluate("window.notReloaded") is True  # all of it without a page load
    shot(page, "trials-table")


def test_pareto_pages_match_the_api(pg: RunningServer, page: Page, studies: dict[str, Study]) -> None:
    for key, plots in (("two", 1), ("three", 3)):
        study = studies[key]
        page.goto(f"{pg.url}/ui/studies/{study.name}")
        front = study.pareto_front()
        expect(page.locator("#front-size")).to_have_text(f"{len(front)} Pareto-optimal")
        expect(page.locator("figure.pareto")).to_have_count(plots)
        expect(page.locator("figure.pareto").first.locator("circle.front")).to_have_count(len(front))
        history = study.hypervolume_history()
        expect(page.locator("#hypervolume")).to_have_text(f"{history.hypervolume:.6g}")
        expect(page.locator("#hypervolume-plot svg")).to_have_count(1)
        shot(page, f"study-{key}-objectives")


def test_trial_page_shows_params_values_measurements_and_source(
    pg: RunningServer, page: Page, studies: dict[str, Study]
) -> None:
    trial = studies["single"].trial(3)
    page.goto(f"{pg.url}/ui/studies/dash-single")
    page.click("#trials-table a:text-is('3')")
    expect(page.locator("h1")).to_contain_text("Trial 3")
    for name, value in trial.params.items():
        expect(page.locator("#params")).to_contain_text(f"{name}")
        expect(page.locator("#params")).to_contain_text(str(value))
    expect(page.locator("#values")).to_contain_text(str(trial.values["loss"]))  # type: ignore[index]
    expect(page.locator("#measurements tbody tr")).to_have_count(3)
    expect(page.locator("#source")).to_have_text(trial.source)
    expect(page.locator("#trial-curve svg polyline")).to_have_count(2)  # loss and memory
    shot(page, "trial")


def test_a_running_study_refreshes_itself(pg: RunningServer, page: Page, studies: dict[str, Study]) -> None:
    study = studies["two"]
    page.goto(f"{pg.url}/ui/studies/{study.name}")
    before = int(page.locator("#counts [data-state=completed]").get_attribute("data-count") or 0)
    page.evaluate("window.notReloaded = true")
    (trial,) = study.ask()
    trial.tell({"error": 0.01, "seconds": 1.0})  # a new best on both: it joins the front
    expect(page.locator("#counts [data-state=completed]")).to_have_attribute(
        "data-count", str(before + 1), timeout=15_000
    )
    expect(page.locator("#trials-total")).to_contain_text(f"{before + 1} matching trials", timeout=15_000)
    assert page.evaluate("window.notReloaded") is True


def test_pages_answer_404_for_unknown_studies(pg: RunningServer) -> None:
    assert httpx.get(f"{pg.url}/ui/studies/nope").status_code == 404
    wait_until(lambda: httpx.get(f"{pg.url}/ui/static/app.js").status_code == 200, 5, "static files")


def test_signing_in_in_a_browser_passes_the_form_check(
    postgresql_factory: Callable[[], str], page: Page, tmp_path: Path
) -> None:
    """The sign-in form's token and its cookie work in a real browser, and the pages it opens keep working under
    their content security policy (an inline script or a foreign resource would fail here)."""
    admin = "at_dashboard-" + "0" * 24
    server = start_server(postgresql_factory(), tmp_path / "server.log", {"ASKTELL_ADMIN_TOKEN": admin})
    try:
        Client(server.url, token=admin).create_study(
            "signed-in", SPACE, [{"name": "loss", "goal": "minimize"}], engine="random"
        )
        violations: list[str] = []
        page.on(
            "console",
            lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
        )
        page.goto(f"{server.url}/ui")
        expect(page).to_have_url(f"{server.url}/ui/sign-in")
        page.fill("input[name=token]", admin)
        page.click("form button")
        expect(page.locator("tr[data-study='signed-in']")).to_have_count(1)
        page.goto(f"{server.url}/ui/studies/signed-in")
        expect(page.locator("#trials-total")).to_contain_text("0")
        assert not violations, violations
    finally:
        stop_server(server)


def test_points_name_their_trial_and_open_its_page(pg: RunningServer, page: Page, studies: dict[str, Study]) -> None:
    page.goto(f"{pg.url}/ui/studies/dash-pareto")
    point = page.locator("svg[aria-label='Pareto front: error vs seconds'] circle.front").first
    title = point.locator("title").text_content() or ""
    number = int(title.split(":")[0].removeprefix("trial "))
    point.hover()
    point.click()
    expect(page).to_have_url(f"{pg.url}/ui/studies/dash-pareto/trials/{number}")
    expect(page.locator("#pareto-optimal")).to_have_text("Pareto-optimal")
    shot(page, "trial-pareto-optimal")


def test_analysis_views_render_in_a_browser(pg: RunningServer, page: Page, studies: dict[str, Study]) -> None:
    """Importance, contour, EDF, timeline and compare: each page draws its chart, and a screenshot of each
    lands beside the others."""
    base = f"{pg.url}/ui/studies/dash-single"
    page.goto(base)
    page.click("nav.views a[data-view=importance]")
    expect(page.locator("svg[aria-label='parameter importance for loss'] rect.bar")).to_have_count(3)
    shot(page, "view-importance")
    page.click("nav.views a[data-view=contour]")
    # The first contour page loads the model stack (torch) into the server and fits a GP: give it time.
    expect(page.locator("#contour svg rect.cell").first).to_be_visible(timeout=60_000)
    page.select_option("select[name=x]", "layers")
    page.select_option("select[name=y]", "act")
    page.click("#contour-form button")
    expect(page.locator("svg[aria-label^='loss over layers and act']")).to_have_count(1, timeout=60_000)
    shot(page, "view-contour")
    page.click("nav.views a[data-view=edf]")
    expect(page.locator("svg[aria-label='empirical distribution of loss'] polyline")).to_have_count(1)
    shot(page, "view-edf")
    page.click("nav.views a[data-view=timeline]")
    expect(page.locator("#timeline svg rect.span")).to_have_count(len(studies["single"].trials()))
    shot(page, "view-timeline")
    page.goto(base)
    for number in (3, 4, 6):
        page.check(f"#trials-table input[name=trials][value='{number}']")
    page.click("#compare-form button")
    expect(page).to_have_url(f"{base}/compare?trials=3&trials=4&trials=6")
    expect(page.locator("#comparison thead th a")).to_have_count(3)
    expect(page.locator("#compare-curves svg polyline")).to_have_count(3)
    shot(page, "view-compare")
