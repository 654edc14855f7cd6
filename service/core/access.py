"""Authentication and namespaces: tokens are made here, shown once, and only their hashes are kept.

Verifying a token costs one indexed lookup; API processes remember answers for a few seconds, so a revoked
token stops working everywhere within `cache_seconds` (at once on the replica that revoked it).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field

from service.domain.access import ANONYMOUS, DEFAULT_NAMESPACE, Caller, Role, namespace_problem
from service.errors import Conflict, InvalidArgument, Unauthenticated
from service.store import access as access_store
from service.store.access import NamespaceRecord, TokenRecord
from service.store.db import Database

TOKEN_PREFIX = "at_"
SHOWN_PREFIX_LENGTH = 10  # "at_" and 7 characters of the secret: enough to tell tokens apart in a listing


def secret_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class IssuedToken:
    """A token just created: the only moment its secret is known."""

    secret: str
    record: TokenRecord


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
            on = await access_store.any_token(conn)
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
                record = await access_store.token_by_hash(conn, digest)
            found = (Caller(namespace=record.namespace, role=record.role, token_id=record.id)
                     if record is not None and record.revoked_at is None else None)
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


def _check_namespace(name: str, field_name: str = "namespace") -> None:
    problem = namespace_problem(name)
    if problem:
        raise InvalidArgument.one(field_name, problem)


async def create_token(db: Database, *, namespace: str, role: Role, name: str) -> IssuedToken:
    _check_namespace(namespace)
    secret = new_secret()
    async with db.transaction() as conn:
        record = await access_store.insert_token(conn, namespace=namespace, role=role, name=name,
                                                 prefix=secret[:SHOWN_PREFIX_LENGTH], secret_hash=secret_hash(secret))
    return IssuedToken(secret, record)


async def install_token(db: Database, secret: str, *, name: str = "from ASKTELL_ADMIN_TOKEN") -> bool:
    """Register a secret chosen by the operator as an admin token of the default namespace (first start).

    Idempotent: a secret already known is left as it is (also when it was revoked). True if it was added.
    """
    if len(secret) < 24:
        raise InvalidArgument.one("ASKTELL_ADMIN_TOKEN", "must be at least 24 characters")
    async with db.transaction() as conn:
        if await access_store.token_by_hash(conn, secret_hash(secret)) is not None:
            return False
        await access_store.insert_token(conn, namespace=DEFAULT_NAMESPACE, role=Role.ADMIN, name=name,
                                        prefix=secret[:SHOWN_PREFIX_LENGTH], secret_hash=secret_hash(secret))
    return True


async def list_tokens(db: Database, namespace: str | None) -> list[TokenRecord]:
    async with db.transaction() as conn:
        return await access_store.list_tokens(conn, namespace)


async def revoke_token(db: Database, token_id: int) -> TokenRecord:
    async with db.transaction() as conn:
        return await access_store.revoke_token(conn, token_id)


async def create_namespace(db: Database, name: str) -> NamespaceRecord:
    _check_namespace(name, "name")
    async with db.transaction() as conn:
        return await access_store.insert_namespace(conn, name)


async def list_namespaces(db: Database) -> list[NamespaceRecord]:
    async with db.transaction() as conn:
        return await access_store.list_namespaces(conn)


async def delete_namespace(db: Database, name: str) -> None:
    if name == DEFAULT_NAMESPACE:
        raise Conflict(f"namespace {DEFAULT_NAMESPACE!r} cannot be deleted")
    async with db.transaction() as conn:
        await access_store.delete_namespace(conn, name)


async def auth_configured(db: Database, admin_token: str | None) -> bool:
    """Whether the server will demand tokens: some token exists, or one is given to install at start."""
    if admin_token:
        return True
    async with db.transaction() as conn:
        return await access_store.any_token(conn)
