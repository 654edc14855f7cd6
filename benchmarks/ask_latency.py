"""How fast is an ask on a `gp` study, and how much does the service add to the model's own cost?

For d in (6, 20) and n completed trials in (50, 200, 1000), on PostgreSQL with one worker process
(one torch thread, like the floor):
  (a) p50/p95 of `study.ask()` through the SDK when the ready pool holds a fresh suggestion;
  (b) a fresh suggestion through the service: ask on a study whose pool is off, so the ask waits
      for a worker to fit the GP and optimize qLogNEI;
  (c) the raw BoTorch floor in this process: SingleTaskGP fit + qLogNEI optimize_acqf, same
      settings (raw_samples=1024, num_restarts=10), on the same data, one thread;
and (b)/(c). With --ax, Ax's default generation strategy's time per ask at n=200, d=6.
With --scaling SECONDS: (d) fresh suggestions per minute on two `gp` studies (d=6, n=200, pool off), one
client thread per study asking and telling for SECONDS, first with one worker process, then with two (the
target: throughput scales with the workers).

    python benchmarks/ask_latency.py [--sizes 50,200,1000] [--dims 6,20] [--pool-reps 10] [--fresh-reps 3] [--ax]
        [--scaling SECONDS]
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import statistics
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import numpy as np
import torch

from asktell import Client
from benchmarks.harness import fleet, markdown_table, percentile, scratch_database

warnings.filterwarnings("ignore")
OPTIONS = {"raw_samples": 1024, "num_restarts": 10, "initial_design": 10}


def objective(params: dict[str, float]) -> float:
    """A smooth bowl with a little noise: the benchmark measures time, not regret."""
    x = np.array(list(params.values()))
    return float(((x - 0.3) ** 2).sum() + 0.01 * np.random.default_rng(abs(hash(tuple(x)))).normal())


def make_study(client: Client, d: int, n: int, pool: bool) -> tuple[object, np.ndarray, np.ndarray]:
    study = client.create_study(
        name=f"lat-{d}-{n}-{'pool' if pool else 'fresh'}-{secrets.token_hex(3)}",
        params=[{"name": f"x{i}", "type": "float", "low": 0.0, "high": 1.0} for i in range(d)],
        objectives=[{"name": "loss", "goal": "minimize"}],
        engine="gp",
        engine_options={**OPTIONS, "pool_max": 1 if pool else 0},
    )
    rng = np.random.default_rng(d * 10_000 + n)
    X = rng.random((n, d))
    Y = np.array([objective({f"x{i}": v for i, v in enumerate(row)}) for row in X])

    def add(i: int) -> None:
        study.add_trial(params={f"x{j}": float(v) for j, v in enumerate(X[i])}, values={"loss": float(Y[i])})

    with ThreadPoolExecutor(8) as pool_:
        list(pool_.map(add, range(n)))
    return study, X, Y


def wait_for_pool(url: str, name: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(f"{url}/v1/studies/{name}/engine", timeout=30).json()
        busy = status["jobs"].get("queued", 0) + status["jobs"].get("running", 0)
        if status["pool_size"] >= 1 and not busy:
            return
        time.sleep(0.02)
    raise TimeoutError("pool never refilled")


def pool_latencies(url: str, client: Client, d: int, n: int, reps: int) -> list[float]:
    study, _, _ = make_study(client, d, n, pool=True)
    times = []
    for _ in range(reps):
        wait_for_pool(url, study.name)
        started = time.perf_counter()
        (trial,) = study.ask(worker_id="bench")
        times.append(time.perf_counter() - started)
        trial.tell({"loss": objective(trial.params)})
    wait_for_pool(url, study.name)  # leave the worker idle for the next measurement
    return times


def fresh_latencies(client: Client, d: int, n: int, reps: int) -> tuple[list[float], np.ndarray, np.ndarray]:
    study, X, Y = make_study(client, d, n, pool=False)
    study.ask(worker_id="bench")[0].tell({"loss": 1.0})  # the study's first fit has no warm start: not timed
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        (trial,) = study.ask(worker_id="bench")
        times.append(time.perf_counter() - started)
        trial.tell({"loss": objective(trial.params)})
    return times, X, Y


def botorch_floor(X: np.ndarray, Y: np.ndarray, reps: int) -> list[float]:
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models.gp_regression import SingleTaskGP
    from botorch.optim.optimize import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    train_X = torch.tensor(X, dtype=torch.float64)
    train_Y = -torch.tensor(Y, dtype=torch.float64).unsqueeze(-1)
    bounds = torch.stack([torch.zeros(X.shape[1]), torch.ones(X.shape[1])]).to(train_X)
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        model = SingleTaskGP(train_X, train_Y)
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        acquisition = qLogNoisyExpectedImprovement(model, X_baseline=train_X, prune_baseline=True)
        optimize_acqf(
            acquisition,
            bounds,
            q=1,
            num_restarts=OPTIONS["num_restarts"],
            raw_samples=OPTIONS["raw_samples"],
            timeout_sec=120,
        )
        times.append(time.perf_counter() - started)
    return times


def ax_ask_seconds(X: np.ndarray, Y: np.ndarray, reps: int) -> list[float]:
    from ax.api.client import Client as AxClient
    from ax.api.configs import RangeParameterConfig

    ax = AxClient()
    for name in list(logging.root.manager.loggerDict):  # Ax's loggers carry levels of their own
        if name.startswith("ax"):
            logging.getLogger(name).setLevel(logging.WARNING)
    ax.configure_experiment(
        parameters=[
            RangeParameterConfig(name=f"x{i}", bounds=(0.0, 1.0), parameter_type="float") for i in range(X.shape[1])
        ]
    )
    ax.configure_optimization(objective="-loss")
    for row, y in zip(X, Y, strict=True):
        index = ax.attach_trial(parameters={f"x{i}": float(v) for i, v in enumerate(row)})
        ax.complete_trial(trial_index=index, raw_data={"loss": float(y)})
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        ((index, params),) = ax.get_next_trials(max_trials=1).items()
        times.append(time.perf_counter() - started)
        ax.complete_trial(trial_index=index, raw_data={"loss": objective(dict(params))})  # type: ignore[arg-type]
    return times


def suggestions_per_minute(client: Client, seconds: float, studies: int = 2) -> float:
    """Fresh suggestions per minute with one client thread per new study (d=6, n=200, pool off) for `seconds`."""
    made = [make_study(client, 6, 200, pool=False)[0] for _ in range(studies)]
    for study in made:  # each study's first fit (no warm start yet): not counted
        study.ask(worker_id="bench")[0].tell({"loss": 1.0})
    deadline = time.monotonic() + seconds

    def loop(study: Any) -> int:
        done = 0
        while time.monotonic() < deadline:
            (trial,) = study.ask(worker_id="bench")
            trial.tell({"loss": objective(trial.params)})
            done += 1
        return done

    started = time.monotonic()
    with ThreadPoolExecutor(studies) as pool_:
        total = sum(pool_.map(loop, made))
    return 60.0 * total / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50,200,1000")
    parser.add_argument("--dims", default="6,20")
    parser.add_argument("--pool-reps", type=int, default=10)
    parser.add_argument("--fresh-reps", type=int, default=3)
    parser.add_argument("--ax", action="store_true", help="also time Ax's default strategy at n=200, d=6")
    parser.add_argument("--scaling", type=float, default=0.0, metavar="SECONDS", help="(d): 1 then 2 workers")
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows = []
    ax_times: list[float] = []
    with scratch_database() as database_url, fleet(database_url) as running:
        url = running.start_server()
        running.start_worker(threads=1)
        client = Client(url)
        for d in map(int, args.dims.split(",")):
            for n in map(int, args.sizes.split(",")):
                pool = pool_latencies(url, client, d, n, args.pool_reps)
                fresh, X, Y = fresh_latencies(client, d, n, args.fresh_reps)
                floor = botorch_floor(X, Y, args.fresh_reps)
                ratio = statistics.median(fresh) / statistics.median(floor)
                rows.append(
                    [
                        d,
                        n,
                        f"{percentile(pool, 50) * 1000:.1f}",
                        f"{percentile(pool, 95) * 1000:.1f}",
                        f"{statistics.median(fresh):.2f}",
                        f"{statistics.median(floor):.2f}",
                        f"{ratio:.2f}",
                    ]
                )
                print(rows[-1], flush=True)
                if args.ax and d == 6 and n == 200:
                    ax_times = ax_ask_seconds(X, Y, args.fresh_reps)
        scaling: list[float] = []
        if args.scaling:
            scaling.append(suggestions_per_minute(client, args.scaling))
            running.start_worker(threads=1)
            scaling.append(suggestions_per_minute(client, args.scaling))
    print()
    print(
        markdown_table(
            ["d", "n", "(a) pool ask p50 ms", "(a) p95 ms", "(b) fresh s", "(c) BoTorch floor s", "(b)/(c)"], rows
        )
    )
    print("\ntargets: (a) p50 <= 15 ms; (b)/(c) <= 1.2; (b) at n=200, d=6 faster than Ax's default strategy")
    if ax_times:
        ours = next(float(r[4]) for r in rows if r[0] == 6 and r[1] == 200)
        print(
            f"Ax default generation strategy, n=200, d=6: {statistics.median(ax_times):.2f} s per ask "
            f"(asktell fresh: {ours:.2f} s)"
        )
    if scaling:
        print(
            f"(d) fresh suggestions per minute, two studies (d=6, n=200): {scaling[0]:.1f} with one worker, "
            f"{scaling[1]:.1f} with two ({scaling[1] / scaling[0]:.2f}x)"
        )


if __name__ == "__main__":
    main()
