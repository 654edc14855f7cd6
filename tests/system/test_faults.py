"""Faults under load: the API server killed mid-burst, PostgreSQL restarted under load. Nothing acknowledged may be
lost, nothing retried may land twice. (A worker killed mid-job: tests/system/test_workers.py.)"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from asktell import AsktellError, Client
from asktell import _protocol as api
from tests.support import REPO, free_port, make_spec, wait_until

CLIENTS = 16
TELLS = 1000


def _serve(database_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--database-url", database_url],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
        )


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _value(number: int) -> float:
    return number / 1000 + 0.5


def test_killing_the_api_server_mid_burst_loses_no_tell(postgresql_factory: Callable[[], str], tmp_path: Path) -> None:
    """16 clients tell 1,000 trials with retries; the server is SIGKILLed at about the 300th tell and restarted
    on the same port. Every tell ends acknowledged, and each is in the database exactly once."""
    database_url, port = postgresql_factory(), free_port()
    url = f"http://127.0.0.1:{port}"
    server = _serve(database_url, port, tmp_path / "server.log")
    try:
        wait_until(lambda: _ready(url), 60, "the server to start")
        with Client(url) as client:
            spec = make_spec(engine="random")
            study = client.create_study("burst", spec["params"], spec["objectives"], engine="random")
            numbers = [t.number for t in study.ask(TELLS)]
        acknowledged: list[int] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def tell_share(share: list[int]) -> None:
            with Client(url, max_retries=30) as own:  # backoff caps at 5 s: ample time for a restart
                for number in share:
                    try:
                        own._call(api.tell("burst", number, {"loss": _value(number)}, False, False, False, None))
                    except AsktellError as error:
                        errors.append(error)
                        return
                    with lock:
                        acknowledged.append(number)

        threads = [threading.Thread(target=tell_share, args=(numbers[i::CLIENTS],)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(acknowledged) >= 300, 60, "tells to flow")
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        killed_at, at_kill = time.monotonic(), len(acknowledged)
        server = _serve(database_url, port, tmp_path / "server.log")
        wait_until(lambda: _ready(url), 60, "the server to restart")
        back_after = time.monotonic() - killed_at
        for thread in threads:
            thread.join(timeout=180)
        print(
            f"\nSIGKILL after {at_kill} of {TELLS} tells; server back after {back_after:.1f} s; all tells "
            f"acknowledged {time.monotonic() - killed_at:.1f} s after the kill"
        )
        assert not errors, errors[:3]
        assert at_kill < TELLS, "the kill came too late to test anything"
        assert sorted(acknowledged) == sorted(numbers)
        with Client(url) as client:
            stored = client.get_study("burst").trials()
        assert len(stored) == TELLS  # no retry created anything
        assert all(t.state == "completed" and t.values == {"loss": _value(t.number)} for t in stored)
    finally:
        server.kill()
        server.wait(timeout=10)


# PostgreSQL restarted under load, on a private cluster so that the suite's own database is never touched. -----


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivateCluster:
    """A throwaway PostgreSQL cluster on a free port (as the postgres user when the tests run as root)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="asktell-pg-"))
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres", "--no-sync")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.dir / "data"),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    bin_dir = _postgres_bin()
    if bin_dir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip("PostgreSQL's server binaries are not installed here")
    private = PrivateCluster(bin_dir)
    private.start()
    yield private
    private.remove()


def test_a_database_restart_under_load_loses_no_acknowledged_write(cluster: PrivateCluster, tmp_path: Path) -> None:
    """Clients ask and tell in a loop while PostgreSQL restarts: /readyz says not ready, then recovers without
    anyone's help, and every tell that was acknowledged is stored."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _serve(cluster.url, port, tmp_path / "server.log")
    stop = threading.Event()
    acknowledged: dict[int, float] = {}
    failures: list[str] = []
    lock = threading.Lock()
    try:
        wait_until(lambda: _ready(url), 60, "the server to start")
        with Client(url) as client:
            spec = make_spec(engine="random")
            client.create_study("restart", spec["params"], spec["objectives"], engine="random")

        def train() -> None:
            with Client(url, max_retries=2) as own:
                study = own.get_study("restart")
                while not stop.is_set():
                    try:
                        (trial,) = study.ask()
                        trial.tell({"loss": _value(trial.number)})
                    except AsktellError as error:  # while the database is down, after the SDK's retries
                        failures.append(type(error).__name__)
                        time.sleep(0.2)
                        continue
                    with lock:
                        acknowledged[trial.number] = _value(trial.number)

        threads = [threading.Thread(target=train) for _ in range(4)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(acknowledged) >= 20, 60, "load to flow")
        stopped_at, before_stop = time.monotonic(), len(acknowledged)
        cluster.stop()
        wait_until(lambda: not _ready(url), 30, "/readyz to report the database gone")
        down: dict[str, Any] = httpx.get(f"{url}/readyz", timeout=5).json()
        assert down["status"] == "unavailable"
        time.sleep(1.0)
        cluster.start()
        started_at = time.monotonic()
        wait_until(lambda: _ready(url), 60, "/readyz to recover by itself")
        ready_after = time.monotonic() - started_at
        before = len(acknowledged)
        wait_until(lambda: len(acknowledged) >= before + 20, 60, "load to flow again after the restart")
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        with Client(url) as client:
            stored = {t.number: t for t in client.get_study("restart").trials()}
        for number, value in acknowledged.items():
            assert stored[number].state == "completed" and stored[number].values == {"loss": value}
        assert failures, "the restart went unnoticed: the test proved nothing"
        print(
            f"\nPostgreSQL down for {started_at - stopped_at:.1f} s after {before_stop} tells; /readyz ready "
            f"{ready_after:.1f} s after it came back; {len(failures)} client calls failed past the SDK's retries "
            f"meanwhile; {len(acknowledged)} acknowledged tells, all stored"
        )
    finally:
        stop.set()
        server.kill()
        server.wait(timeout=10)


def test_sigterm_lets_a_request_in_flight_finish(tmp_path: Path) -> None:
    """A long-polled job request is answered after SIGTERM, then the server exits by itself."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "server.log").open("ab") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service.cli",
                "serve",
                "--port",
                str(port),
                "--database-url",
                f"sqlite:///{tmp_path / 'drain.db'}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "ASKTELL_EMBEDDED_WORKER": "off"},
        )
    try:
        wait_until(lambda: _ready(url), 60, "the server to start")
        with httpx.Client(base_url=url, timeout=30) as api:
            spec = make_spec(
                engine="gp",
                engine_options={"initial_design": 1},
                params=[{"name": "x", "type": "float", "low": 0, "high": 1}],
            )
            api.post("/v1/studies", json={"name": "drain", **spec}).raise_for_status()
            (trial,) = api.post("/v1/studies/drain/ask", json={}).json()["trials"]
            # The tell queues a refill job (job 1) that no worker will compute: a poll of it waits its full time.
            api.post(f"/v1/studies/drain/trials/{trial['number']}/tell", json={"values": {"loss": 1.0}})
            answer: dict[str, Any] = {}

            def poll() -> None:
                answer["response"] = api.get("/v1/studies/drain/jobs/1", params={"wait_seconds": 3})

            poller = threading.Thread(target=poll)
            poller.start()
            time.sleep(1.0)
            server.send_signal(signal.SIGTERM)
            poller.join(timeout=30)
        assert answer["response"].status_code == 202  # answered in full, not cut off
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once drained
    finally:
        server.kill()


AGENT_PROGRAM = "import time, sys; time.sleep(1); print(f'asktell: loss={float(sys.argv[1]) ** 2}', flush=True)"


def test_optimize_and_the_agent_ride_out_a_server_restart(
    postgresql_factory: Callable[[], str], tmp_path: Path
) -> None:
    """The server is killed mid-run and is back a few seconds later: a running `study.optimize` and a running
    `asktell agent` go on (the SDK retried for about 3 s; they failed) and every trial ends completed."""
    database_url, port = postgresql_factory(), free_port()
    url = f"http://127.0.0.1:{port}"
    server = _serve(database_url, port, tmp_path / "server.log")
    try:
        wait_until(lambda: _ready(url), 60, "the server to start")
        spec = make_spec(engine="random", params=[{"name": "x", "type": "float", "low": -1, "high": 1}])
        with Client(url) as client:
            for name in ("optimized", "agent"):
                client.create_study(name, spec["params"], spec["objectives"], engine="random")
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "asktell.cli",
                "--url",
                url,
                "agent",
                "agent",
                "--count",
                "8",
                "--",
                sys.executable,
                "-c",
                AGENT_PROGRAM,
                "{x}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )
        errors: list[BaseException] = []

        def optimize() -> None:
            def objective(trial: Any) -> float:
                time.sleep(1)
                return float(trial.params["x"]) ** 2

            try:
                with Client(url) as own:
                    own.get_study("optimized").optimize(objective, n_trials=10, n_workers=2, show_progress=False)
            except BaseException as error:
                errors.append(error)

        optimizing = threading.Thread(target=optimize)
        optimizing.start()
        with Client(url) as client:
            wait_until(
                lambda: (client.get_study("optimized").trial_counts or {}).get("completed", 0) >= 2,
                60,
                "trials to complete",
            )
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        time.sleep(2)
        server = _serve(database_url, port, tmp_path / "server.log")
        optimizing.join(timeout=180)
        output, _ = agent.communicate(timeout=180)
        assert not errors, errors
        assert agent.returncode == 0, output[-3000:]
        with Client(url) as client:
            for name, count in (("optimized", 10), ("agent", 8)):
                assert [t.state for t in client.get_study(name).trials()] == ["completed"] * count, name
    finally:
        server.kill()
        server.wait(timeout=10)
