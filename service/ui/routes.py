"""The dashboard at /ui: server-rendered pages over the same core operations as the REST API.

Pages carry their data as HTML and inline SVG; `app.js` refreshes a running study's page in place and
pages the trials table without reloads. Requests with the `X-Asktell-Fragment` header get just the part
of the page that changes.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from service.core import browsing, fleet, hypervolume
from service.domain.hypervolume import HypervolumeHistory, oriented_reference
from service.domain.trial import TrialState, timings
from service.errors import AsktellError
from service.store.db import Database
from service.store.records import StudyRecord
from service.ui import analysis, plots, views
from service.ui.table import TableParams, table_view
from service.web.deps import TOKEN_COOKIE, authenticator, database, owner
from service.web.disconnect import unless_disconnected
from service.web.paths import TrialNumber

ROOT = "/ui"
STATIC = f"{ROOT}/static"
STUDIES_PER_PAGE = 50
MAX_STUDIES_PAGE = 1_000_000
HERE = Path(__file__).parent

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["when"] = analysis.when  # timestamps to the second
static_files = StaticFiles(directory=HERE / "static")
router = APIRouter(prefix=ROOT, include_in_schema=False)
Db = Annotated[Database, Depends(database)]
Owner = Annotated[str, Depends(owner)]


def _fragment(request: Request) -> bool:
    return request.headers.get("X-Asktell-Fragment") == "1"


# Pages load only their own script and style sheet (plots are inline SVG), and no other site may frame them.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
FORM_COOKIE = "asktell_sign_in"  # the sign-in form's token, also in the form: another site's form cannot match it
FORM_FROM_ELSEWHERE = "this sign-in came from another site, or from a form that has expired: sign in on this page"


def _render(request: Request, template: str, context: dict[str, Any], started: float) -> HTMLResponse:
    response = templates.TemplateResponse(request, template, {"root": ROOT, "static": STATIC, **context})
    response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(SECURITY_HEADERS)
    return response


def _study_url(name: str) -> str:
    return f"{ROOT}/studies/{quote(name, safe='')}"


@router.get("", response_class=HTMLResponse)
async def studies(request: Request, db: Db, who: Owner, q: str = "", page: int = 1) -> HTMLResponse:
    started = time.perf_counter()
    page = min(max(page, 1), MAX_STUDIES_PAGE)  # an absurd page number is the last possible page, not an error
    summaries, total = await browsing.studies_page(
        db, who, search=q.strip(), offset=(page - 1) * STUDIES_PER_PAGE, limit=STUDIES_PER_PAGE
    )

    def page_url(number: int) -> str:
        return f"{ROOT}?{urlencode({'q': q, 'page': number})}"

    context = {
        "summaries": summaries,
        "total": total,
        "search": q.strip(),
        "live_url": page_url(page),
        "prev_url": page_url(page - 1) if page > 1 else None,
        "next_url": page_url(page + 1) if page * STUDIES_PER_PAGE < total else None,
    }
    return _render(request, "studies_table.html" if _fragment(request) else "studies.html", context, started)


def _sign_in_form(request: Request, problem: str | None, status_code: int = 200) -> HTMLResponse:
    """The sign-in page, with a fresh form token in the form and in a cookie only this site's pages send back."""
    form_token = secrets.token_urlsafe(16)
    response = _render(request, "sign_in.html", {"problem": problem, "form_token": form_token}, time.perf_counter())
    response.status_code = status_code
    response.set_cookie(
        FORM_COOKIE,
        form_token,
        httponly=True,
        samesite="strict",
        path=f"{ROOT}/sign-in",
        secure=request.url.scheme == "https",
    )
    return response


def _from_this_site(request: Request, form: dict[str, list[str]]) -> bool:
    """A sign-in posted by this site's own form (login CSRF: another site's form would sign the visitor in to the
    attacker's token). Its SameSite=Strict cookie must match the form's token; browsers also say where a post
    comes from."""
    sent = (form.get("form_token") or [""])[0]
    expected = request.cookies.get(FORM_COOKIE, "")
    return (
        request.headers.get("Sec-Fetch-Site") != "cross-site"
        and bool(expected)
        and secrets.compare_digest(sent.encode(), expected.encode())
    )


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request) -> HTMLResponse:
    return _sign_in_form(request, None)


@router.post("/sign-in", response_class=HTMLResponse, response_model=None)
async def sign_in(request: Request) -> HTMLResponse | RedirectResponse:
    """Check the pasted token and keep it in an HttpOnly cookie, which the dashboard's (read-only) pages accept."""
    form = parse_qs((await request.body()).decode(errors="replace"))
    if not _from_this_site(request, form):
        return _sign_in_form(request, FORM_FROM_ELSEWHERE, status_code=403)
    token = (form.get("token") or [""])[0].strip()
    try:
        await authenticator(request).caller(f"Bearer {token}")
    except AsktellError as error:
        return _sign_in_form(request, error.message, status_code=401)
    redirect = RedirectResponse(ROOT, status_code=303)
    redirect.set_cookie(
        TOKEN_COOKIE, token, httponly=True, samesite="strict", path=ROOT, secure=request.url.scheme == "https"
    )
    redirect.delete_cookie(FORM_COOKIE, path=f"{ROOT}/sign-in")
    return redirect


@router.get("/", include_in_schema=False)
async def studies_slash() -> RedirectResponse:
    return RedirectResponse(ROOT)


async def _table(db: Database, who: str, name: str, request: Request) -> dict[str, Any]:
    params = TableParams.parse(request.query_params)
    study, trials, total = await browsing.trials_table(db, who, name, params.query())
    url = _study_url(study.name)
    return {"table": table_view(study, trials, total, params, url, f"{url}/table"), "study_url": url}


def _trial_link(name: str) -> str:
    """The URL of a trial's page less its number: plots append each mark's number to it."""
    return f"{_study_url(name)}/trials/"


Axes = Annotated[list[str], Query(max_length=200, description="Axes (value:NAME or param:NAME) shown on a log scale.")]
LinearAxes = Annotated[list[str], Query(max_length=200, description="Axes shown on a linear scale.")]


def _study_plots(
    overview: browsing.StudyOverview, scales: views.Scales, history: HypervolumeHistory | None, url: str
) -> dict[str, Any]:
    """Every plot of the study page: numpy and string work, run off the event loop."""
    spec = overview.study.spec
    link = _trial_link(overview.study.name)
    points = views.points_cache.of(overview.study.id, spec, overview.completed)
    shown: dict[str, Any] = {
        "best_text": views.best_value_text(spec, points),
        "history": views.history_plots(spec, points, scales, link, overview.stopped),
        "parallel": views.parallel_plot(spec, points, scales, link),
        "slices": views.slice_plots(spec, points, scales, link),
        "scales": views.scale_switches(spec, points, scales, url),
        "completed_count": points.count,
        "max_points": plots.MAX_POINTS,
        "max_card_points": plots.MAX_CARD_POINTS,
        "max_lines": plots.MAX_LINES,
        "pareto": None,
        "curves": views.learning_curve_plot(overview, points, scales, link) if spec.fidelity else None,
    }
    if history is not None:
        reference = oriented_reference(spec, history.reference)
        shown["pareto"], shown["front_size"] = views.pareto_plots(spec, points, scales, link, reference)
        shown["hypervolume_plot"], shown["reference"], shown["hypervolume"] = views.hypervolume_plot(spec, history)
        shown["box_share"] = views.reference_box_share(spec, points, history)
    return shown


@router.get("/studies/{name}", response_class=HTMLResponse)
async def study(
    request: Request,
    name: str,
    db: Db,
    who: Owner,
    log: Axes = [],  # noqa: B006 (FastAPI copies)
    linear: LinearAxes = [],  # noqa: B006
) -> HTMLResponse:
    started = time.perf_counter()
    overview = await browsing.study_overview(db, who, name)
    url = _study_url(overview.study.name)
    scales = views.Scales.parse(log, linear)
    workers = [w for w in await fleet.list_workers(db) if w.alive]
    query = scales.query()
    context: dict[str, Any] = {
        "workers": workers,
        "study": overview.study,
        "counts": overview.counts,
        "engine": overview.engine,
        "pool_size": overview.pool_size,
        "likely_infeasible": bool(overview.engine.status.get("likely_infeasible")),
        "study_url": url,
        "view": "overview",
        "live_url": f"{url}?{query}" if query else url,
        "now": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "all_states": [s.value for s in TrialState],
    }
    history = None
    if len(overview.study.spec.objectives) > 1:
        completed = hypervolume.in_finishing_order(overview.completed)
        history = await unless_disconnected(
            request, lambda cancelled: hypervolume.history(overview.study, completed, cancelled)
        )
    context.update(await run_in_threadpool(_study_plots, overview, scales, history, url))
    if _fragment(request):
        return _render(request, "study_live.html", context, started)
    context.update(await _table(db, who, name, request))
    return _render(request, "study.html", context, started)


async def _points(db: Database, who: str, name: str) -> tuple[StudyRecord, views.Points]:
    """A study's completed trials as arrays; read and parsed only when a trial completed since the last time."""
    study, (count, largest) = await browsing.completed_version(db, who, name)
    found = views.points_cache.get((study.id, count, largest))
    if found is None:
        columns = await browsing.completed_columns(db, study)
        found = await run_in_threadpool(views.points_cache.of, study.id, study.spec, columns)
    return study, found


@router.get("/studies/{name}/importance", response_class=HTMLResponse)
async def importance(request: Request, name: str, db: Db, who: Owner) -> HTMLResponse:
    started = time.perf_counter()
    study, points = await _points(db, who, name)
    found = await run_in_threadpool(analysis.importance_view, study.spec, points)
    return _render(
        request,
        "importance.html",
        {"study": study, "study_url": _study_url(study.name), "view": "importance", "found": found},
        started,
    )


@router.get("/studies/{name}/contour", response_class=HTMLResponse)
async def contour(
    request: Request,
    name: str,
    db: Db,
    who: Owner,
    x: str = "",
    y: str = "",
    objective: str = "",
    surface: Literal["model", "binned"] = "model",
    log: Axes = [],  # noqa: B006
    linear: LinearAxes = [],  # noqa: B006
) -> HTMLResponse:
    started = time.perf_counter()
    study, points = await _points(db, who, name)
    spec = study.spec
    url = f"{_study_url(study.name)}/contour"
    scales = views.Scales.parse(log, linear)

    def compute() -> dict[str, Any]:
        if len(spec.params) < 2:
            title = "contour plot"
            message = "a contour plot needs a study with two parameters or more"
            return {
                "plot": views.Plot(title, plots.empty(title, message)),
                "x": "",
                "y": "",
                "objective": spec.objectives[0].name,
                "count": points.count,
                "scales": [],
                "scale_query": "",
                "surface": "binned",
                "anchor": None,
                "reason": "",
            }
        chosen_x, chosen_y = x, y
        if not chosen_x or not chosen_y:
            first, second = analysis.default_pair(spec, points)
            chosen_x = chosen_x or (first if first != chosen_y else second)
            chosen_y = chosen_y or (second if second != chosen_x else first)
        metric = objective or spec.objectives[0].name
        found = analysis.contour_view(
            spec, points, scales, chosen_x, chosen_y, metric, _trial_link(study.name), model=surface == "model"
        )
        extra = {"x": chosen_x, "y": chosen_y, "objective": metric}
        return {
            "plot": found.plot,
            "surface": found.surface,
            "anchor": found.anchor,
            "reason": found.reason,
            "x": chosen_x,
            "y": chosen_y,
            "objective": metric,
            "count": points.count,
            "scales": [
                s
                for s in views.scale_switches(spec, points, scales, url, **extra)
                if s.key in (f"param:{chosen_x}", f"param:{chosen_y}")
            ],
            "scale_query": scales.query(),
        }

    context = await run_in_threadpool(compute)
    context.update(
        {
            "study": study,
            "study_url": _study_url(study.name),
            "view": "contour",
            "bins": analysis.CONTOUR_BINS,
            "log_keys": sorted(scales.log),
            "linear_keys": sorted(scales.linear),
        }
    )
    return _render(request, "contour.html", context, started)


@router.get("/studies/{name}/edf", response_class=HTMLResponse)
async def edf(
    request: Request,
    name: str,
    db: Db,
    who: Owner,
    log: Axes = [],  # noqa: B006
    linear: LinearAxes = [],  # noqa: B006
) -> HTMLResponse:
    started = time.perf_counter()
    study, points = await _points(db, who, name)
    url = f"{_study_url(study.name)}/edf"
    scales = views.Scales.parse(log, linear)

    def compute() -> dict[str, Any]:
        switches = [s for s in views.scale_switches(study.spec, points, scales, url) if s.key.startswith("value:")]
        shown = analysis.edf_view(study.spec, points, scales, _trial_link(study.name))
        return {"plots": shown, "scales": switches, "count": points.count}

    context = await run_in_threadpool(compute)
    context.update({"study": study, "study_url": _study_url(study.name), "view": "edf", "steps": analysis.EDF_STEPS})
    return _render(request, "edf.html", context, started)


@router.get("/studies/{name}/timeline", response_class=HTMLResponse)
async def timeline(request: Request, name: str, db: Db, who: Owner) -> HTMLResponse:
    started = time.perf_counter()
    study, rows, total = await browsing.timeline(db, who, name)
    plot, workers = await run_in_threadpool(analysis.timeline_view, rows, _trial_link(study.name))
    return _render(
        request,
        "timeline.html",
        {
            "study": study,
            "study_url": _study_url(study.name),
            "view": "timeline",
            "plot": plot,
            "shown": len(rows),
            "total": total,
            "workers": workers,
            "rows_cap": analysis.TIMELINE_WORKERS,
        },
        started,
    )


@router.get("/studies/{name}/compare", response_class=HTMLResponse)
async def compare(
    request: Request,
    name: str,
    db: Db,
    who: Owner,
    trials: Annotated[list[str], Query(max_length=100)] = [],  # noqa: B006
) -> HTMLResponse:
    started = time.perf_counter()
    numbers = analysis.parse_numbers(trials)
    study, found = await browsing.compared(db, who, name, numbers)
    missing = [n for n in numbers if n not in {t.number for t in found}]
    result = analysis.comparison(study.spec, found, _trial_link(study.name))
    return _render(
        request,
        "compare.html",
        {
            "study": study,
            "study_url": _study_url(study.name),
            "view": "compare",
            "comparison": result,
            "missing": missing,
            "asked": ",".join(str(n) for n in numbers),
            "limit": browsing.COMPARED,
        },
        started,
    )


@router.get("/studies/{name}/table", response_class=HTMLResponse)
async def trials_table(request: Request, name: str, db: Db, who: Owner) -> HTMLResponse:
    started = time.perf_counter()
    return _render(request, "trials_table.html", await _table(db, who, name, request), started)


@router.get("/studies/{name}/trials/{number}", response_class=HTMLResponse)
async def trial(request: Request, name: str, number: TrialNumber, db: Db, who: Owner) -> HTMLResponse:
    started = time.perf_counter()
    study, found, events = await browsing.trial_detail(db, who, name, number)
    metrics = sorted({k for m in found.measurements or () for k in m.values})
    series = [
        (metric, color, [(m.step, m.values[metric]) for m in found.measurements or () if metric in m.values])
        for metric, color in zip(metrics, ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed"] * 10, strict=False)
    ]
    curve = views.Plot(
        "measurements",
        plots.lines(
            series,
            x_label=study.spec.fidelity.name if study.spec.fidelity else "step",
            y_label="value",
            title="measurements",
        ),
    )
    spent = timings(found.started_at, found.finished_at, found.resume_from, events, datetime.now(UTC))
    context = {
        "study": study,
        "trial": found,
        "study_url": _study_url(study.name),
        "metrics": metrics,
        "curve": curve,
        "events": events,
        "timings": views.timings_text(spent),
        "pareto_optimal": await browsing.is_pareto_optimal(db, study, found),
    }
    return _render(request, "trial.html", context, started)
