"""SQL for tokens: only a secret's hash and its first characters are stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.caller import Role
from service.errors import NotFound
from service.store.models import TokenRow, utcnow
from service.store.namespaces import get_namespace


@dataclass(frozen=True)
class TokenRecord:
    id: int
    namespace: str
    role: Role
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


_TOKEN_COLUMNS = (
    TokenRow.id,
    TokenRow.namespace,
    TokenRow.role,
    TokenRow.name,
    TokenRow.prefix,
    TokenRow.created_at,
    TokenRow.revoked_at,
)


def _token(row: Any) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        namespace=row.namespace,
        role=Role(row.role),
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


async def any_token(conn: AsyncConnection) -> bool:
    """Whether authentication is on: it is from the first token ever created, revoked or not."""
    return bool((await conn.execute(select(exists().select_from(TokenRow)))).scalar())


async def token_by_hash(conn: AsyncConnection, secret_hash: str) -> TokenRecord | None:
    row = (await conn.execute(select(*_TOKEN_COLUMNS).where(TokenRow.secret_hash == secret_hash))).first()
    return _token(row) if row is not None else None


async def insert_token(
    conn: AsyncConnection, *, namespace: str, role: Role, name: str, prefix: str, secret_hash: str
) -> TokenRecord:
    await get_namespace(conn, namespace)
    row = (
        await conn.execute(
            insert(TokenRow)
            .values(
                namespace=namespace,
                role=role.value,
                name=name,
                prefix=prefix,
                secret_hash=secret_hash,
                created_at=utcnow(),
            )
            .returning(*_TOKEN_COLUMNS)
        )
    ).one()
    return _token(row)


async def list_tokens(conn: AsyncConnection, namespace: str | None) -> list[TokenRecord]:
    query = select(*_TOKEN_COLUMNS).order_by(TokenRow.id)
    if namespace is not None:
        query = query.where(TokenRow.namespace == namespace)
    return [_token(r) for r in (await conn.execute(query)).all()]


async def revoke_token(conn: AsyncConnection, token_id: int) -> TokenRecord:
    await conn.execute(
        update(TokenRow).where(TokenRow.id == token_id, TokenRow.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    row = (await conn.execute(select(*_TOKEN_COLUMNS).where(TokenRow.id == token_id))).first()
    if row is None:
        raise NotFound(f"token {token_id} not found")
    return _token(row)
