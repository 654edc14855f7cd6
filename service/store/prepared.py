"""Hot-path statements: built once, and run on PostgreSQL straight through asyncpg.

Building a SQLAlchemy statement, computing its cache key and setting up its execution context cost more CPU
than the database spends on a single-row UPDATE. A `Prepared` statement is built once, with named bind
parameters; on PostgreSQL it is compiled once to asyncpg's `$n` SQL and runs on a connection of the
database's direct asyncpg pool (asyncpg prepares it once per connection); on SQLite it runs through
SQLAlchemy like any other statement, whose compiled cache then finds it at once (its cache key is memoized).
One statement definition serves both backends, so the tests of either cover the same SQL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, literal_column
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.expression import Executable

Row = Mapping[str, Any]
_POSTGRESQL = asyncpg_dialect()  # type: ignore[no-untyped-call]


def constant(value: str) -> ColumnElement[Any]:
    """A string constant rendered into the SQL itself (our own state names), so a prepared statement needs no
    parameter for it, and `IN (constant, ...)` no expanding one."""
    if not value.replace("_", "").isalnum():
        raise ValueError(f"not a plain constant: {value!r}")
    return literal_column(f"'{value}'")


class Prepared:
    """One statement with named bind parameters (`bindparam("name")`), compiled once for asyncpg."""

    def __init__(self, statement: Executable, *, sqlite: Executable | None = None) -> None:
        """`sqlite`: the statement's SQLite spelling, where the dialects differ (an upsert, say)."""
        self.statement = statement
        self.sqlite = sqlite if sqlite is not None else statement
        compiled = statement.compile(dialect=_POSTGRESQL)  # type: ignore[attr-defined]
        self.sql: str = compiled.string
        binds = compiled.binds
        if any(bind.expanding for bind in binds.values()):
            raise ValueError("a prepared statement takes no expanding IN (...) parameter: use constant()")
        self._names: Sequence[str] = tuple(compiled.positiontup or ())
        self._constants = {name: bind.value for name, bind in binds.items() if not bind.required}
        self._json_params = frozenset(name for name, bind in binds.items() if isinstance(bind.type, JSON))
        self._json_columns = frozenset(
            column.keyname for column in compiled._result_columns if isinstance(column.type, JSON)
        )

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        """asyncpg's positional arguments; JSON values as text (asyncpg's own codec for json/jsonb)."""
        given = {**self._constants, **params}
        return [
            json.dumps(given[name]) if name in self._json_params and given[name] is not None else given[name]
            for name in self._names
        ]

    def decoded(self, record: Row) -> dict[str, Any]:
        row = dict(record.items())
        for name in self._json_columns:
            if row.get(name) is not None:
                row[name] = json.loads(row[name])
        return row


class DirectConnection:
    """An asyncpg connection (from `Database.direct`) that runs prepared statements."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def rows(self, prepared: Prepared, **params: Any) -> list[Row]:
        records = await self.connection.fetch(prepared.sql, *prepared.arguments(params))
        return [prepared.decoded(record) for record in records]


class AlchemyConnection:
    """The same interface over a SQLAlchemy connection (SQLite, or a caller already inside a transaction)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def rows(self, prepared: Prepared, **params: Any) -> list[Row]:
        statement = prepared.sqlite if self.connection.dialect.name == "sqlite" else prepared.statement
        result = await self.connection.execute(statement, params)
        return [dict(row._mapping) for row in result] if result.returns_rows else []


Statements = DirectConnection | AlchemyConnection
