"""Routes for studies: parse, call one core operation, shape the response."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from service.api import pages
from service.api.responses import serialized
from service.api.schemas import StudyCreate, StudyOut, StudyPage, StudyStateChange
from service.core import studies
from service.web.deps import Scope, scope

router = APIRouter(prefix="/v1/studies", tags=["studies"])
Access = Annotated[Scope, Depends(scope)]


@router.post(
    "",
    response_model=StudyOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": StudyOut, "description": "if_exists=get and an identical study exists"},
        409: {"description": "A study with this name exists (with another spec, for if_exists=get)"},
    },
)
async def create_study(body: StudyCreate, response: Response, at: Access) -> StudyOut:
    result = await studies.create_study(at.db, at.owner, body.name, body.spec(), if_exists=body.if_exists)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return StudyOut.of(result.study)


@router.get("", response_model=StudyPage)
async def list_studies(
    at: Access,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    page_token: str | None = None,
    summary: Annotated[
        bool, Query(description="Add each study's trial_counts and best_value (one more query per study with results).")
    ] = False,
) -> StudyPage:
    found = await studies.list_studies(at.db, at.owner, after_id=pages.decode(page_token, 0), limit=page_size + 1)
    token = pages.encode(found[page_size - 1].id) if len(found) > page_size else None
    shown = found[:page_size]
    if not summary:
        return StudyPage(studies=[StudyOut.of(s) for s in shown], next_page_token=token)
    summaries = await studies.summarize(at.db, shown)
    return StudyPage(studies=[StudyOut.of(s.study, s.counts, s.best) for s in summaries], next_page_token=token)


@router.get("/{study}", response_model=StudyOut)
async def get_study(study: str, at: Access) -> Response:
    record, counts = await studies.get_study(at.db, at.owner, study)
    return serialized(StudyOut.of(record, counts))


@router.delete("/{study}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_study(study: str, at: Access) -> Response:
    await studies.delete_study(at.db, at.owner, study)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/{study}/state", response_model=StudyOut)
async def set_study_state(study: str, body: StudyStateChange, at: Access) -> StudyOut:
    """Pause (asks get 409, tells still land), resume or complete a study."""
    return StudyOut.of(await studies.set_study_state(at.db, at.owner, study, body.state))
