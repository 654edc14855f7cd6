"""Load: many simulated training jobs ask, report and tell against PostgreSQL, then an audit of what was stored.

Each job is an SDK AsyncClient of its own (as separate training jobs would be) in a loop: ask for a trial, report
`--steps` intermediate values, tell the final value. A share of the jobs (`--gp-share`) works on a `gp` study
computed by one engine worker process, the rest on a `random` study, side by side. Every HTTP request is timed at
the transport, per route. At the end, the audit reads every trial back and checks that it is exactly what the
clients did: the same trials handed out, each completed with the value told and every step reported.

    python benchmarks/load.py [--seconds 60] [--jobs 200] [--gp-share 0.1] [--steps 3] [--api-workers 1]
        [--database-url postgresql://...] [--json results.json]

Without --database-url a fresh database is created on the local PostgreSQL (ASKTELL_TEST_DATABASE_URL, default
postgresql://postgres@127.0.0.1:5432/postgres) and dropped afterwards. Exits 1 if any request failed or the
audit found a difference.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from asktell import AsyncClient, AsyncStudy
from benchmarks.harness import DEFAULT_ADMIN_URL, fleet, percentile, scratch_database

ADMIN_URL = os.environ.get("ASKTELL_TEST_DATABASE_URL", DEFAULT_ADMIN_URL)
PARAMS = [
    {"name": "x", "type": "float", "low": 0.0, "high": 1.0},
    {"name": "y", "type": "float", "low": 1e-4, "high": 1.0, "log": True},
    {"name": "depth", "type": "int", "low": 1, "high": 8},
]
ROUTE_TEMPLATES = [
    (re.compile(p), name)
    for p, name in ((r"/ask$", "ask"), (r"/jobs/\d+$", "poll job"), (r"/report$", "report"), (r"/tell$", "tell"))
]


def loss(params: dict[str, Any], step: int, steps: int) -> float:
    base = (params["x"] - 0.3) ** 2 + 0.1 * abs(math.log10(params["y"]) + 2) + 0.01 * params["depth"]
    return round(base + 1.0 / (step + 1), 12) if step < steps else round(base, 12)


@dataclass
class Recorder:
    """Latencies per (study, route) and failed requests, filled by the timing transport."""

    latencies: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    errors: list[str] = field(default_factory=list)


class TimingTransport(httpx.AsyncBaseTransport):
    def __init__(self, recorder: Recorder) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.recorder = recorder

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        route = next((name for pattern, name in ROUTE_TEMPLATES if pattern.search(path)), "other")
        study = "gp" if "/load-gp/" in path else "random"
        started = time.perf_counter()
        try:
            response = await self.inner.handle_async_request(request)
            await response.aread()
        except httpx.HTTPError as error:
            self.recorder.errors.append(f"{route}: {type(error).__name__}")
            raise
        self.recorder.latencies[(study, route)].append(time.perf_counter() - started)
        self.recorder.statuses[response.status_code] += 1
        if response.status_code >= 400:
            self.recorder.errors.append(f"{route}: HTTP {response.status_code} {response.text[:200]}")
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Told:
    study: str
    number: int
    value: float
    steps: int


async def training_job(
    url: str, study_name: str, steps: int, deadline: float, recorder: Recorder, told: list[Told]
) -> None:
    """One training job: ask, report each step, tell; until the deadline (the trial in hand is finished)."""
    async with AsyncClient(url, transport=TimingTransport(recorder), max_retries=0, timeout=120) as client:
        study = AsyncStudy(client, {"name": study_name, "id": 0, "state": "active", "engine": "", "spec": {}})
        while time.monotonic() < deadline:
            try:
                (trial,) = await study.ask(timeout=120)
                for step in range(1, steps + 1):
                    await trial.report(step, {"loss": loss(trial.params, step, steps)})
                value = loss(trial.params, steps, steps)
                await trial.tell({"loss": value})
            except Exception as error:  # counted by the transport; keep the job going like a real one would
                recorder.errors.append(f"job: {type(error).__name__}: {error}")
                await asyncio.sleep(0.5)
                continue
            told.append(Told(study_name, trial.number, value, steps))


async def audit(url: str, told: list[Told]) -> list[str]:
    """Differences between what the clients did and what the server stored (empty: none)."""
    problems: list[str] = []
    async with AsyncClient(url, timeout=120) as client:
        for name in ("load-random", "load-gp"):
            study = await client.get_study(name)
            stored = {t.number: t for t in await study.trials(measurements=True)}
            mine = {t.number: t for t in told if t.study == name}
            if set(stored) != set(mine):
                extra, missing = sorted(set(stored) - set(mine)), sorted(set(mine) - set(stored))
                problems.append(f"{name}: trials the clients never finished {extra[:10]}, missing {missing[:10]}")
            for number, mine_told in mine.items():
                trial = stored.get(number)
                if trial is None:
                    continue
                if trial.state != "completed" or trial.values != {"loss": mine_told.value}:
                    problems.append(f"{name} trial {number}: {trial.state} {trial.values}, told {mine_told.value}")
                if len(trial.measurements or []) != mine_told.steps:
                    problems.append(f"{name} trial {number}: {len(trial.measurements or [])} steps stored")
    return problems


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its reaped children, from /proc (Linux); NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(f) for f in fields[11:15]) / ticks  # utime, stime, cutime, cstime


async def run(args: argparse.Namespace, url: str, server_pid: int) -> dict[str, Any]:
    async with AsyncClient(url) as client:
        await client.create_study("load-random", PARAMS, [{"name": "loss", "goal": "minimize"}], engine="random")
        await client.create_study("load-gp", PARAMS, [{"name": "loss", "goal": "minimize"}], engine="gp")
    recorder, told = Recorder(), []
    gp_jobs = round(args.jobs * args.gp_share)
    started = time.monotonic()
    server_cpu, client_cpu = _cpu_seconds(server_pid), time.process_time()
    deadline = started + args.seconds
    await asyncio.gather(
        *(
            training_job(url, "load-gp" if i < gp_jobs else "load-random", args.steps, deadline, recorder, told)
            for i in range(args.jobs)
        )
    )
    elapsed = time.monotonic() - started
    server_cpu, client_cpu = _cpu_seconds(server_pid) - server_cpu, time.process_time() - client_cpu
    problems = await audit(url, told)
    requests = sum(len(v) for v in recorder.latencies.values())
    routes = {
        f"{study} {route}": {
            "count": len(v),
            "p50_ms": round(percentile(v, 50) * 1000, 1),
            "p99_ms": round(percentile(v, 99) * 1000, 1),
            "max_ms": round(max(v) * 1000, 1),
        }
        for (study, route), v in sorted(recorder.latencies.items())
    }
    return {
        "seconds": round(elapsed, 1),
        "jobs": args.jobs,
        "gp_jobs": gp_jobs,
        "requests": requests,
        "requests_per_second": round(requests / elapsed, 1),
        "trials_told": len(told),
        "server_cpu_ms_per_request": round(server_cpu / requests * 1000, 2),
        "client_cpu_ms_per_request": round(client_cpu / requests * 1000, 2),
        "errors": len(recorder.errors),
        "error_samples": recorder.errors[:10],
        "statuses": dict(recorder.statuses),
        "routes": routes,
        "audit_problems": problems,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--gp-share", type=float, default=0.1, help="fraction of the jobs on the gp study")
    parser.add_argument("--steps", type=int, default=3, help="reports per trial before its tell")
    parser.add_argument("--api-workers", type=int, default=1, help="API processes")
    parser.add_argument("--database-url", help="use this database (default: a fresh one, dropped afterwards)")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        database_url = args.database_url or stack.enter_context(scratch_database(ADMIN_URL))
        running = stack.enter_context(fleet(database_url))
        url = running.start_server(
            "--workers", str(args.api_workers), "--log-level", "warning", env={"OMP_NUM_THREADS": "1"}
        )
        running.start_worker()
        results = asyncio.run(run(args, url, running.processes[0].pid))

    print(
        f"{results['jobs']} jobs ({results['gp_jobs']} on gp) for {results['seconds']} s: "
        f"{results['requests']} requests ({results['requests_per_second']}/s), {results['trials_told']} trials told, "
        f"{results['errors']} errors; CPU per request: server {results['server_cpu_ms_per_request']} ms, "
        f"these clients {results['client_cpu_ms_per_request']} ms"
    )
    print(f"{'route':<18} {'count':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for route, row in results["routes"].items():
        print(f"{route:<18} {row['count']:>7} {row['p50_ms']:>8} {row['p99_ms']:>8} {row['max_ms']:>8}")
    print(
        "audit: "
        + (
            "every trial matches what the clients did"
            if not results["audit_problems"]
            else "; ".join(results["audit_problems"][:5])
        )
    )
    for sample in results["error_samples"]:
        print(f"error: {sample}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if results["errors"] or results["audit_problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
