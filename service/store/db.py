"""Connections and migrations: the one place that knows which database we talk to."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from service.store.prepared import AlchemyConnection, DirectConnection, Statements
from service.store.records import StudyRecord
from service.store.signals import Signals
from service.store.urls import async_url, is_sqlite, sync_url

log = logging.getLogger(__name__)

SERVICE_DIR = Path(__file__).resolve().parent.parent
# An installed server carries its migrations as service/migrations; a checkout has them at its top.
PACKAGED_MIGRATIONS = SERVICE_DIR / "migrations"
MIGRATIONS_DIR = PACKAGED_MIGRATIONS if PACKAGED_MIGRATIONS.is_dir() else SERVICE_DIR.parent / "migrations"
MIGRATION_LOCK_ID = 0x61736B74  # "askt": one PostgreSQL advisory lock serializes concurrent upgrades
# Every statement is planned for its own parameters. asyncpg prepares each statement once per connection, and after
# five runs PostgreSQL may keep a generic plan made from the statistics of that moment: one made while the trials
# table was nearly empty scans the whole table, and stays until the table is analyzed again (measured: a tell's
# database time went from 0.3 to 2.6 ms per request once a study had grown). Planning these short statements each
# time costs far less than one such plan.
SESSION_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _session_settings(driver: str) -> dict[str, Any]:
    """SESSION_SETTINGS in the connect arguments of the URL's driver (asyncpg's own, or libpq's options)."""
    if driver == "asyncpg":
        return {"server_settings": SESSION_SETTINGS}
    return {"options": " ".join(f"-c {name}={value}" for name, value in SESSION_SETTINGS.items())}


def dialect_insert(conn: AsyncConnection) -> Any:
    """The INSERT construct of the connection's dialect: upserts (ON CONFLICT) are spelled per dialect."""
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


class Database:
    """An async engine plus the transaction helper every store function runs in.

    SQLite gets a single connection: its writers serialize anyway, and one connection turns
    "database is locked" errors into an orderly queue. PostgreSQL gets a pool, and beside it a direct
    asyncpg pool for the hot path's prepared statements (`direct`).
    """

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = is_sqlite(url)
        self.pool_size = pool_size
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs.update(poolclass=AsyncAdaptedQueuePool, pool_size=1, max_overflow=0, pool_timeout=60)
        else:
            # No pre-ping: it costs a round trip per request. A connection that died with its server
            # fails one request, and SQLAlchemy then discards the whole stale pool. No overflow either: a
            # connection above pool_size is opened and closed per checkout (a connect costs more CPU than a
            # request), so requests beyond the pool wait for a connection instead.
            kwargs.update(
                pool_size=pool_size,
                max_overflow=0,
                pool_timeout=30,
                pool_recycle=1800,
                connect_args=_session_settings(async_url(url).get_driver_name()),
            )
        self.engine: AsyncEngine = create_async_engine(async_url(url), **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.signals = Signals(self.engine, None if self.is_sqlite else async_url(url))
        # Immutable facts (id, spec, engine) of studies by (owner, name), for single-statement hot
        # paths. A stale entry (the study was deleted and re-created) matches no row and is replaced.
        self.known_studies: dict[tuple[str, str], StudyRecord] = {}
        self._direct_pool: Any = None  # asyncpg.Pool, opened on first use (it needs the running loop)
        self._direct_lock = asyncio.Lock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection without BEGIN/COMMIT round trips, for work that is one atomic statement."""
        async with self.engine.connect() as connection:
            yield await connection.execution_options(isolation_level="AUTOCOMMIT")

    @asynccontextmanager
    async def direct(self) -> AsyncIterator[Statements]:
        """A connection for prepared statements, each its own transaction: asyncpg's own on PostgreSQL,
        SQLAlchemy's (in autocommit) on SQLite."""
        if self.is_sqlite:
            async with self.autocommit() as connection:
                yield AlchemyConnection(connection)
            return
        pool = self._direct_pool or await self._open_direct_pool()
        async with pool.acquire() as connection:
            yield DirectConnection(connection)

    @asynccontextmanager
    async def direct_transaction(self) -> AsyncIterator[Statements]:
        """The same, with every statement in one transaction."""
        if self.is_sqlite:
            async with self.transaction() as connection:
                yield AlchemyConnection(connection)
            return
        pool = self._direct_pool or await self._open_direct_pool()
        async with pool.acquire() as connection, connection.transaction():
            yield DirectConnection(connection)

    async def _open_direct_pool(self) -> Any:
        import asyncpg

        async with self._direct_lock:
            if self._direct_pool is None:
                dsn = async_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
                # asyncpg keeps the connections it opened, so none is opened per request. Its default reset on
                # release (unlock, close cursors, unlisten, reset settings) is a round trip per request for state
                # these statements never leave; an open transaction is still rolled back.
                self._direct_pool = await asyncpg.create_pool(
                    dsn,
                    min_size=1,
                    max_size=self.pool_size,
                    reset=_rollback_if_open,
                    server_settings=SESSION_SETTINGS,
                )
        return self._direct_pool

    def remember(self, study: StudyRecord) -> None:
        if len(self.known_studies) > 10_000:
            self.known_studies.clear()
        self.known_studies[(study.owner, study.name)] = study

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.signals.stop()
        if self._direct_pool is not None:
            await self._direct_pool.close()
            self._direct_pool = None
        await self.engine.dispose()


async def _rollback_if_open(connection: Any) -> None:
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sync_url(url).render_as_string(hide_password=False))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`; safe when several replicas start at once.

    On PostgreSQL an advisory lock makes concurrent upgrades wait for each other, and the ones
    that come later find nothing left to do.
    """
    config = alembic_config(url)
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
                connection.commit()
            try:
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                connection.commit()
            finally:
                if engine.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
                    connection.commit()
    finally:
        engine.dispose()
    log.info("database schema at %s", revision)
