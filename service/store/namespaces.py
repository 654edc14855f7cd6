"""SQL for namespaces: the teams that own studies and tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from service.errors import AlreadyExists, Conflict, NotFound
from service.store.models import NamespaceRow, StudyRow, TokenRow, utcnow


@dataclass(frozen=True)
class NamespaceRecord:
    name: str
    created_at: datetime
    studies: int
    tokens: int


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
    studies = select(func.count()).select_from(StudyRow).where(StudyRow.owner == NamespaceRow.name).scalar_subquery()
    tokens = (
        select(func.count())
        .select_from(TokenRow)
        .where(TokenRow.namespace == NamespaceRow.name, TokenRow.revoked_at.is_(None))
        .scalar_subquery()
    )
    query = select(NamespaceRow.name, NamespaceRow.created_at, studies, tokens).order_by(NamespaceRow.name)
    if only is not None:
        query = query.where(NamespaceRow.name == only)
    return [
        NamespaceRecord(name=r[0], created_at=r[1], studies=r[2], tokens=r[3])
        for r in (await conn.execute(query)).all()
    ]


async def delete_namespace(conn: AsyncConnection, name: str) -> None:
    """Delete an empty namespace and revoke its tokens; one that still holds studies is a conflict."""
    namespace = await get_namespace(conn, name)
    if namespace.studies:
        raise Conflict(f"namespace {name!r} still holds {namespace.studies} studies; delete them first")
    await conn.execute(
        update(TokenRow).where(TokenRow.namespace == name, TokenRow.revoked_at.is_(None)).values(revoked_at=utcnow())
    )
    try:
        async with conn.begin_nested():
            await conn.execute(delete(NamespaceRow).where(NamespaceRow.name == name))
    except IntegrityError as error:  # the studies' key: one was created since the count above
        raise Conflict(f"namespace {name!r} now holds a study; delete its studies first") from error
