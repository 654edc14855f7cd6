"""Authentication: which caller a request's bearer token stands for.

Verifying a token costs one indexed lookup; API processes remember answers for a few seconds, so a revoked
token stops working everywhere within `cache_seconds` (at once on the replica that revoked it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from service.core.tokens import secret_hash
from service.domain.caller import ANONYMOUS, Caller
from service.errors import Unauthenticated
from service.store import tokens as token_store
from service.store.db import Database


@dataclass
class Authenticator:
    """Maps bearer tokens to callers, with a short per-process memory of both answers and the auth mode."""

    db: Database
    cache_seconds: float = 5.0
    _callers: dict[str, tuple[float, Caller | None]] = field(default_factory=dict)
    _enabled: tuple[float, bool] | None = None

    async def enabled(self) -> bool:
        now = time.monotonic()
        if self._enabled is not None and (self._enabled[1] or now - self._enabled[0] < self.cache_seconds):
            return self._enabled[1]  # once on, always on: tokens are never deleted
        async with self.db.transaction() as conn:
            on = await token_store.any_token(conn)
        self._enabled = (now, on)
        return on

    async def caller(self, authorization: str | None) -> Caller:
        """The caller a request's Authorization header names; anonymous admin while authentication is off."""
        token = _bearer(authorization)
        if not await self.enabled():
            return ANONYMOUS if token is None else await self._verify(token, allow_unknown=True)
        if token is None:
            raise Unauthenticated("this server needs a bearer token: send 'Authorization: Bearer <token>'")
        return await self._verify(token, allow_unknown=False)

    async def _verify(self, token: str, *, allow_unknown: bool) -> Caller:
        digest = secret_hash(token)
        now = time.monotonic()
        cached = self._callers.get(digest)
        if cached is None or now - cached[0] >= self.cache_seconds:
            async with self.db.transaction() as conn:
                record = await token_store.token_by_hash(conn, digest)
            found = (
                Caller(namespace=record.namespace, role=record.role, token_id=record.id)
                if record is not None and record.revoked_at is None
                else None
            )
            if len(self._callers) > 10_000:
                self._callers.clear()
            self._callers[digest] = cached = (now, found)
        if cached[1] is None:
            if allow_unknown:
                return ANONYMOUS
            raise Unauthenticated("the bearer token is unknown or revoked")
        return cached[1]

    def forget(self) -> None:
        self._callers.clear()
        self._enabled = None


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


async def auth_configured(db: Database, admin_token: str | None) -> bool:
    """Whether the server will demand tokens: some token exists, or one is given to install at start."""
    if admin_token:
        return True
    async with db.transaction() as conn:
        return await token_store.any_token(conn)
