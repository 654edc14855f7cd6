"""SQL for namespaces and tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.access import Role
from service.errors import AlreadyExists, Conflict, NotFound
from service.store.models import NamespaceRow, StudyRow, TokenRow, utcnow


@dataclass(frozen=True)
class TokenRecord:
    id: int
    namespace: str
    role: Role
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class NamespaceRecord:
    name: str
    created_at: datetime
    studies: int
    tokens: int


_TOKEN_COLUMNS = (TokenRow.id, TokenRow.namespace, TokenRow.role, TokenRow.name, TokenRow.prefix,
                  TokenRow.created_at, TokenRow.revoked_at)


def _token(row: Any) -> TokenRecord:
    return TokenRecord(id=row.id, namespace=row.namespace, role=Role(row.role), name=row.name, prefix=row.prefix,
                       created_at=row.created_at, revoked_at=row.revoked_at)


async def any_token(conn: AsyncConnection) -> bool:
    """Whether authentication is on: it is from the first token ever created, revoked or not."""
    return bool((await conn.execute(select(exists().select_from(TokenRow)))).scalar())


async def token_by_hash(conn: AsyncConnection, secret_hash: str) -> TokenRecord | None:
    row = (await conn.execute(select(*_TOKEN_COLUMNS).where(TokenRow.secret_hash == secret_hash))).first()
    return _token(row) if row is not None else None


async def insert_token(conn: AsyncConnection, *, namespace: str, role: Role, name: str, prefix: str,
                       secret_hash: str) -> TokenRecord:
    await get_namespace(conn, namespace)
    row = (await conn.execute(insert(TokenRow).values(
        namespace=namespace, role=role.value, name=name, prefix=prefix, secret_hash=secret_hash,
        created_at=utcnow()).returning(*_TOKEN_COLUMNS))).one()
    return _token(row)


async def list_tokens(conn: AsyncConnection, namespace: str | None) -> list[TokenRecord]:
    query = select(*_TOKEN_COLUMNS).order_by(TokenRow.id)
    if namespace is not None:
        query = query.where(TokenRow.namespace == namespace)
    return [_token(r) for r in (await conn.execute(query)).all()]


async def revoke_token(conn: AsyncConnection, token_id: int) -> TokenRecord:
    await conn.execute(update(TokenRow).where(TokenRow.id == token_id, TokenRow.revoked_at.is_(None))
                       .values(revoked_at=utcnow()))
    row = (await conn.execute(select(*_TOKEN_COLUMNS).where(TokenRow.id == token_id))).first()
    if row is None:
        raise NotFound(f"token {token_id} not found")
    return _token(row)


async def insert_namespace(conn: AsyncConnection, name: str) -> NamespaceRecord:
    try:
        async with conn.begin_nested():
            await conn.execute(insert(NamespaceRow).values(name=name, created_at=utcnow()))
    except IntegrityError as error:
        raise AlreadyExists(f"namespace {name!r} already exists") from error
    return await get_namespace(conn, name)


async def get_namespace(conn: AsyncConnection, name: str) -> NamespaceRecord:
    found = await list_namespaces(conn, only=name)
    if not found:
        raise NotFound(f"namespace {name!r} not found")
    return found[0]


async def list_namespaces(conn: AsyncConnection, only: str | None = None) -> list[NamespaceRecord]:
    studies = (select(func.count()).select_from(StudyRow).where(StudyRow.owner == NamespaceRow.name)
               .scalar_subquery())
    tokens = (select(func.count()).select_from(TokenRow)
              .where(TokenRow.namespace == NamespaceRow.name, TokenRow.revoked_at.is_(None)).scalar_subquery())
    query = select(NamespaceRow.name, NamespaceRow.created_at, studies, tokens).order_by(NamespaceRow.name)
    if only is not None:
        query = query.where(NamespaceRow.name == only)
    return [NamespaceRecord(name=r[0], created_at=r[1], studies=r[2], tokens=r[3])
            for r in (await conn.execute(query)).all()]


async def delete_namespace(conn: AsyncConnection, name: str) -> None:
    """Delete an empty namespace and revoke its tokens; one that still holds studies is a conflict."""
    namespace = await get_namespace(conn, name)
    if namespace.studies:
        raise Conflict(f"namespace {name!r} still holds {namespace.studies} studies; delete them first")
    await conn.execute(update(TokenRow).where(TokenRow.namespace == name, TokenRow.revoked_at.is_(None))
                       .values(revoked_at=utcnow()))
    try:
        async with conn.begin_nested():
            await conn.execute(delete(NamespaceRow).where(NamespaceRow.name == name))
    except IntegrityError as error:  # the studies' key: one was created since the count above
        raise Conflict(f"namespace {name!r} now holds a study; delete its studies first") from error
