"""API throughput on PostgreSQL, against Optuna and against a bare asyncpg endpoint, in one run.

(a) ask+tell round trips per second and p50/p99 of one round trip through the SDK, with 1 and 16
    concurrent clients (threads, one Client each), `random` engine. Peer: Optuna's RDB storage
    (postgresql+psycopg, a fresh database on the same server), RandomSampler, ask + suggest + tell,
    the same threads each loading the one shared study. The two are measured alternately.
    Target: asktell >= 10x Optuna with 16 clients.
(b) requests per second of POST /v1/studies/{s}/trials/{n}/tell on distinct active trials (prepared
    beforehand with asks of count=1000), against `bare_insert_app.py` (one FastAPI endpoint that inserts
    one row through an asyncpg pool, under uvicorn with uvloop and httptools: the ceiling). The same load
    generator (`loadgen.py`: raw keep-alive HTTP/1.1, its own process) drives both at the same
    concurrency, with an uncounted warm-up second. asktell runs as one process (the target: >= 50% of the
    bare app), measured in TELL_ROUNDS rounds that alternate with the bare app's (a shared machine's load
    then hits both alike), and with `--workers 2`.
(c) a new client joining a study that already holds 5,000 completed trials: Client() + get_study + first
    ask, median of 20 (target < 50 ms). `--optuna-join N` adds Optuna's load_study + ask on N trials.
(d) p50 and p99 per route, one API process, 16 SDK clients (threads) each looping ask, report (one
    intermediate value), tell and get_study on one shared `random` study.

    python benchmarks/api_throughput.py [--duration 10] [--clients 1,16] [--connections 32] [--skip-optuna]
        [--optuna-join N] [--database-url-admin postgresql://postgres@127.0.0.1:5432/postgres]
        [--py-spy DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from asktell import Client
from benchmarks.harness import DEFAULT_ADMIN_URL, REPO, free_port, markdown_table, percentile, scratch_database
from benchmarks.loadgen import LoadGenerator, LoadResult, post

SPEC: dict[str, Any] = {
    "params": [
        {"name": "lr", "type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        {"name": "layers", "type": "int", "low": 1, "high": 8},
        {"name": "act", "type": "categorical", "choices": ["relu", "gelu"]},
    ],
    "objectives": [{"name": "loss", "goal": "minimize"}],
    "engine": "random",
}
TELL_BODY = b'{"values": {"loss": 0.5}}'
WARMUP_SECONDS = 1.0
TELL_ROUNDS = 3  # (b) alternates bare and asktell this many times, `--duration` split between the rounds
MAX_ROUND_TRIPS_PER_THREAD = 1_000_000  # a bound besides the deadline
JOIN_TRIALS = 5000
JOIN_TRIES = 20
SUBPROCESS_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


# --------------------------------------------------------------------------- processes


@dataclass
class Service:
    """A server subprocess in its own process group (stopping it stops its uvicorn workers too)."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str, timeout: float = 90.0) -> str:
        """Start and wait until `ready_path` answers 200."""
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **SUBPROCESS_ENV, **self.env},
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + ready_path, timeout=2).status_code == 200:
                    return self.url
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it if it is still there after 15 s."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


@contextlib.contextmanager
def running(service: Service, ready_path: str) -> Iterator[Service]:
    try:
        service.start(ready_path)
        yield service
    finally:
        service.stop()


def asktell_server(database_url: str, logs: Path, workers: int = 1) -> contextlib.AbstractContextManager[Service]:
    """`python -m service.cli serve` on a free port (migrations run at start)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "service.cli",
        "serve",
        "--port",
        str(port),
        "--database-url",
        database_url,
        "--log-level",
        "warning",
    ]
    if workers > 1:
        command += ["--workers", str(workers)]
    service = Service(
        f"asktell (--workers {workers})",
        command,
        {"ASKTELL_EMBEDDED_WORKER": "off"},
        port,
        logs / f"asktell-{workers}-{port}.log",
    )
    return running(service, "/readyz")


def bare_server(database_url: str, logs: Path) -> contextlib.AbstractContextManager[Service]:
    """The bare FastAPI + asyncpg app under uvicorn: one process, uvloop, httptools."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "benchmarks.bare_insert_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    service = Service("bare app", command, {"ASKTELL_BARE_DSN": database_url}, port, logs / f"bare-{port}.log")
    return running(service, "/readyz")


@contextlib.contextmanager
def py_spy(pid: int | None, out: Path | None, label: str, seconds: float) -> Iterator[None]:
    """Optionally record the server (and its children) with py-spy while the block runs."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if pid is None or out is None or not Path(spy).exists():
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    command = [
        spy,
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--nonblocking",
        "--rate",
        "200",
        "--duration",
        str(max(1, round(seconds))),
        "--format",
        "raw",
        "--output",
        str(out / f"{label}.txt"),
    ]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        try:
            recorder.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            recorder.terminate()
            recorder.wait(timeout=10)


# --------------------------------------------------------------------------- (a) round trips


@dataclass
class RoundTrips:
    """Round trips of all threads inside the measurement window."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def round_trips(clients: int, seconds: float, make: Callable[[int], Callable[[], None]]) -> RoundTrips:
    """Run `make(i)()` in a loop in `clients` threads, all starting together, for `seconds` each.

    `make(i)` builds thread i's state (its own client or storage) and does one uncounted round trip.
    """
    result = RoundTrips(seconds)
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1, timeout=300)

    def loop(index: int) -> None:
        mine: list[float] = []
        try:
            once = make(index)
            once()
        except Exception as error:
            with lock:
                result.errors.append(repr(error))
            barrier.abort()
            raise
        barrier.wait()
        deadline = time.perf_counter() + seconds
        try:
            for _ in range(MAX_ROUND_TRIPS_PER_THREAD):
                started = time.perf_counter()
                if started >= deadline:
                    break
                once()
                mine.append(time.perf_counter() - started)
        except Exception as error:
            with lock:
                result.errors.append(repr(error))
        with lock:
            result.latencies.extend(mine)

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    if result.errors:
        raise RuntimeError(f"{len(result.errors)} round-trip loop(s) failed: {result.errors[:3]}")
    return result


def asktell_round_trips(url: str, clients: int, seconds: float) -> RoundTrips:
    """SDK ask + tell with `clients` threads, one Client each, on a new `random` study."""
    name = f"rt-{clients}-{secrets.token_hex(3)}"
    with Client(url) as admin:
        admin.create_study(name=name, if_exists="get", **SPEC)
    opened: list[Client] = []

    def make(index: int) -> Callable[[], None]:
        client = Client(url)
        opened.append(client)
        study = client.get_study(name)

        def once() -> None:
            (trial,) = study.ask()
            trial.tell({"loss": float(trial.params["lr"])})

        return once

    try:
        return round_trips(clients, seconds, make)
    finally:
        for client in opened:
            client.close()


def optuna_round_trips(storage: str, clients: int, seconds: float) -> RoundTrips:
    """Optuna ask + suggest + tell with `clients` threads, each its own load_study of one shared study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = f"rt-{clients}-{secrets.token_hex(3)}"
    optuna.create_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler())
    lock = threading.Lock()

    def make(index: int) -> Callable[[], None]:
        with lock:  # RDBStorage's first connection checks and may create the schema: one at a time
            study = optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler())

        def once() -> None:
            trial = study.ask()
            lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
            trial.suggest_int("layers", 1, 8)
            trial.suggest_categorical("act", ["relu", "gelu"])
            study.tell(trial, lr)

        return once

    return round_trips(clients, seconds, make)


# --------------------------------------------------------------------------- (d) per route

ROUTES = ("ask", "report", "tell", "get_study")


def route_latencies(url: str, clients: int, seconds: float) -> dict[str, list[float]]:
    """Seconds per call of each route in ROUTES, from `clients` SDK threads looping over all four."""
    name = f"routes-{secrets.token_hex(3)}"
    with Client(url) as admin:
        admin.create_study(name=name, if_exists="get", **SPEC)
    opened: list[Client] = []
    per_route: dict[str, list[float]] = {route: [] for route in ROUTES}
    lock = threading.Lock()

    def make(index: int) -> Callable[[], None]:
        client = Client(url)
        opened.append(client)
        study = client.get_study(name)

        def once() -> None:
            times = [time.perf_counter()]
            (trial,) = study.ask()
            times.append(time.perf_counter())
            trial.report(1, {"loss": 1.0})
            times.append(time.perf_counter())
            trial.tell({"loss": float(trial.params["lr"])})
            times.append(time.perf_counter())
            client.get_study(name)
            times.append(time.perf_counter())
            with lock:
                for route, started, ended in zip(ROUTES, times, times[1:], strict=False):
                    per_route[route].append(ended - started)

        return once

    try:
        round_trips(clients, seconds, make)
    finally:
        for client in opened:
            client.close()
    return per_route


# --------------------------------------------------------------------------- (b) tell throughput


def active_trials(url: str, name: str, count: int, timeout: float = 300.0) -> list[int]:
    """Numbers of `count` new active trials of study `name`, asked for 1,000 at a time."""
    numbers: list[int] = []
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=120) as api:
        while len(numbers) < count and time.monotonic() < deadline:
            response = api.post(f"/v1/studies/{name}/ask", json={"count": min(1000, count - len(numbers))})
            response.raise_for_status()
            numbers += [t["number"] for t in response.json()["trials"]]
    if len(numbers) < count:
        raise RuntimeError(f"only {len(numbers)} of {count} trials asked for within {timeout:.0f} s")
    return numbers


def tell_requests(name: str, numbers: list[int]) -> list[bytes]:
    return [post("127.0.0.1", f"/v1/studies/{name}/trials/{n}/tell", TELL_BODY) for n in numbers]


def tell_throughput(
    service: Service,
    loadgen: LoadGenerator,
    *,
    seconds: float,
    connections: int,
    trials: int,
    profile: Path | None = None,
    label: str = "",
) -> LoadResult:
    """Tells of `trials` distinct prepared active trials (warm-up included), driven by the load generator."""
    name = f"tell-{secrets.token_hex(3)}"
    with Client(service.url) as admin:
        admin.create_study(name=name, if_exists="get", **SPEC)
    requests = tell_requests(name, active_trials(service.url, name, trials))
    pid = service.process.pid if service.process else None
    with py_spy(pid, profile, f"tell-{label}", WARMUP_SECONDS + seconds):
        result = loadgen.run(service.port, requests, connections=connections, seconds=seconds, warmup=WARMUP_SECONDS)
    if result.errors:
        raise RuntimeError(f"tell phase: {result.errors} errors, statuses {result.statuses}:\n{service.tail()}")
    return result


def merged(results: list[LoadResult]) -> LoadResult:
    """Several measurement windows as one: their requests over their total seconds."""
    total = LoadResult()
    for result in results:
        total.requests += result.requests
        total.errors += result.errors
        total.seconds += result.seconds
        total.sent += result.sent
        total.exhausted = total.exhausted or result.exhausted
        total.latencies += result.latencies
        for code, count in result.statuses.items():
            total.statuses[code] = total.statuses.get(code, 0) + count
    return total


def alternated_tells(
    server: Service, bare: Service, loadgen: LoadGenerator, *, seconds: float, connections: int, profile: Path | None
) -> tuple[LoadResult, LoadResult, int]:
    """The bare app's inserts and asktell's tells in TELL_ROUNDS alternating rounds of `seconds / TELL_ROUNDS`:
    (bare, tells, trials prepared per round)."""
    window = seconds / TELL_ROUNDS
    bare_rounds = [bare_throughput(bare, loadgen, seconds=window, connections=connections)]
    # Enough distinct active trials for a round at 2.5x the bare app's rate, warm-up included.
    trials = int(min(100_000, max(2_000, 2.5 * bare_rounds[0].per_second * (window + WARMUP_SECONDS))))
    tell_rounds: list[LoadResult] = []
    for index in range(TELL_ROUNDS):
        label = "1-process" if index == 0 else f"1-process-{index}"
        tell_rounds.append(
            tell_throughput(
                server,
                loadgen,
                seconds=window,
                connections=connections,
                trials=trials,
                profile=profile if index == 0 else None,
                label=label,
            )
        )
        if index + 1 < TELL_ROUNDS:
            bare_rounds.append(bare_throughput(bare, loadgen, seconds=window, connections=connections))
    return merged(bare_rounds), merged(tell_rounds), trials


def bare_throughput(service: Service, loadgen: LoadGenerator, *, seconds: float, connections: int) -> LoadResult:
    requests = [post("127.0.0.1", f"/insert/{n}", TELL_BODY) for n in range(500_000)]
    result = loadgen.run(service.port, requests, connections=connections, seconds=seconds, warmup=WARMUP_SECONDS)
    if result.errors:
        raise RuntimeError(f"bare phase: {result.errors} errors, statuses {result.statuses}:\n{service.tail()}")
    return result


# --------------------------------------------------------------------------- (c) join


@dataclass
class JoinTimes:
    """Per try: Client() construction, get_study, ask (seconds)."""

    phases: list[tuple[float, float, float]] = field(default_factory=list)

    @property
    def totals(self) -> list[float]:
        return [sum(p) for p in self.phases]

    def median_of(self, index: int) -> float:
        return statistics.median(p[index] for p in self.phases)


def completed_study(service: Service, loadgen: LoadGenerator, trials: int, connections: int) -> str:
    """A new study holding `trials` completed trials: asks of 1,000, then concurrent tells."""
    name = f"join-{secrets.token_hex(3)}"
    with Client(service.url) as admin:
        admin.create_study(name=name, if_exists="get", **SPEC)
    numbers = active_trials(service.url, name, trials)
    result = loadgen.run(service.port, tell_requests(name, numbers), connections=connections, seconds=300)
    if result.requests != trials or result.errors:
        raise RuntimeError(f"join study: {result.requests} of {trials} tells, statuses {result.statuses}")
    with Client(service.url) as admin:
        counts = admin.get_study(name).trial_counts or {}
    if counts.get("completed") != trials:
        raise RuntimeError(f"join study holds {counts}, not {trials} completed trials")
    return name


def join_latency(url: str, name: str, tries: int) -> JoinTimes:
    """A brand-new Client's first ask: Client(url), get_study, ask; `tries` times, one after the other."""
    times = JoinTimes()
    for _ in range(tries):
        t0 = time.perf_counter()
        client = Client(url)
        t1 = time.perf_counter()
        study = client.get_study(name)
        t2 = time.perf_counter()
        study.ask()
        t3 = time.perf_counter()
        client.close()
        times.phases.append((t1 - t0, t2 - t1, t3 - t2))
    return times


def optuna_join(storage: str, trials: int, tries: int) -> list[float]:
    """Optuna's equivalent: load_study + ask (+ the suggests that give the params) on a study of `trials`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = f"join-{secrets.token_hex(3)}"
    study = optuna.create_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler())
    distributions = {
        "lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
        "layers": optuna.distributions.IntDistribution(1, 8),
        "act": optuna.distributions.CategoricalDistribution(["relu", "gelu"]),
    }
    for start in range(0, trials, 500):
        study.add_trials(
            [
                optuna.trial.create_trial(
                    params={"lr": 0.01, "layers": 2, "act": "relu"}, distributions=distributions, value=0.5
                )
                for _ in range(min(500, trials - start))
            ]
        )
    times = []
    for _ in range(tries):
        started = time.perf_counter()
        joined = optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler())
        trial = joined.ask()
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        trial.suggest_int("layers", 1, 8)
        trial.suggest_categorical("act", ["relu", "gelu"])
        times.append(time.perf_counter() - started)
    return times


# --------------------------------------------------------------------------- report


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def p50_p99(latencies: list[float]) -> str:
    return f"{ms(percentile(latencies, 50))} / {ms(percentile(latencies, 99))}" if latencies else "-"


@dataclass
class Results:
    ours: dict[int, RoundTrips] = field(default_factory=dict)
    theirs: dict[int, RoundTrips] = field(default_factory=dict)
    ours_two: RoundTrips | None = None
    bare: LoadResult | None = None
    tells: LoadResult | None = None
    tells_two: LoadResult | None = None
    join: JoinTimes | None = None
    optuna_join: list[float] | None = None
    routes: dict[str, list[float]] | None = None
    route_clients: int = 16


def table(results: Results, args: argparse.Namespace) -> str:
    """The final Markdown table: measure, asktell, peer, ratio, target, met."""
    rows: list[list[str]] = []
    target_clients = 16 if 16 in results.ours else max(results.ours)
    for clients, ours in sorted(results.ours.items()):
        theirs = results.theirs.get(clients)
        ratio = ours.per_second / theirs.per_second if theirs and theirs.per_second else None
        is_target = clients == target_clients
        rows.append(
            [
                f"ask+tell round trips/s, SDK, {clients} client(s) (peer: Optuna RDB)",
                f"{ours.per_second:.0f}",
                f"{theirs.per_second:.1f}" if theirs else "skipped",
                f"{ratio:.1f}x" if ratio else "-",
                ">= 10x" if is_target else "-",
                ("yes" if ratio >= 10 else "no") if is_target and ratio else ("n/a" if is_target else "-"),
            ]
        )
        rows.append(
            [
                f"round trip p50 / p99 ms, {clients} client(s)",
                p50_p99(ours.latencies),
                p50_p99(theirs.latencies) if theirs else "-",
                "-",
                "-",
                "-",
            ]
        )
    if results.ours_two is not None:
        theirs = results.theirs.get(target_clients)
        ratio = results.ours_two.per_second / theirs.per_second if theirs and theirs.per_second else None
        rows.append(
            [
                f"ask+tell round trips/s, {target_clients} clients, asktell --workers 2",
                f"{results.ours_two.per_second:.0f}",
                f"{theirs.per_second:.1f}" if theirs else "skipped",
                f"{ratio:.1f}x" if ratio else "-",
                "-",
                "-",
            ]
        )
        rows.append(
            [
                f"round trip p50 / p99 ms, {target_clients} clients, --workers 2",
                p50_p99(results.ours_two.latencies),
                p50_p99(theirs.latencies) if theirs else "-",
                "-",
                "-",
                "-",
            ]
        )
    bare = results.bare
    assert bare is not None
    for label, tells, target in (("1 API process", results.tells, True), ("--workers 2", results.tells_two, False)):
        if tells is None:
            continue
        ratio = tells.per_second / bare.per_second if bare.per_second else 0.0
        note = " (requests ran out early)" if tells.exhausted else ""
        rows.append(
            [
                f"tell requests/s, {args.connections} connections, {label} (peer: bare FastAPI+asyncpg insert)",
                f"{tells.per_second:.0f}{note}",
                f"{bare.per_second:.0f}",
                f"{ratio:.0%}",
                ">= 50%" if target else "-",
                ("yes" if ratio >= 0.5 else "no") if target else "-",
            ]
        )
        rows.append(
            [f"tell latency p50 / p99 ms, {label}", p50_p99(tells.latencies), p50_p99(bare.latencies), "-", "-", "-"]
        )
    if results.join is not None:
        join_ms = statistics.median(results.join.totals) * 1e3
        peer, ratio = "-", "-"
        if results.optuna_join:
            optuna_ms = statistics.median(results.optuna_join) * 1e3
            peer, ratio = f"{optuna_ms:.1f} (Optuna, {args.optuna_join} trials)", f"{optuna_ms / join_ms:.1f}x faster"
        rows.append(
            [
                f"new client's first ask, study of {JOIN_TRIALS:,} trials, ms (median of {JOIN_TRIES})",
                f"{join_ms:.1f}",
                peer,
                ratio,
                "< 50 ms",
                "yes" if join_ms < 50 else "no",
            ]
        )
        rows.append(
            [
                "  of which Client() / get_study / ask, ms (medians)",
                " / ".join(ms(results.join.median_of(i)) for i in range(3)),
                "-",
                "-",
                "-",
                "-",
            ]
        )
    for route, latencies in (results.routes or {}).items():
        rows.append(
            [
                f"{route} p50 / p99 ms, {results.route_clients} clients, 1 API process ({len(latencies)} calls)",
                p50_p99(latencies),
                "-",
                "-",
                "-",
                "-",
            ]
        )
    return markdown_table(["measure", "asktell", "peer", "ratio", "target", "met"], rows)


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (default 10)")
    parser.add_argument("--clients", default="1,16", help="comma-separated SDK/Optuna thread counts (default 1,16)")
    parser.add_argument("--connections", type=int, default=32, help="load generator connections for (b)")
    parser.add_argument("--skip-optuna", action="store_true", help="measure asktell only")
    parser.add_argument(
        "--optuna-join",
        type=int,
        default=0,
        metavar="N",
        help="also time Optuna's load_study + ask on a study of N trials (slow to build)",
    )
    parser.add_argument(
        "--database-url-admin", default=DEFAULT_ADMIN_URL, help="a database to CREATE/DROP the throwaway databases from"
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        metavar="DIR",
        help="record the asktell server with py-spy during the tell phases (raw stacks into DIR)",
    )
    args = parser.parse_args()
    args.client_counts = sorted({int(c) for c in args.clients.split(",") if c.strip()})
    if not args.client_counts or min(args.client_counts) < 1 or not 0 < args.duration <= 600:
        parser.error("--clients needs positive integers and --duration must be in (0, 600]")
    return args


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: servers stopped, databases dropped


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    os.environ.update(SUBPROCESS_ENV)  # every child: servers, the load generator, py-spy
    started = time.monotonic()
    load_before = os.getloadavg()
    results = Results()
    admin = args.database_url_admin
    with contextlib.ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="asktell-bench-")))
        loadgen = stack.enter_context(LoadGenerator())
        ours_url = stack.enter_context(scratch_database(admin))
        bare_url = stack.enter_context(scratch_database(admin))
        optuna_url = None if args.skip_optuna else stack.enter_context(scratch_database(admin))
        storage = optuna_url.replace("postgresql://", "postgresql+psycopg://", 1) if optuna_url else None

        with asktell_server(ours_url, logs) as server:
            # (a) alternately, so that background load hits both alike
            for clients in args.client_counts:
                print(f"(a) asktell, {clients} client(s) ...", file=sys.stderr, flush=True)
                results.ours[clients] = asktell_round_trips(server.url, clients, args.duration)
                if storage:
                    print(f"(a) Optuna, {clients} thread(s) ...", file=sys.stderr, flush=True)
                    results.theirs[clients] = optuna_round_trips(storage, clients, args.duration)
            # (b) the ceiling first (it sizes how many trials a tell round needs), then alternately
            print(f"(b) bare FastAPI + asyncpg insert and asktell tell, {TELL_ROUNDS} rounds ...", file=sys.stderr)
            with bare_server(bare_url, logs) as bare:
                results.bare, results.tells, round_trials = alternated_tells(
                    server, bare, loadgen, seconds=args.duration, connections=args.connections, profile=args.py_spy
                )
            trials = round_trials * TELL_ROUNDS
            # (d)
            results.route_clients = max(args.client_counts)
            print(f"(d) per route, {results.route_clients} clients ...", file=sys.stderr, flush=True)
            results.routes = route_latencies(server.url, results.route_clients, args.duration)
            # (c)
            print(f"(c) join: building a study of {JOIN_TRIALS} completed trials ...", file=sys.stderr, flush=True)
            name = completed_study(server, loadgen, JOIN_TRIALS, args.connections)
            results.join = join_latency(server.url, name, JOIN_TRIES)
            if storage and args.optuna_join:
                print(f"(c) Optuna join on {args.optuna_join} trials ...", file=sys.stderr, flush=True)
                results.optuna_join = optuna_join(storage, args.optuna_join, JOIN_TRIES)

        with asktell_server(ours_url, logs, workers=2) as server:
            print("(b) asktell tell, --workers 2 ...", file=sys.stderr, flush=True)
            results.tells_two = tell_throughput(
                server,
                loadgen,
                seconds=args.duration,
                connections=args.connections,
                trials=trials,
                profile=args.py_spy,
                label="2-workers",
            )
            clients = 16 if 16 in args.client_counts else max(args.client_counts)
            print(f"(a) asktell --workers 2, {clients} clients ...", file=sys.stderr, flush=True)
            results.ours_two = asktell_round_trips(server.url, clients, args.duration)

    print()
    print(table(results, args))
    load_after = os.getloadavg()
    print(
        f"\n{os.cpu_count()} CPUs; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
        f"{args.duration:.0f} s per measurement after {WARMUP_SECONDS:.0f} s of warm-up (b); "
        f"total {time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
