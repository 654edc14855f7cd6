"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from service.store.db import Database
from service.web.deps import database

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(db: Annotated[Database, Depends(database)]) -> JSONResponse:
    """The process can reach its database."""
    try:
        await db.ping()
    except Exception as error:
        return JSONResponse({"status": "unavailable", "reason": type(error).__name__}, status_code=503)
    return JSONResponse({"status": "ok"})
