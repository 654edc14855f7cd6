"""Routes that show the engine side: workers and per-study engine status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from service.api.schemas import EngineStatusOut, WorkerOut, WorkersResponse
from service.core import fleet
from service.store.db import Database
from service.web.deps import database, owner

router = APIRouter(prefix="/v1", tags=["workers"])
Db = Annotated[Database, Depends(database)]
Owner = Annotated[str, Depends(owner)]


@router.get("/workers", response_model=WorkersResponse)
async def list_workers(db: Db, _: Owner) -> WorkersResponse:
    """Engine workers: alive or recently stopped, their device, jobs done and last heartbeat."""
    views = await fleet.list_workers(db)
    return WorkersResponse(workers=[WorkerOut(alive=v.alive, **v.info.__dict__) for v in views])


@router.get("/studies/{study}/engine", response_model=EngineStatusOut)
async def engine_status(study: str, db: Db, who: Owner) -> EngineStatusOut:
    """How the study's engine is doing: last fit time, fallbacks, ready-pool size, jobs."""
    found = await fleet.study_engine_status(db, who, study)
    s = found.status
    return EngineStatusOut(
        engine=found.engine,
        computations=s.computations,
        fallbacks=s.fallbacks,
        last_seconds=s.last_seconds,
        last_rung=s.last_rung,
        last_error=s.last_error,
        updated_at=s.updated_at,
        pool_size=found.pool_size,
        jobs=found.jobs,
        likely_infeasible=bool(s.status.get("likely_infeasible")),
        infeasibility=s.status.get("infeasibility"),
        fallback=found.fallback,
    )
