"""Namespaces: the teams that own studies and tokens; the default one always exists."""

from __future__ import annotations

from service.domain.caller import DEFAULT_NAMESPACE, namespace_problem
from service.errors import Conflict, InvalidArgument
from service.store import namespaces as namespace_store
from service.store.db import Database
from service.store.namespaces import NamespaceRecord


def check_namespace(name: str, field_name: str = "namespace") -> None:
    problem = namespace_problem(name)
    if problem:
        raise InvalidArgument.one(field_name, problem)


async def create_namespace(db: Database, name: str) -> NamespaceRecord:
    check_namespace(name, "name")
    async with db.transaction() as conn:
        return await namespace_store.insert_namespace(conn, name)


async def list_namespaces(db: Database) -> list[NamespaceRecord]:
    async with db.transaction() as conn:
        return await namespace_store.list_namespaces(conn)


async def delete_namespace(db: Database, name: str) -> None:
    if name == DEFAULT_NAMESPACE:
        raise Conflict(f"namespace {DEFAULT_NAMESPACE!r} cannot be deleted")
    async with db.transaction() as conn:
        await namespace_store.delete_namespace(conn, name)
