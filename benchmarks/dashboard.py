"""Dashboard on a 50,000-trial study: every page and view, server time and wall time.

Studies are created through the API, then 50,000 completed trials (spread over 16 workers, with three
measurements each for the latest 500) are inserted directly with COPY. Each page is fetched --repeats
times after one warm-up; the table shows the median and worst of the server's own time (its
Server-Timing header) and of the client's wall time on loopback. Targets: study page and each analysis
view under 2 s, table pages under 200 ms.

    python benchmarks/dashboard.py [--trials 50000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import fleet, markdown_table, scratch_database

SINGLE = {
    "params": [
        {"name": "lr", "type": "float", "low": 1e-5, "high": 1e-1, "log": True},
        {"name": "layers", "type": "int", "low": 1, "high": 8},
        {"name": "dropout", "type": "float", "low": 0.0, "high": 0.5},
        {"name": "width", "type": "int", "low": 16, "high": 1024, "log": True},
        {"name": "act", "type": "categorical", "choices": ["relu", "gelu", "tanh"]},
    ],
    "objectives": [{"name": "loss", "goal": "minimize"}],
    "constraints": [{"name": "memory_gb", "op": "<=", "bound": 12}],
    "fidelity": {"name": "epoch", "min": 1, "max": 3},
    "engine": "random",
}
PARETO = {
    **SINGLE,
    "objectives": [{"name": "loss", "goal": "minimize"}, {"name": "train_seconds", "goal": "minimize", "cost": True}],
    "constraints": [],
    "fidelity": None,
}


def insert_trials(database_url: str, study_id: int, count: int, objectives: list[str], with_curves: int) -> None:
    rng = random.Random(study_id)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with psycopg.connect(database_url) as conn, conn.cursor() as cursor:
        with cursor.copy(
            "COPY trials (study_id, number, params, state, values, source, budget, worker_id, "
            "created_at, started_at, finished_at, updated_at) FROM STDIN"
        ) as copy:
            for number in range(count):
                params = {
                    "lr": 10 ** rng.uniform(-5, -1),
                    "layers": rng.randint(1, 8),
                    "dropout": rng.random() / 2,
                    "width": rng.randint(16, 1024),
                    "act": rng.choice(["relu", "gelu", "tanh"]),
                }
                loss = 0.1 + abs(params["lr"] - 0.01) * 10 + rng.random() * 0.5
                values = {"loss": loss, "memory_gb": rng.uniform(1, 16), "train_seconds": rng.uniform(10, 1000)}
                values = {k: v for k, v in values.items() if k in objectives or k == "memory_gb"}
                at = start + timedelta(seconds=number * 30)
                copy.write_row(
                    (
                        study_id,
                        number,
                        json.dumps(params),
                        "completed",
                        json.dumps(values),
                        "random",
                        3.0,
                        f"worker-{number % 16}",
                        at,
                        at,
                        at + timedelta(seconds=20),
                        at + timedelta(seconds=20),
                    )
                )
        cursor.execute("UPDATE studies SET next_trial_number = %s WHERE id = %s", (count, study_id))
        if with_curves:
            cursor.execute(
                "SELECT id FROM trials WHERE study_id = %s ORDER BY number DESC LIMIT %s", (study_id, with_curves)
            )
            ids = [row[0] for row in cursor.fetchall()]
            with cursor.copy("COPY measurements (trial_id, step, values, created_at) FROM STDIN") as copy:
                for trial_id in ids:
                    for epoch in (1, 2, 3):
                        copy.write_row((trial_id, float(epoch), json.dumps({"loss": 1 / epoch + rng.random()}), start))
        cursor.execute("ANALYZE trials")
        cursor.execute("ANALYZE measurements")


def measure(client: httpx.Client, path: str, repeats: int) -> tuple[float, list[float], list[float], int]:
    """The server time of the first request (the warm-up), then server and wall times of `repeats` more."""
    first = client.get(path)
    first.raise_for_status()
    server, wall = [], []
    size = 0
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(path)
        wall.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        size = len(response.content)
        timing = response.headers["Server-Timing"]
        server.append(float(timing.split("dur=")[1]))
    return float(first.headers["Server-Timing"].split("dur=")[1]), server, wall, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with scratch_database() as database_url, fleet(database_url) as running:
        url = running.start_server()
        client = httpx.Client(base_url=url, timeout=120)
        for name, spec, objectives, curves in (
            ("big-single", SINGLE, ["loss"], 500),
            ("big-pareto", PARETO, ["loss", "train_seconds"], 0),
        ):
            created = client.post("/v1/studies", json={"name": name, **spec})
            created.raise_for_status()
            started = time.perf_counter()
            insert_trials(
                database_url.replace("postgresql+asyncpg", "postgresql"),
                created.json()["id"],
                args.trials,
                objectives,
                curves,
            )
            print(f"inserted {args.trials} trials into {name} in {time.perf_counter() - started:.1f} s", flush=True)
        pages = [
            ("studies list", "/ui"),
            ("importance (1 objective)", "/ui/studies/big-single/importance"),
            ("importance (2 objectives)", "/ui/studies/big-pareto/importance"),
            ("contour (two most important, found first)", "/ui/studies/big-single/contour"),
            ("contour (lr by act, chosen)", "/ui/studies/big-single/contour?x=lr&y=act"),
            ("EDF (2 objectives)", "/ui/studies/big-pareto/edf"),
            ("timeline (latest 2,000 trials, 16 workers)", "/ui/studies/big-single/timeline"),
            (
                "compare 12 trials",
                "/ui/studies/big-single/compare?trials="
                + ",".join(str(n) for n in range(args.trials - 12, args.trials)),
            ),
            ("trial page (Pareto-optimal check)", "/ui/studies/big-pareto/trials/123"),
            ("study page (1 objective, constraint, 500 curves)", "/ui/studies/big-single"),
            ("study page (2 objectives: front, hypervolume)", "/ui/studies/big-pareto"),
            (
                "study page, every axis switched",
                "/ui/studies/big-pareto?log=value:loss&linear=value:train_seconds&log=param:dropout&linear=param:lr",
            ),
            ("table: first page", "/ui/studies/big-single/table"),
            ("table: page 500 (offset 24,950)", "/ui/studies/big-single/table?page=500"),
            ("table: sorted by loss", "/ui/studies/big-single/table?sort=value:loss"),
            ("table: sorted by lr, descending, page 200", "/ui/studies/big-single/table?sort=param:lr&desc=1&page=200"),
            (
                "table: completed, 2 <= layers <= 3, by loss",
                "/ui/studies/big-single/table?state=completed&range_field=param:layers&range_min=2&range_max=3"
                "&sort=value:loss",
            ),
        ]
        rows = []
        for label, path in pages:
            first, server, wall, size = measure(client, path, args.repeats)
            rows.append(
                [
                    label,
                    f"{first:.0f}",
                    f"{statistics.median(server):.0f}",
                    f"{max(server):.0f}",
                    f"{statistics.median(wall):.0f}",
                    f"{size / 1024:.0f}",
                ]
            )
            print(f"{label}: server {statistics.median(server):.0f} ms", flush=True)
    print(f"\n{args.trials} trials per study, {args.repeats} requests per page after a warm-up (PostgreSQL)")
    print(
        "The first request of a page is the first read of a study's completed trials unless an earlier page of\n"
        "the same study read them since its last completed trial (the analysis views share what they parsed)."
    )
    print(
        markdown_table(
            ["page", "server ms (first)", "server ms (median)", "server ms (max)", "wall ms (median)", "KiB"], rows
        )
    )


if __name__ == "__main__":
    main()
