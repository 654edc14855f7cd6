"""Tokens: made here, shown once, and only their hashes are kept."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from service.core.namespaces import check_namespace
from service.domain.caller import DEFAULT_NAMESPACE, Role
from service.errors import InvalidArgument
from service.store import tokens as token_store
from service.store.db import Database
from service.store.tokens import TokenRecord

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


async def create_token(db: Database, *, namespace: str, role: Role, name: str) -> IssuedToken:
    check_namespace(namespace)
    secret = new_secret()
    async with db.transaction() as conn:
        record = await token_store.insert_token(
            conn,
            namespace=namespace,
            role=role,
            name=name,
            prefix=secret[:SHOWN_PREFIX_LENGTH],
            secret_hash=secret_hash(secret),
        )
    return IssuedToken(secret, record)


async def install_token(db: Database, secret: str, *, name: str = "from ASKTELL_ADMIN_TOKEN") -> bool:
    """Register a secret chosen by the operator as an admin token of the default namespace (first start).

    Idempotent: a secret already known is left as it is (also when it was revoked). True if it was added.
    """
    if len(secret) < 24:
        raise InvalidArgument.one("ASKTELL_ADMIN_TOKEN", "must be at least 24 characters")
    async with db.transaction() as conn:
        if await token_store.token_by_hash(conn, secret_hash(secret)) is not None:
            return False
        await token_store.insert_token(
            conn,
            namespace=DEFAULT_NAMESPACE,
            role=Role.ADMIN,
            name=name,
            prefix=secret[:SHOWN_PREFIX_LENGTH],
            secret_hash=secret_hash(secret),
        )
    return True


async def list_tokens(db: Database, namespace: str | None) -> list[TokenRecord]:
    async with db.transaction() as conn:
        return await token_store.list_tokens(conn, namespace)


async def revoke_token(db: Database, token_id: int) -> TokenRecord:
    async with db.transaction() as conn:
        return await token_store.revoke_token(conn, token_id)
