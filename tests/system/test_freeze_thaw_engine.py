"""Engine freeze_thaw end to end: the whole loop through the SDK with an engine worker on PostgreSQL."""

from __future__ import annotations

import math
import secrets
from pathlib import Path

import pytest

from asktell import Client
from tests.support import RunningServer
from tests.training import OBJECTIVE, PARAMS, fidelity, train_with_a_worker

FIDELITY = fidelity(30)


def curve(x: float, epoch: float) -> float:
    """Crossing curves: the best asymptote (x = 0.3) is not the fastest starter (large x starts lower)."""
    return 4 * (x - 0.3) ** 2 + (1.2 - x) * math.exp(-epoch / 6)


@pytest.mark.parametrize("warmup_to_max", [False, True])
def test_training_loop_through_the_sdk_with_a_worker(
    server: RunningServer, tmp_path: Path, warmup_to_max: bool
) -> None:
    """Two training threads on PostgreSQL with one engine worker and the default rule (promote): runs pause at the
    rungs (1, 3, 10 epochs) and resumed runs continue from their checkpoint; with `warmup_to_max`, the two warm-up
    runs train to the end unjudged."""
    if not server.database_url.startswith("postgresql"):
        pytest.skip("engine workers in their own processes need PostgreSQL")
    name = f"freeze-{secrets.token_hex(4)}"
    with Client(server.url) as client:
        client.create_study(
            name,
            PARAMS,
            OBJECTIVE,
            fidelity=FIDELITY,
            engine="freeze_thaw",
            seed=5,
            engine_options={
                "candidate_pool": 128,
                "pmin_samples": 400,
                "warmup_configs": 2,
                "warmup_to_max": warmup_to_max,
            },
        )
    trials, status = train_with_a_worker(server, name, tmp_path, curve, max_epochs=120)
    assert status["computations"] > 0 and status["last_rung"] == "freeze-thaw"
    assert any(t.source == "freeze_thaw" for t in trials)  # runs the worker planned
    for trial in trials:  # paused at a rung; a promoted run (the model decides which) continued in order
        steps = [m["step"] for m in trial.measurements or []]
        assert steps == [float(e) for e in range(1, len(steps) + 1)]
        assert trial.state in ("paused", "completed") and (len(steps) in (1, 3, 10) or trial.state == "completed")
    assert any(t.resume_from for t in trials)
    if warmup_to_max:
        warmup = sorted(trials, key=lambda t: t.number)[:2]
        assert [(t.state, len(t.measurements or [])) for t in warmup] == [("completed", 30)] * 2
