"""Shared fixtures: a fresh PostgreSQL database and an SQLite file, and a real server on each."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from service.store.db import Database, upgrade

ADMIN_URL = os.environ.get("ASKTELL_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["postgresql", "sqlite"]
REPO = Path(__file__).resolve().parent.parent


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


@pytest.fixture(scope="session")
def postgresql_url(postgresql_factory) -> str:  # type: ignore[no-untyped-def]
    return postgresql_factory()  # type: ignore[no-any-return]


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


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'asktell.db'}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    database_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]


def start_server(database_url: str, log: Path, extra_env: dict[str, str] | None = None) -> RunningServer:
    port = free_port()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", **(extra_env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--database-url", database_url],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    server = RunningServer(f"http://127.0.0.1:{port}", database_url, process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not become ready:\n{server.output()}")


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A real `asktell serve` process on each backend; tests keep apart by using unique study names."""
    database_url = request.getfixturevalue(f"{request.param}_url")
    running = start_server(database_url, tmp_path_factory.mktemp("server") / "server.log")
    yield running
    stop_server(running)


@pytest.fixture
def api(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def study_name() -> str:
    return f"study-{secrets.token_hex(6)}"


def make_spec(**overrides: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "params": [
            {"name": "lr", "type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            {"name": "layers", "type": "int", "low": 1, "high": 8},
            {"name": "act", "type": "categorical", "choices": ["relu", "tanh", "gelu"]},
        ],
        "objectives": [{"name": "loss", "goal": "minimize"}],
        "engine": "sobol",
    }
    spec.update(overrides)
    return spec


@pytest.fixture
def study(api: httpx.Client, study_name: str) -> str:
    response = api.post("/v1/studies", json={"name": study_name, **make_spec()})
    assert response.status_code == 201, response.text
    return study_name


def start_worker(database_url: str, log: Path, *, lease_seconds: float = 30.0) -> subprocess.Popen[bytes]:
    """An `asktell worker` process on the CPU, one torch thread (tests share two cores)."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker", "--device", "cpu", "--database-url", database_url,
             "--lease-seconds", str(lease_seconds)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def wait_until(condition: object, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


# A cheap GP configuration for tests: small initial design, few restarts.
FAST_GP = {"initial_design": 3, "raw_samples": 64, "num_restarts": 2}
