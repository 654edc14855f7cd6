"""Engine asha_bo end to end: a training loop through the SDK with an engine worker on PostgreSQL."""

from __future__ import annotations

import math
import secrets
from pathlib import Path

import pytest

from asktell import Client
from tests.support import RunningServer
from tests.training import OBJECTIVE, PARAMS, fidelity, train_with_a_worker

FIDELITY = fidelity(27)


def curve(x: float, epoch: float) -> float:
    """Curves whose final value is lowest at x = 0.3, and whose ranking at the first rung already says so."""
    return 4 * (x - 0.3) ** 2 + 0.5 * math.exp(-epoch / 5)


def test_training_loop_through_the_sdk_with_a_worker(server: RunningServer, tmp_path: Path) -> None:
    """Two training threads on PostgreSQL with one engine worker: runs pause at the rungs (1, 3, 9 epochs of 27),
    promoted runs resume from their checkpoints, and past the Sobol start the worker's model proposes the new
    configurations."""
    if not server.database_url.startswith("postgresql"):
        pytest.skip("engine workers in their own processes need PostgreSQL")
    name = f"asha-bo-{secrets.token_hex(4)}"
    with Client(server.url) as client:
        client.create_study(
            name, PARAMS, OBJECTIVE, fidelity=FIDELITY, engine="asha_bo", seed=5, engine_options={"candidate_pool": 128}
        )
    trials, status = train_with_a_worker(server, name, tmp_path, curve, max_epochs=50)
    assert status["computations"] > 0 and status["last_rung"] in ("fit", "fit-warm", "reused")
    for trial in trials:  # paused at a rung; a promoted run continued in order
        steps = [m["step"] for m in trial.measurements or []]
        assert steps == [float(e) for e in range(1, len(steps) + 1)]
        assert trial.state in ("paused", "completed") and (len(steps) in (1, 3, 9) or trial.state == "completed")
    assert any(t.resume_from for t in trials)
