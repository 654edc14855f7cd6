"""Shared plumbing for the benchmarks: throwaway PostgreSQL databases, server and worker processes."""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def scratch_database(admin_url: str = DEFAULT_ADMIN_URL) -> Iterator[str]:
    """A new, empty PostgreSQL database for one benchmark run, dropped afterwards."""
    admin = make_url(admin_url).set(drivername="postgresql")
    name = f"asktell_bench_{secrets.token_hex(4)}"
    conninfo = admin.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Fleet:
    """An API server plus engine workers, all subprocesses, stopped together."""

    database_url: str
    url: str = ""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def _spawn(self, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(os.devnull, "wb")  # noqa: SIM115 - lives as long as the process
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE", **env},
        )
        self.processes.append(process)
        return process

    def start_server(self, *extra: str, env: dict[str, str] | None = None) -> str:
        port = free_port()
        self._spawn(
            ["serve", "--port", str(port), "--database-url", self.database_url, *extra],
            {"ASKTELL_EMBEDDED_WORKER": "off", **(env or {})},
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self.url
            time.sleep(0.1)
        raise RuntimeError("server did not start")

    def start_worker(self, threads: int = 1) -> None:
        """Start a worker and wait until the API sees it alive (asks fall back to Sobol before that)."""
        alive_before = self._alive_workers()
        self._spawn(
            ["worker", "--device", "cpu", "--database-url", self.database_url], {"OMP_NUM_THREADS": str(threads)}
        )
        deadline = time.monotonic() + 120
        while self._alive_workers() <= alive_before:
            if time.monotonic() > deadline:
                raise RuntimeError("worker did not start")
            time.sleep(0.2)

    def _alive_workers(self) -> int:
        workers = httpx.get(f"{self.url}/v1/workers", timeout=10).json()["workers"]
        return sum(bool(w["alive"]) for w in workers)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()


@contextlib.contextmanager
def fleet(database_url: str) -> Iterator[Fleet]:
    running = Fleet(database_url)
    try:
        yield running
    finally:
        running.stop()


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    cells = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


class RunLog:
    """Finished benchmark runs as JSON lines: each run is appended as it ends and skipped next time, so an
    interrupted benchmark resumes where it stopped and its tables cover every run so far."""

    def __init__(self, path: Path | None, key_fields: tuple[str, ...]) -> None:
        self.path, self.key_fields = path, key_fields
        self.runs: dict[tuple[Any, ...], dict[str, Any]] = {}
        if path is not None and path.exists():
            for line in path.read_text().splitlines():
                run = json.loads(line)
                self.runs.setdefault(self.key(run), run)

    def key(self, run: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(run[f] for f in self.key_fields)

    def __contains__(self, key: tuple[Any, ...]) -> bool:
        return key in self.runs

    def add(self, run: dict[str, Any]) -> None:
        self.runs[self.key(run)] = run
        if self.path is not None:
            with self.path.open("a") as out:
                out.write(json.dumps(run) + "\n")


def mean_and_error(values: list[float], digits: int = 3) -> str:
    """`mean ± standard error` of a sample, for result tables."""
    error = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {error:.{digits}f}"
