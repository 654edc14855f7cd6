"""The learning-curve study the fidelity engines' tests share (one float parameter `x`, objective `loss`), and a
training loop as users write it: two threads that ask, train epoch by epoch with checkpoints, report, pause or stop
when told, and resume from their checkpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asktell import Client
from service.domain.spec import StudySpec
from tests.support import RunningServer, start_worker, wait_until

PARAMS = [{"name": "x", "type": "float", "low": 0.0, "high": 1.0}]
OBJECTIVE = [{"name": "loss", "goal": "minimize"}]


def fidelity(max_epochs: int) -> dict[str, Any]:
    return {"name": "epoch", "min": 1, "max": max_epochs}


def curve_spec(engine: str, max_epochs: int, **options: object) -> StudySpec:
    """The curve study for `engine` with its options, trained up to `max_epochs`."""
    return StudySpec.model_validate(
        {
            "params": PARAMS,
            "objectives": OBJECTIVE,
            "fidelity": fidelity(max_epochs),
            "engine": engine,
            "engine_options": options,
        }
    )


def train_on_workers(
    server: RunningServer,
    name: str,
    folder: Path,
    curve: Callable[[float, float], float],
    max_epochs: int,
    threads: int = 2,
) -> list[str]:
    """Train study `name` (one float parameter `x`, objective `loss`) until `max_epochs` epochs were spent in all,
    once an engine worker is alive; returns the checkpoint mismatches found on resume (none expected)."""
    problems: list[str] = []
    epochs = [0]
    lock = threading.Lock()

    def train(worker_id: str) -> None:
        with Client(server.url) as own:
            study = own.get_study(name)
            while True:
                with lock:
                    if epochs[0] >= max_epochs:
                        return
                (trial,) = study.ask(worker_id=worker_id, timeout=120)
                start = 1
                if trial.resume_from:
                    saved = json.loads(Path(trial.checkpoint or "").read_text())
                    if saved["epoch"] != trial.resume_from:
                        problems.append(
                            f"trial {trial.number}: checkpoint at {saved['epoch']}, resume_from {trial.resume_from}"
                        )
                    start = int(trial.resume_from) + 1
                for epoch in range(start, int(trial.budget or 0) + 1):
                    path = folder / f"ckpt-{trial.number}.json"
                    path.write_text(json.dumps({"epoch": epoch}))
                    with lock:
                        epochs[0] += 1
                    decision = trial.report(epoch, {"loss": curve(trial.params["x"], epoch)}, checkpoint=str(path))
                    if decision.should_pause or decision.should_stop:
                        break
                else:
                    trial.tell({"loss": curve(trial.params["x"], int(trial.budget or 0))})

    wait_until(lambda: any(w["alive"] for w in Client(server.url).workers()), 60, "the worker to start")
    running = [threading.Thread(target=train, args=(f"gpu-{i}",)) for i in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join(timeout=600)
    return problems


def train_with_a_worker(
    server: RunningServer, name: str, folder: Path, curve: Callable[[float, float], float], max_epochs: int
) -> tuple[list[Any], dict[str, Any]]:
    """`train_on_workers` with one engine worker started for it and stopped after; asserts that every resumed run
    found its checkpoint, and returns the study's trials (with measurements) and its engine status."""
    worker = start_worker(server.database_url, folder / "worker.log")
    try:
        problems = train_on_workers(server, name, folder, curve, max_epochs=max_epochs)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert not problems, problems
    with Client(server.url) as client:
        study = client.get_study(name)
        return study.trials(measurements=True), study.status()
