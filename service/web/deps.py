"""Request-scoped dependencies of the REST API and the dashboard: the database, and who is calling.

Both read what the application set up at start (`app.state`); neither layer owns them.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from service.core.authentication import Authenticator
from service.domain.caller import Caller, Role
from service.errors import PermissionDenied
from service.store.db import Database

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOKEN_COOKIE = "asktell_token"  # the dashboard's copy of the token, set by its sign-in form


async def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def authenticator(request: Request) -> Authenticator:
    found: Authenticator = request.app.state.auth
    return found


async def caller(request: Request) -> Caller:
    header = request.headers.get("Authorization")
    if header is None and request.method in READ_METHODS and TOKEN_COOKIE in request.cookies:
        header = f"Bearer {request.cookies[TOKEN_COOKIE]}"  # the dashboard only reads
    return await authenticator(request).caller(header)


async def owner(request: Request) -> str:
    """The caller's namespace, which scopes every study lookup; reading needs a reader, anything else a writer."""
    found = await caller(request)
    needed = Role.READER if request.method in READ_METHODS else Role.WRITER
    if not found.role.allows(needed):
        raise PermissionDenied(f"a {found.role} token may not {request.method} {request.url.path}")
    return found.namespace


@dataclass(frozen=True)
class Scope:
    """What an API route needs of every request: the database, and the namespace the caller may act in."""

    db: Database
    owner: str


async def scope(request: Request) -> Scope:
    """One dependency for both (each FastAPI dependency costs its own parameter resolution per request)."""
    return Scope(request.app.state.db, await owner(request))


async def admin(request: Request) -> Caller:
    found = await caller(request)
    if not found.role.allows(Role.ADMIN):
        raise PermissionDenied("managing namespaces and tokens needs an admin token")
    return found
