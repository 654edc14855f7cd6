"""API throughput on PostgreSQL, against Optuna and against a bare asyncpg endpoint.

(a) ask+tell round trips per second and p50/p99 of one round trip through the SDK, with 1 and 16
    concurrent clients (threads, one Client each), `random` engine; Optuna (RDB storage on the same
    PostgreSQL, RandomSampler, ask+tell) with the same thread counts.
(b) requests per second of the tell endpoint (distinct active trials prepared beforehand) against
    `bare_insert_app.py`, a FastAPI endpoint inserting one row through asyncpg: the same load
    generator (loadgen.py, raw keep-alive HTTP/1.1, 32 connections, its own process) drives both.
(c) a client joining a study that already holds 5,000 completed trials: Client() + get_study + first
    ask, median of 20.

    python benchmarks/api_throughput.py [--duration 10] [--clients 1,16] [--skip-optuna] [--optuna-join N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from asktell import Client
from benchmarks.harness import REPO, fleet, free_port, markdown_table, percentile, scratch_database
from benchmarks.loadgen import LoadResult, drive, post

SPEC: dict[str, Any] = {
    "params": [{"name": "lr", "type": "float", "low": 1e-4, "high": 1e-1, "log": True},
               {"name": "layers", "type": "int", "low": 1, "high": 8},
               {"name": "act", "type": "categorical", "choices": ["relu", "gelu"]}],
    "objectives": [{"name": "loss", "goal": "minimize"}],
    "engine": "random",
}


def round_trips(clients: int, seconds: float, one: Any) -> tuple[float, list[float]]:
    """Run `one()` in `clients` threads for `seconds`; round trips per second and latencies."""
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def loop(index: int) -> None:
        state = one(index)
        barrier.wait()
        deadline = time.monotonic() + seconds
        mine = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            state()
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(loop, range(clients)))
    return len(latencies) / seconds, latencies


def asktell_round_trips(url: str, clients: int, seconds: float) -> tuple[float, list[float]]:
    name = f"rt-{clients}-{secrets.token_hex(3)}"
    Client(url).create_study(name=name, **SPEC)

    def make(index: int) -> Any:
        study = Client(url).get_study(name)

        def once() -> None:
            (trial,) = study.ask()
            trial.tell({"loss": trial.params["lr"]})

        return once

    return round_trips(clients, seconds, make)


def optuna_round_trips(storage: str, clients: int, seconds: float) -> tuple[float, list[float]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = f"rt-{clients}-{secrets.token_hex(3)}"
    optuna.create_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler())

    def make(index: int) -> Any:
        study = optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler())

        def once() -> None:
            trial = study.ask()
            lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
            trial.suggest_int("layers", 1, 8)
            trial.suggest_categorical("act", ["relu", "gelu"])
            study.tell(trial, lr)

        return once

    return round_trips(clients, seconds, make)


def _drive_in_process(args: tuple[str, int, list[bytes], int, float]) -> LoadResult:
    return drive(*args)


def load(port: int, requests: list[bytes], seconds: float, connections: int = 32) -> LoadResult:
    """Run the load generator in its own process, so it does not share a core with this one."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_drive_in_process, (("127.0.0.1", port, requests, connections, seconds),))


def tell_throughput(url: str, seconds: float) -> LoadResult:
    name = f"tell-{secrets.token_hex(3)}"
    Client(url).create_study(name=name, **SPEC)
    numbers: list[int] = []
    with httpx.Client(base_url=url, timeout=120) as api:
        while len(numbers) < 20_000:
            response = api.post(f"/v1/studies/{name}/ask", json={"count": 1000})
            numbers += [t["number"] for t in response.json()["trials"]]
    port = int(url.rsplit(":", 1)[1])
    requests = [post("127.0.0.1", f"/v1/studies/{name}/trials/{n}/tell", b'{"values": {"loss": 0.5}}')
                for n in numbers]
    return load(port, requests, seconds)


def bare_throughput(database_url: str, seconds: float) -> LoadResult:
    port = free_port()
    env = {**os.environ, "ASKTELL_BARE_DSN": database_url}
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "benchmarks.bare_insert_app:app", "--port", str(port),
                                "--log-level", "warning", "--no-access-log"], cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(f"http://127.0.0.1:{port}/insert/0", json={"values": {"loss": 0.5}}, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        requests = [post("127.0.0.1", f"/insert/{n}", b'{"values": {"loss": 0.5}}') for n in range(200_000)]
        return load(port, requests, seconds)
    finally:
        process.terminate()
        process.wait()


def join_latency(url: str, trials: int = 5000, tries: int = 20) -> list[float]:
    name = f"join-{secrets.token_hex(3)}"
    Client(url).create_study(name=name, **SPEC)
    with httpx.Client(base_url=url, timeout=120) as api:
        numbers: list[int] = []
        while len(numbers) < trials:
            count = min(1000, trials - len(numbers))
            response = api.post(f"/v1/studies/{name}/ask", json={"count": count})
            numbers += [t["number"] for t in response.json()["trials"]]
    port = int(url.rsplit(":", 1)[1])
    load(port, [post("127.0.0.1", f"/v1/studies/{name}/trials/{n}/tell", b'{"values": {"loss": 0.5}}')
                for n in numbers], 600)
    times = []
    for _ in range(tries):
        started = time.perf_counter()
        with Client(url) as client:
            client.get_study(name).ask()
        times.append(time.perf_counter() - started)
    return times


def optuna_join(storage: str, trials: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = f"join-{secrets.token_hex(3)}"
    study = optuna.create_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler())
    for _ in range(trials):
        trial = study.ask()
        study.tell(trial, trial.suggest_float("lr", 1e-4, 1e-1, log=True))
    started = time.perf_counter()
    optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler()).ask()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--clients", default="1,16")
    parser.add_argument("--skip-optuna", action="store_true")
    parser.add_argument("--optuna-join", type=int, default=0, help="also time Optuna joining a study of N trials")
    args = parser.parse_args()
    client_counts = [int(c) for c in args.clients.split(",")]
    rows: list[list[Any]] = []

    with scratch_database() as database_url:
        with fleet(database_url) as running:
            url = running.start_server()
            ours = {c: asktell_round_trips(url, c, args.duration) for c in client_counts}
            tells = tell_throughput(url, args.duration)
            join = join_latency(url)
        with fleet(database_url) as running:
            url = running.start_server("--workers", "2", env={"ASKTELL_MIGRATE_ON_START": "false"})
            tells_two = tell_throughput(url, args.duration)
            ours_two = asktell_round_trips(url, max(client_counts), args.duration)
    with scratch_database() as bare_url:
        bare = bare_throughput(bare_url, args.duration)
    theirs: dict[int, tuple[float, list[float]]] = {}
    optuna_join_seconds = None
    if not args.skip_optuna:
        with scratch_database() as optuna_url:
            storage = optuna_url.replace("postgresql://", "postgresql+psycopg://", 1)
            theirs = {c: optuna_round_trips(storage, c, args.duration) for c in client_counts}
            if args.optuna_join:
                optuna_join_seconds = optuna_join(storage, args.optuna_join)

    for c in client_counts:
        rate, latencies = ours[c]
        peer = theirs.get(c)
        rows.append([f"ask+tell round trips/s, {c} client(s)", f"{rate:.0f}", f"{peer[0]:.0f}" if peer else "-",
                     f"{rate / peer[0]:.1f}x" if peer else "-", ">= 10x Optuna at 16" if c == 16 else "",
                     ("yes" if rate >= 10 * peer[0] else "no") if peer and c == 16 else ""])
        rows.append([f"round trip p50 / p99 ms, {c} client(s)",
                     f"{percentile(latencies, 50) * 1e3:.1f} / {percentile(latencies, 99) * 1e3:.1f}",
                     f"{percentile(peer[1], 50) * 1e3:.1f} / {percentile(peer[1], 99) * 1e3:.1f}" if peer else "-",
                     "", "", ""])
    rate_two, _ = ours_two
    rows.append([f"ask+tell round trips/s, {max(client_counts)} clients, --workers 2", f"{rate_two:.0f}",
                 "", "", "", ""])
    for label, result in (("tell requests/s (1 API process)", tells), ("tell requests/s (--workers 2)", tells_two)):
        ratio = result.per_second / bare.per_second
        rows.append([label, f"{result.per_second:.0f}", f"{bare.per_second:.0f} (bare asyncpg insert)",
                     f"{ratio:.0%}", ">= 50%", "yes" if ratio >= 0.5 else "no"])
        assert result.errors == 0, result.statuses
    join_ms = statistics.median(join) * 1e3
    rows.append(["first ask of a new client, study of 5,000 trials (ms, median)", f"{join_ms:.1f}",
                 f"{optuna_join_seconds * 1e3:.0f} (Optuna, {args.optuna_join} trials)" if optuna_join_seconds
                 else "-", "", "< 50 ms", "yes" if join_ms < 50 else "no"])
    print()
    print(markdown_table(["measure", "asktell", "peer", "ratio", "target", "met"], rows))


if __name__ == "__main__":
    main()
