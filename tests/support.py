"""Helpers the tests share: servers and workers as subprocesses, waiting, and a study spec to start from.

Fixtures live in conftest.py; this module holds the plain functions and classes they and the tests use."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

BACKENDS = ["postgresql", "sqlite"]
REPO = Path(__file__).resolve().parent.parent


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
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
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


def start_worker(database_url: str, log: Path, *, lease_seconds: float = 30.0) -> subprocess.Popen[bytes]:
    """An `asktell worker` process on the CPU, one torch thread (tests share two cores)."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service.cli",
                "worker",
                "--device",
                "cpu",
                "--database-url",
                database_url,
                "--lease-seconds",
                str(lease_seconds),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )


def wait_until(condition: object, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


# A cheap GP configuration for tests: small initial design, few restarts.
FAST_GP = {"initial_design": 3, "raw_samples": 64, "num_restarts": 2}


def stop_workers(processes: list[subprocess.Popen[bytes]]) -> None:
    """Gracefully (each worker marks itself stopped), all at once; by force after 15 s."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


class ServerFactory:
    """Starts `asktell serve` processes, each on a fresh database of the backend asked for, with its own settings
    and engine workers if asked; stops all it started in one go when the fixture that owns it ends."""

    def __init__(self, new_postgresql_database: Callable[[], str], folders: pytest.TempPathFactory) -> None:
        self._new_postgresql_database = new_postgresql_database
        self._folders = folders
        self._servers: list[RunningServer] = []
        self._workers: list[subprocess.Popen[bytes]] = []

    def __call__(
        self,
        backend: str = "postgresql",
        extra_env: dict[str, str] | None = None,
        *,
        workers: int = 0,
        database_password: str | None = None,
    ) -> RunningServer:
        """A ready server; `workers` engine worker processes alive on its database; `database_password` written
        into the database URL (trust authentication ignores it), for tests that look for it in the logs."""
        folder = self._folders.mktemp(f"server-{backend}")
        url = self._new_postgresql_database() if backend == "postgresql" else f"sqlite:///{folder / 'asktell.db'}"
        if database_password is not None:
            url = make_url(url).set(password=database_password).render_as_string(hide_password=False)
        server = start_server(url, folder / "server.log", extra_env)
        self._servers.append(server)
        if workers:
            self._workers += [start_worker(url, folder / "workers.log") for _ in range(workers)]
            wait_until(
                lambda: sum(w["alive"] for w in httpx.get(f"{server.url}/v1/workers").json()["workers"]) == workers,
                60,
                f"{workers} live workers",
            )
        return server

    def stop_all(self) -> None:
        stop_workers(self._workers)
        for server in self._servers:
            stop_server(server)
        self._workers.clear()
        self._servers.clear()
