"""Shared fixtures: a fresh PostgreSQL database and an SQLite file, and a real server on each; and the marker of
each test's layer, taken from its folder."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from service.store.db import Database, upgrade
from tests.support import BACKENDS, RunningServer, ServerFactory, make_spec

LAYERS = ("unit", "integration", "system")
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks each test with its layer, the folder under tests/ it lives in, so that `pytest -m unit` selects it."""
    for item in items:
        layer = item.path.relative_to(TESTS).parts[0]
        if layer not in LAYERS:
            raise pytest.UsageError(f"{item.nodeid}: a test lives in one of tests/{{{','.join(LAYERS)}}}/")
        item.add_marker(layer)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """`pytest -m <layer>` does not even import the other layers' modules (servers, browsers, ML frameworks), which
    keeps `pytest -m unit` quick; any other selection collects everything, as usual."""
    selected: str = config.getoption("markexpr")
    if selected in LAYERS and collection_path.parent == TESTS and collection_path.name in LAYERS:
        return collection_path.name != selected
    return None


ADMIN_URL = os.environ.get("ASKTELL_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin_conninfo() -> str:
    return make_url(ADMIN_URL).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgresql_factory() -> Iterator[object]:
    """Creates throwaway PostgreSQL databases and drops them all at the end of the session."""
    created: list[str] = []

    def create() -> str:
        name = f"asktell_test_{os.getpid()}_{secrets.token_hex(4)}"
        with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return make_url(ADMIN_URL).set(drivername="postgresql", database=name).render_as_string(hide_password=False)

    yield create
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database per test, on PostgreSQL and on SQLite, for tests of the store and core layers."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgresql_factory")()
    else:
        url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    database = Database(url)
    yield database
    await database.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, postgresql_factory: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A real `asktell serve` process on each backend, shared by the session; tests keep apart by using unique
    study names."""
    servers = ServerFactory(postgresql_factory, tmp_path_factory)
    try:
        yield servers(request.param)
    finally:
        servers.stop_all()


@pytest.fixture(scope="module")
def module_servers(
    postgresql_factory: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerFactory]:
    """Starts servers for one module, each on a fresh database, where a module needs settings, tokens or workers
    of its own; they all stop when the module is done."""
    servers = ServerFactory(postgresql_factory, tmp_path_factory)
    try:
        yield servers
    finally:
        servers.stop_all()


@pytest.fixture
def api(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def study_name() -> str:
    return f"study-{secrets.token_hex(6)}"


@pytest.fixture
def study(api: httpx.Client, study_name: str) -> str:
    response = api.post("/v1/studies", json={"name": study_name, **make_spec()})
    assert response.status_code == 201, response.text
    return study_name
