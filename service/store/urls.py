"""Database URLs: users write plain ones; the API needs an async driver and Alembic a sync one."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url

_ASYNC_DRIVERS = {"postgresql": "asyncpg", "sqlite": "aiosqlite"}
_SYNC_DRIVERS = {"asyncpg": "psycopg", "aiosqlite": "pysqlite"}


def async_url(url: str) -> URL:
    """`postgresql://` → asyncpg, `sqlite://` → aiosqlite; an explicit async driver is kept."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.get_backend_name() not in _ASYNC_DRIVERS:
        raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use postgresql:// or sqlite://")
    if parsed.drivername in _ASYNC_DRIVERS or parsed.get_driver_name() in ("pysqlite", "psycopg2"):
        return parsed.set(drivername=f"{parsed.get_backend_name()}+{_ASYNC_DRIVERS[parsed.get_backend_name()]}")
    return parsed


def sync_url(url: str) -> URL:
    """The same database through a synchronous driver (for migrations and tooling)."""
    parsed = async_url(url)
    driver = _SYNC_DRIVERS.get(parsed.get_driver_name(), parsed.get_driver_name())
    return parsed.set(drivername=f"{parsed.get_backend_name()}+{driver}")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"
