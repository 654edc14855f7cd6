"""The Python SDK and CLI against a real server on PostgreSQL and SQLite."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from asktell import (
    AlreadyExistsError,
    AsyncClient,
    Client,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
)
from tests.support import REPO, RunningServer, make_spec

PARAMS = make_spec()["params"]
OBJECTIVES = [{"name": "val_loss", "goal": "minimize"}]


def test_round_trip_create_ask_report_tell_best(server: RunningServer, study_name: str) -> None:
    with Client(server.url) as client:
        study = client.create_study(
            name=study_name,
            params=PARAMS,
            objectives=OBJECTIVES,  # type: ignore[arg-type]
            fidelity={"name": "epoch", "min": 1, "max": 3},
            engine="sobol",
        )
        assert (
            client.create_study(
                name=study_name,
                params=PARAMS,
                objectives=OBJECTIVES,  # type: ignore[arg-type]
                fidelity={"name": "epoch", "min": 1, "max": 3},
                engine="sobol",
            ).id
            == study.id
        )
        losses = []
        for _ in range(5):
            for trial in study.ask(n=1, worker_id="node-7"):
                assert trial.budget == 3 and trial.resume_from is None and trial.id > 0
                for epoch in (1, 2, 3):
                    decision = trial.report(step=epoch, values={"val_loss": 1.0 / epoch})
                    assert decision.action == "continue" and not decision.should_stop
                loss = trial.params["lr"] * 10
                trial.tell({"val_loss": loss})
                assert trial.state == "completed"
                losses.append((loss, trial.number))
        (best,) = study.best_trials()
        assert best.number == min(losses)[1]
        assert [t.number for t in study.trials(state="completed")] == list(range(5))
        assert len(study.trial(0).measurements or []) == 3
        assert study.refresh().trial_counts == {"completed": 5}


def test_failed_infeasible_and_enqueued_trials(server: RunningServer, study_name: str) -> None:
    with Client(server.url) as client:
        study = client.create_study(
            name=study_name,
            params=PARAMS,
            objectives=OBJECTIVES,  # type: ignore[arg-type]
            engine="random",
        )
        queued = study.add_trial(params={"lr": 0.01, "layers": 2, "act": "relu"})
        assert queued.state == "waiting"
        first, second = study.ask(n=2)
        assert first.number == queued.number and first.source == "user"
        first.tell(failed=True, reason="CUDA out of memory")
        second.tell(infeasible=True)
        assert (first.state, first.reason, second.state) == ("failed", "CUDA out of memory", "infeasible")
        recorded = study.add_trial(params={"lr": 0.02, "layers": 3, "act": "gelu"}, values={"val_loss": 0.2})
        assert recorded.state == "completed" and study.best_trials()[0].number == recorded.number


def test_server_errors_are_typed_and_carry_the_message(server: RunningServer, study_name: str) -> None:
    with Client(server.url) as client:
        with pytest.raises(InvalidArgumentError) as invalid:
            client.create_study(
                name=study_name, params=[{"name": "x", "type": "float", "low": 1, "high": 0}], objectives=OBJECTIVES
            )
        assert invalid.value.details == [("params[0].low", "must be less than high (1 >= 0)")]
        assert "params[0].low" in str(invalid.value)
        with pytest.raises(NotFoundError):
            client.get_study(study_name)
        study = client.create_study(
            name=study_name,
            params=PARAMS,
            objectives=OBJECTIVES,  # type: ignore[arg-type]
            engine="sobol",
        )
        with pytest.raises(AlreadyExistsError):
            client.create_study(
                name=study_name,
                params=PARAMS,
                objectives=OBJECTIVES,  # type: ignore[arg-type]
                engine="sobol",
                if_exists="error",
            )
        (trial,) = study.ask()
        trial.tell({"val_loss": 1.0})
        with pytest.raises(ConflictError, match="already completed"):
            trial.tell({"val_loss": 2.0})
        with pytest.raises(InvalidArgumentError, match=r"values\.val_loss"):
            study.ask()[0].tell({"other": 1.0})
        study.pause()
        with pytest.raises(ConflictError, match="paused"):
            study.ask()
        study.delete()
        assert study_name not in [s.name for s in client.list_studies()]


async def test_async_client_has_the_same_surface(server: RunningServer, study_name: str) -> None:
    async with AsyncClient(server.url) as client:
        study = await client.create_study(
            name=study_name,
            params=PARAMS,  # type: ignore[arg-type]
            objectives=OBJECTIVES,
            engine="sobol",
        )
        for trial in await study.ask(n=3, worker_id="a"):
            decision = await trial.report(step=1, values={"val_loss": 0.5})
            assert decision.action == "continue"
            await trial.tell({"val_loss": trial.params["lr"]})
        assert len(await study.best_trials()) == 1
        assert [t.number for t in await study.trials(state=["completed"])] == [0, 1, 2]
        with pytest.raises(NotFoundError):
            await client.get_study(study_name + "-missing")


def test_cli_lists_studies_and_trials(server: RunningServer, study_name: str) -> None:
    with Client(server.url) as client:
        study = client.create_study(
            name=study_name,
            params=PARAMS,
            objectives=OBJECTIVES,  # type: ignore[arg-type]
            engine="sobol",
        )
        for trial in study.ask(n=2):
            trial.tell({"val_loss": 0.25})

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "asktell.cli", "--url", server.url, *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )

    listing = cli("studies", "list")
    assert listing.returncode == 0 and study_name in listing.stdout and "sobol" in listing.stdout
    header, _, *rows = listing.stdout.splitlines()
    assert header.split() == ["NAME", "ENGINE", "STATE", "TRIALS", "BY", "STATE", "BEST", "OBJECTIVES"]
    (row,) = [r for r in rows if r.startswith(study_name + " ")]
    assert row.split()[:7] == [study_name, "sobol", "active", "2", "completed=2", "0.25", "val_loss"]
    trials = cli("trials", "list", study_name)
    assert trials.returncode == 0
    assert [line.split()[:2] for line in trials.stdout.splitlines()[2:]] == [["0", "completed"], ["1", "completed"]]
    shown = cli("studies", "show", study_name)
    assert "best:" in shown.stdout and "val_loss" in shown.stdout
    missing = cli("studies", "show", study_name + "-nope")
    assert missing.returncode == 1 and "not found" in missing.stderr
    closed = subprocess.Popen(
        [sys.executable, "-m", "asktell.cli", "--url", server.url, "studies", "show", study_name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert closed.stdout is not None
    closed.stdout.close()  # `asktell studies show ... | head` with a reader that is already gone
    assert closed.wait(timeout=60) == 141 and closed.stderr is not None and closed.stderr.read() == ""
    bad_url = subprocess.run(
        [sys.executable, "-m", "asktell.cli", "--url", server.url.removeprefix("http://"), "studies", "list"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert bad_url.returncode == 1 and "must start with http:// or https://" in bad_url.stderr
    assert cli("studies", "delete", study_name, "--yes").returncode == 0
    assert study_name not in cli("studies", "list").stdout


def test_listing_studies_with_a_summary_gives_counts_and_best_values(server: RunningServer, study_name: str) -> None:
    with Client(server.url) as client:
        study = client.create_study(
            name=study_name,
            params=PARAMS,
            objectives=OBJECTIVES,  # type: ignore[arg-type]
            engine="sobol",
        )
        first, second, third = study.ask(n=3)
        first.tell({"val_loss": 0.5})
        second.tell({"val_loss": 0.2})
        third.tell(failed=True)
        (listed,) = [s for s in client.list_studies(summary=True) if s.name == study_name]
        assert listed.trial_counts == {"completed": 2, "failed": 1} and listed.to_dict()["best_value"] == 0.2
        (plain,) = [s for s in client.list_studies() if s.name == study_name]
        assert plain.trial_counts is None and plain.to_dict()["best_value"] is None
        assert plain.best_value == 0.2  # a Study's best_value asks the server


def test_serve_on_a_port_in_use_says_how_to_choose_another(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        refused = subprocess.run(
            [
                sys.executable,
                "-m",
                "service.cli",
                "serve",
                "--port",
                str(port),
                "--database-url",
                f"sqlite:///{tmp_path / 'busy.db'}",
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
    assert refused.returncode == 2
    assert "address already in use" in refused.stderr and f"--port {port + 1}" in refused.stderr
    assert f"ASKTELL_PORT={port + 1}" in refused.stderr
