"""The load benchmark in its short mode: simulated training jobs on a random and a gp study, side by side, on
PostgreSQL; no request may fail and the audit must find every trial exactly as the clients left it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO


def test_short_load_run_has_no_errors_and_a_clean_audit(tmp_path: Path) -> None:
    results = tmp_path / "load.json"
    run = subprocess.run(
        [
            sys.executable,
            "benchmarks/load.py",
            "--seconds",
            "6",
            "--jobs",
            "24",
            "--gp-share",
            "0.25",
            "--json",
            str(results),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    found = json.loads(results.read_text())
    assert found["errors"] == 0 and found["audit_problems"] == []
    assert found["routes"]["random tell"]["count"] > 20 and found["routes"]["gp tell"]["count"] >= 1
