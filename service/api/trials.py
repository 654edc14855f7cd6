"""Routes for trials: ask, report, tell, add, list, best, hypervolume."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from service.api import pages
from service.api.responses import serialized
from service.api.schemas import (
    AddTrialRequest,
    AskRequest,
    AskResponse,
    BestResponse,
    DecisionOut,
    HypervolumeOut,
    ReportRequest,
    TellRequest,
    TrialOut,
    TrialPage,
)
from service.core import asking, trials
from service.core.asking import AskOutcome
from service.core.hypervolume import report as hypervolume_report
from service.domain.trial import TrialState
from service.web.deps import Scope, scope
from service.web.disconnect import unless_disconnected
from service.web.paths import RowId, TrialNumber

router = APIRouter(prefix="/v1/studies/{study}", tags=["trials"])
Access = Annotated[Scope, Depends(scope)]


@router.post(
    "/ask",
    response_model=AskResponse,
    responses={202: {"model": AskResponse, "description": "Some trials are still being computed"}},
)
async def ask(study: str, body: AskRequest, at: Access) -> Response:
    """Hand out `count` trials: the worker's own active ones, then enqueued ones, then new suggestions."""
    outcome = await asking.ask(
        at.db,
        at.owner,
        study,
        count=body.count,
        worker_id=body.worker_id,
        fresh=body.fresh,
        wait_seconds=body.wait_seconds,
        request_id=body.request_id,
    )
    return _ask_response(outcome)


def _ask_response(outcome: AskOutcome) -> Response:
    """200 with the trials, or 202 while some are still being computed."""
    code = status.HTTP_202_ACCEPTED if outcome.pending is not None else status.HTTP_200_OK
    return serialized(AskResponse.of(outcome), code)


@router.post(
    "/trials/{number}/tell",
    response_model=TrialOut,
    responses={409: {"description": "The trial was already told something else"}},
)
async def tell(study: str, number: TrialNumber, body: TellRequest, at: Access) -> Response:
    """Finish a trial. Repeating the same tell is harmless (200); a different second tell gets 409."""
    told = trials.Tell(state=TrialState(body.state), values=body.values, reason=body.reason, request_id=body.request_id)
    return serialized(TrialOut.of(await trials.tell(at.db, at.owner, study, number, told)))


@router.post("/trials/{number}/report", response_model=DecisionOut)
async def report(study: str, number: TrialNumber, body: ReportRequest, at: Access) -> Response:
    """Record an intermediate value; the answer says whether to continue, pause or stop training."""
    outcome = await trials.report(at.db, at.owner, study, number, body.step, body.values, checkpoint=body.checkpoint)
    decision = outcome.decision
    return serialized(DecisionOut(action=decision.action, reason=decision.reason, trial=TrialOut.of(outcome.trial)))


@router.post(
    "/trials/{number}/heartbeat",
    response_model=TrialOut,
    responses={409: {"description": "The trial is not active (finished, paused or waiting)"}},
)
async def heartbeat(study: str, number: TrialNumber, at: Access) -> Response:
    """The job evaluating this trial is alive; reports count as heartbeats too."""
    return serialized(TrialOut.of(await trials.heartbeat(at.db, at.owner, study, number)))


@router.get(
    "/jobs/{job_id}",
    response_model=AskResponse,
    responses={202: {"model": AskResponse, "description": "Still being computed"}},
)
async def get_job(
    study: str,
    job_id: RowId,
    at: Access,
    wait_seconds: Annotated[float, Query(ge=0, le=300)] = 0.0,
) -> Response:
    """Poll a pending ask (optionally waiting): its trials once a worker has computed them."""
    return _ask_response(await asking.get_study_job(at.db, at.owner, study, job_id, wait_seconds))


@router.post("/trials", response_model=TrialOut, status_code=status.HTTP_201_CREATED)
async def add_trial(study: str, body: AddTrialRequest, at: Access) -> Response:
    """Enqueue params for the next ask, or (with values) record a point evaluated elsewhere."""
    added = await trials.add_trial(at.db, at.owner, study, body.params, body.values)
    return serialized(TrialOut.of(added), status.HTTP_201_CREATED)


@router.get("/trials", response_model=TrialPage)
async def list_trials(
    study: str,
    at: Access,
    state: Annotated[list[TrialState] | None, Query(description="Only trials in these states.")] = None,
    worker_id: str | None = None,
    measurements: bool = Query(default=False, description="Include intermediate measurements."),
    page_size: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    page_token: str | None = None,
) -> Response:
    found = await trials.list_trials(
        at.db,
        at.owner,
        study,
        states=state or [],
        worker_id=worker_id,
        after_number=pages.decode(page_token, -1),
        limit=page_size + 1,
        with_measurements=measurements,
    )
    token = pages.encode(found[page_size - 1].number) if len(found) > page_size else None
    return serialized(TrialPage(trials=[TrialOut.of(t) for t in found[:page_size]], next_page_token=token))


@router.get("/trials/{number}", response_model=TrialOut)
async def get_trial(study: str, number: TrialNumber, at: Access) -> Response:
    return serialized(TrialOut.of(await trials.get_trial(at.db, at.owner, study, number)))


@router.get("/best", response_model=BestResponse)
async def best(study: str, at: Access) -> Response:
    return serialized(BestResponse(trials=[TrialOut.of(t) for t in await trials.best(at.db, at.owner, study)]))


@router.get("/hypervolume", response_model=HypervolumeOut)
async def hypervolume(study: str, request: Request, at: Access) -> HypervolumeOut:
    """The dominated hypervolume over time: one value per completed trial, against the study's reference point.

    Exact while that is cheap, else a quasi-Monte Carlo estimate (`approximate: true`)."""
    return HypervolumeOut.of(
        await unless_disconnected(request, lambda cancelled: hypervolume_report(at.db, at.owner, study, cancelled))
    )
