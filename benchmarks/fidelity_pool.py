"""How long does a training job wait for its next run on a `freeze_thaw` study, with and without the ready pool?

On PostgreSQL with one engine worker process (one torch thread), `--jobs` training threads each loop: ask (timed),
train the run epoch by epoch to its budget on a synthetic learning curve (`--epoch-seconds` of sleep per epoch,
reporting every epoch with a checkpoint), then pause there or tell at the fidelity's max. Once the warm-up's Sobol
runs are handed out, every ask needs a decision (which paused run to resume, or which new one to start): without
the pool (`pool_max: 0`) the ask waits for the worker to fit the curve model and plan; with it (the default) the
worker plans ahead after each pause or tell and the ask takes the planned run at once. Prints the ask wait
(p50, p95, max) past the warm-up, how many of those asks waited over 0.5 s, and the epochs trained.

    python benchmarks/fidelity_pool.py [--jobs 4] [--epochs 120] [--epoch-seconds 0.1]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asktell import Client
from benchmarks.harness import fleet, markdown_table, percentile, scratch_database

FIDELITY = {"name": "epoch", "min": 1, "max": 27}
WARMUP = 4


def curve(x: float, y: float, epoch: int) -> float:
    """A learning curve whose asymptote is best near (0.3, 0.6); worse configurations also learn slower."""
    return (x - 0.3) ** 2 + (y - 0.6) ** 2 + (0.3 + x) / epoch


def run(url: str, pool: bool, jobs: int, epochs: int, epoch_seconds: float) -> dict[str, float]:
    with Client(url) as client:
        study = client.create_study(
            f"pool-{'on' if pool else 'off'}-{secrets.token_hex(3)}",
            [{"name": "x", "type": "float", "low": 0, "high": 1}, {"name": "y", "type": "float", "low": 0, "high": 1}],
            [{"name": "loss", "goal": "minimize"}],
            fidelity=FIDELITY,
            engine="freeze_thaw",
            seed=1,
            engine_options={"warmup_configs": WARMUP, **({} if pool else {"pool_max": 0})},
        )
    waits: list[float] = []
    trained = [0]
    lock = threading.Lock()

    def train(worker: str) -> None:
        with Client(url) as own:
            mine = own.get_study(study.name)
            while True:
                with lock:
                    if trained[0] >= epochs:
                        return
                started = time.perf_counter()
                (trial,) = mine.ask(worker_id=worker, timeout=300)
                with lock:
                    waits.append(time.perf_counter() - started)
                x, y = float(trial.params["x"]), float(trial.params["y"])
                for epoch in range(int(trial.resume_from or 0) + 1, int(trial.budget or FIDELITY["max"]) + 1):
                    time.sleep(epoch_seconds)
                    with lock:
                        trained[0] += 1
                    decision = trial.report(epoch, {"loss": curve(x, y, epoch)}, checkpoint=f"ckpt-{trial.number}")
                    if decision.should_pause or decision.should_stop:
                        break
                else:
                    trial.tell({"loss": curve(x, y, int(trial.budget or FIDELITY["max"]))})

    threads = [threading.Thread(target=train, args=(f"job-{i}",)) for i in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    decided = waits[WARMUP:]
    return {
        "asks": len(decided),
        "p50": statistics.median(decided),
        "p95": percentile(decided, 95),
        "max": max(decided),
        "waited": sum(w > 0.5 for w in decided),
        "epochs": trained[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=120, help="epochs trained in all, per configuration")
    parser.add_argument("--epoch-seconds", type=float, default=0.1)
    args = parser.parse_args()
    rows = []
    with scratch_database() as database_url, fleet(database_url) as running:
        running.start_server()
        running.start_worker()
        for pool in (False, True):
            result = run(running.url, pool, args.jobs, args.epochs, args.epoch_seconds)
            rows.append(
                [
                    "on" if pool else "off (pool_max 0)",
                    result["asks"],
                    f"{result['p50']:.3f}",
                    f"{result['p95']:.3f}",
                    f"{result['max']:.3f}",
                    result["waited"],
                    result["epochs"],
                ]
            )
    print(
        f"freeze_thaw, {args.jobs} training jobs, {args.epoch_seconds} s per epoch, fidelity 1..27: the wait of "
        f"each ask past the {WARMUP} warm-up runs (seconds)"
    )
    print(markdown_table(["ready pool", "asks", "p50", "p95", "max", "asks > 0.5 s", "epochs"], rows))


if __name__ == "__main__":
    main()
