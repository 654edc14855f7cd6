"""Request-scoped dependencies: the database and the caller's namespace."""

from __future__ import annotations

from fastapi import Request

from service.store.db import Database

DEFAULT_OWNER = "default"


async def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def owner() -> str:
    """The namespace studies live in; every caller shares one until authentication assigns owners."""
    return DEFAULT_OWNER
