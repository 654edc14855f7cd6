"""`asktell agent` with real subprocesses, and the SDK's job-side conveniences, against PostgreSQL."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import asktell
from asktell import Client, cli
from tests.support import REPO, RunningServer, ServerFactory, wait_until

SPACE = [{"name": "x", "type": "float", "low": 0, "high": 1}, {"name": "width", "type": "int", "low": 1, "high": 8}]
LOSS = [{"name": "loss", "goal": "minimize"}]
EPOCHS = {"name": "epoch", "min": 1, "max": 3}


@pytest.fixture(scope="module")
def pg(module_servers: ServerFactory) -> RunningServer:
    return module_servers()


@pytest.fixture
def client(pg: RunningServer) -> Iterator[Client]:
    with Client(pg.url, timeout=60) as connected:
        yield connected


def agent(
    pg: RunningServer, study: str, *args: str, program: str, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run `asktell agent STUDY ARGS -- python -c PROGRAM EXTRA` to the end; the programs' f-strings are their own
    braces (--literal-braces)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "asktell.cli",
            "agent",
            study,
            "--literal-braces",
            *args,
            "--",
            sys.executable,
            "-c",
            textwrap.dedent(program),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "ASKTELL_URL": pg.url},
    )


TRAIN = """
import json, os, sys
x, width = float(sys.argv[1]), int(sys.argv[2])
for epoch in (1, 2, 3):
    print(f"asktell: step={epoch} loss={x + 1 / epoch / width}", flush=True)
with open(os.environ["ASKTELL_METRICS_FILE"], "a") as out:
    out.write(json.dumps({"step": 3, "accuracy": 1 - x}) + "\\n")
"""


def test_agent_fills_placeholders_reports_printed_and_file_metrics(
    pg: RunningServer, client: Client, study_name: str
) -> None:
    study = client.create_study(study_name, SPACE, LOSS, fidelity=EPOCHS, engine="random")
    done = agent(pg, study_name, "--count", "3", program=TRAIN, extra=("{x}", "{width}"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("asktell: step=") == 9  # the program's output passes through
    trials = study.trials(measurements=True)
    assert [t.state for t in trials] == ["completed"] * 3
    for trial in trials:
        x, width = trial.params["x"], trial.params["width"]
        assert [m["step"] for m in trial.measurements or []] == [1, 2, 3]
        assert trial.values == pytest.approx({"loss": x + 1 / 3 / width, "accuracy": 1 - x})


def test_a_crash_fails_the_trial_with_the_tail_of_stderr(pg: RunningServer, client: Client, study_name: str) -> None:
    study = client.create_study(study_name, SPACE, LOSS, engine="random")
    done = agent(
        pg, study_name, "--count", "1", program="import sys; print('CUDA out of memory', file=sys.stderr); sys.exit(3)"
    )
    assert done.returncode == 0 and "CUDA out of memory" in done.stderr
    (trial,) = study.trials()
    assert trial.state == "failed" and trial.reason == "exit code 3: CUDA out of memory"
    assert f"trial {trial.number} failed: exit 3\n" in done.stderr
    assert "1 trial run: 1 failed" in done.stderr and "has no completed trial yet" in done.stderr


def test_a_program_that_reports_too_little_is_failed_with_the_servers_reason(
    pg: RunningServer, client: Client, study_name: str
) -> None:
    study = client.create_study(study_name, SPACE, LOSS, engine="random")
    assert agent(pg, study_name, "--count", "1", program="print('asktell: accuracy=0.9')").returncode == 0
    (trial,) = study.trials()
    assert trial.state == "failed" and "loss" in (trial.reason or "")


def test_a_stop_decision_ends_the_program(pg: RunningServer, client: Client, study_name: str, tmp_path: Path) -> None:
    study = client.create_study(
        study_name,
        SPACE,
        LOSS,
        fidelity={"name": "epoch", "min": 1, "max": 50},
        engine="random",
        engine_options={"stopping": "median", "stopping_min_trials": 1},
    )
    study.add_trial({"x": 0.0, "width": 1})  # a good run first, then a bad one the median rule stops
    study.add_trial({"x": 1.0, "width": 1})
    program = f"""
        import pathlib, sys, time
        x = float(sys.argv[1])
        for epoch in range(1, 51):
            print(f"asktell: step={{epoch}} loss={{x}}", flush=True)
            time.sleep(0.02 if x == 0 else 0.2)
        pathlib.Path(r"{tmp_path}", f"finished-{{x}}").touch()
    """
    done = agent(pg, study_name, "--count", "2", "--grace", "2", program=program, extra=("{x}",))
    assert done.returncode == 0, done.stderr
    good, bad = study.trials()
    assert good.state == "completed" and bad.state == "stopped" and "median" in (bad.reason or "")
    steps = len(study.trial(bad.number).measurements or [])
    lines = done.stderr.splitlines()  # a line per finished trial, then the summary
    assert f"asktell agent: trial {good.number} completed: loss=0" in lines
    assert f"asktell agent: trial {bad.number} stopped at step {steps}: {bad.reason}" in lines
    assert lines[-2:] == [
        "asktell agent: 2 trials run: 1 completed, 1 stopped",
        f"asktell agent: best trial of {study_name}: {good.number} (loss=0)",
    ]
    assert (tmp_path / "finished-0.0").exists() and not (tmp_path / "finished-1.0").exists()


def test_parallel_slots_get_their_own_gpu_and_overlap(pg: RunningServer, client: Client, study_name: str) -> None:
    study = client.create_study(study_name, SPACE, LOSS, engine="random")
    program = """
        import os, time
        time.sleep(1.0)
        print(f"asktell: loss=1 gpu={os.environ['CUDA_VISIBLE_DEVICES']}", flush=True)
    """
    done = agent(pg, study_name, "--count", "4", "--gpus", "3,5", program=program)
    assert done.returncode == 0, done.stderr
    trials = study.trials()
    assert sorted(done.stdout.splitlines()) == sorted(  # whose output is whose, when several run at once
        f"[trial {t.number}] asktell: loss=1 gpu={int(t.values['gpu'])}" for t in trials
    )  # type: ignore[index]
    assert [t.state for t in trials] == ["completed"] * 4
    assert {t.values["gpu"] for t in trials} == {3.0, 5.0}  # type: ignore[index]
    assert len({t.worker_id for t in trials}) == 2
    first, second = trials[0], trials[1]
    assert first.started_at < second.finished_at and second.started_at < first.finished_at  # type: ignore[operator]


def test_quiet_programs_send_heartbeats(pg: RunningServer, client: Client, study_name: str) -> None:
    study = client.create_study(study_name, SPACE, LOSS, engine="random")
    done = agent(
        pg,
        study_name,
        "--count",
        "1",
        "--heartbeat",
        "0.3",
        program="import time; time.sleep(1.2); print('asktell: loss=2')",
    )
    assert done.returncode == 0, done.stderr
    (trial,) = study.trials()
    assert trial.state == "completed" and trial.heartbeat_at is not None
    assert trial.heartbeat_at < trial.finished_at  # type: ignore[operator]


def test_ctrl_c_stops_the_program_and_fails_its_trial(
    pg: RunningServer, client: Client, study_name: str, tmp_path: Path
) -> None:
    study = client.create_study(study_name, SPACE, LOSS, engine="random")
    pid_file = tmp_path / "pid"
    # The program ignores SIGTERM, so the agent has to SIGKILL it after the grace period.
    program = (
        f"import os, signal, time, pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path(r'{pid_file}').write_text(str(os.getpid())); time.sleep(60)"
    )
    running = subprocess.Popen(
        [sys.executable, "-m", "asktell.cli", "agent", study_name, "--grace", "1", "--", sys.executable, "-c", program],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "ASKTELL_URL": pg.url},
    )
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), 30, "the program to start")
    running.send_signal(signal.SIGINT)
    assert running.wait(timeout=30) == 130
    (trial,) = study.trials()
    assert trial.state == "failed" and trial.reason == "interrupted"
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_a_stopped_programs_children_that_ignore_sigterm_are_killed(
    pg: RunningServer, client: Client, study_name: str, tmp_path: Path
) -> None:
    study = client.create_study(
        study_name,
        SPACE,
        LOSS,
        fidelity={"name": "epoch", "min": 1, "max": 50},
        engine="random",
        engine_options={"stopping": "median", "stopping_min_trials": 1},
    )
    study.add_trial({"x": 0.0, "width": 1})
    study.add_trial({"x": 1.0, "width": 1})
    pid_file = tmp_path / "child"
    # The program (which exits on SIGTERM) starts a data-loader-like child that ignores SIGTERM.
    program = f"""
        import pathlib, subprocess, sys, time
        x = float(sys.argv[1])
        if x == 1.0:
            child = subprocess.Popen([sys.executable, "-c",
                "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
            pathlib.Path(r"{pid_file}").write_text(str(child.pid))
        for epoch in range(1, 51):
            print(f"asktell: step={{epoch}} loss={{x}}", flush=True)
            time.sleep(0.02 if x == 0 else 0.2)
    """
    done = agent(pg, study_name, "--count", "2", "--grace", "1", program=program, extra=("{x}",))
    assert done.returncode == 0, done.stderr
    assert [t.state for t in study.trials()] == ["completed", "stopped"]
    child = int(pid_file.read_text())
    wait_until(lambda: not _process_exists(child), 10, "the child to be killed")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waiting for init to reap it is gone too
        return stat.read().split(") ")[-1][0] != "Z"


def test_odd_output_neither_stops_the_readers_nor_reports_garbage(
    pg: RunningServer, client: Client, study_name: str
) -> None:
    study = client.create_study(study_name, SPACE, LOSS, engine="random")
    program = """
        import json, os, sys
        sys.stdout.buffer.write(b"\\xff\\xfe progress \\x1b[2K\\r\\n")
        sys.stdout.flush()
        print("asktell: step=inf loss=5")
        with open(os.environ["ASKTELL_METRICS_FILE"], "a") as out:
            out.write(json.dumps({"step": 1, "loss": 10 ** 400}) + "\\n")
        print("asktell: loss=0.5")
    """
    done = agent(pg, study_name, "--count", "1", program=program)
    assert done.returncode == 0, done.stderr
    (trial,) = study.trials(measurements=True)
    assert trial.state == "completed" and trial.values == {"loss": 0.5}
    assert trial.measurements == []


def test_a_placeholder_that_names_no_parameter_is_refused_before_any_trial(
    pg: RunningServer, client: Client, study_name: str
) -> None:
    """A typo ({z} for {x}) used to run every trial with the literal text `{z}`."""
    study = client.create_study(study_name, SPACE, LOSS, engine="random")
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "asktell.cli",
            "agent",
            study_name,
            "--count",
            "1",
            "--",
            "echo",
            "{x}",
            "{z}",
            "${HOME}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ASKTELL_URL": pg.url},
    )
    assert refused.returncode == 1 and "{z} in the command names no parameter" in refused.stderr
    assert "(x, width)" in refused.stderr and "--literal-braces" in refused.stderr
    assert study.trials() == []
    done = agent(pg, study_name, "--count", "1", program="print('{z}', '${HOME}'); print('asktell: loss=1')")
    assert done.returncode == 0 and "{z} ${HOME}" in done.stdout  # kept as they are with --literal-braces
    assert study.trials()[0].state == "completed"


def test_a_job_using_the_sdk_itself_under_the_agent(pg: RunningServer, client: Client, study_name: str) -> None:
    study = client.create_study(study_name, SPACE, LOSS, fidelity=EPOCHS, engine="random")
    program = """
        import asktell
        trial = asktell.current_trial()
        for epoch in (1, 2):
            trial.report(epoch, {"loss": trial.params["x"] + 1 / epoch})
        trial.tell({"loss": trial.params["x"]})
    """
    assert agent(pg, study_name, "--count", "2", program=program).returncode == 0
    trials = study.trials(measurements=True)
    assert [t.values == {"loss": t.params["x"]} for t in trials] == [True, True]
    assert [len(t.measurements or []) for t in trials] == [2, 2]


def test_agent_help_explains_placeholders_metrics_and_defaults() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "asktell.cli", "agent", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for words in (
        "{trial_id}",
        "{budget}",
        "{resume_from}",
        "{checkpoint}",
        "--literal-braces",
        "${VAR}",
        "asktell: step=3 val_loss=0.41",
        "$ASKTELL_METRICS_FILE",
        "Values without a step are final",
        "(default 10)",
        "(default 30)",
        "default 300",
        "until the study stops",
        "[trial N]",
    ):
        assert words in shown, words


def test_a_pause_decision_ends_the_program_and_leaves_the_trial_paused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server's side scripted: report answers pause (the real loop, with asha, is tested below)."""
    from asktell.agent import AgentOptions, run_agent

    spec = {"params": SPACE, "objectives": LOSS, "constraints": [], "fidelity": EPOCHS}
    study = {
        "id": 1,
        "name": "s",
        "owner": "default",
        "state": "active",
        "engine": "random",
        "seed": 1,
        "spec": spec,
        "created_at": None,
        "updated_at": None,
    }
    trial: dict[str, Any] = {
        "id": 1,
        "number": 0,
        "state": "active",
        "params": {"x": 0.5, "width": 2},
        "values": None,
        "budget": 3,
        "resume_from": 1,
        "checkpoint": "/ckpt/0",
    }
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path.endswith("/ask"):
            return httpx.Response(200, json={"trials": [trial]})
        if request.url.path.endswith("/report"):
            return httpx.Response(200, json={"action": "pause", "reason": None, "trial": {**trial, "state": "paused"}})
        if request.url.path.endswith("/best"):
            return httpx.Response(200, json={"trials": []})
        return httpx.Response(200, json=study)

    program = (
        "import sys, time\nprint('asktell: step=2 loss=0.3 resume=' + sys.argv[1] + ' budget=' + sys.argv[2],"
        " flush=True)\nprint(sys.argv[3], flush=True)\ntime.sleep(60)"
    )
    options = AgentOptions(
        study="s",
        command=[sys.executable, "-c", program, "{resume_from}", "{budget}", "{checkpoint}"],
        count=1,
        grace_seconds=2,
    )
    started = time.monotonic()
    with Client("http://asktell.test", transport=httpx.MockTransport(handle)) as scripted:
        assert run_agent(scripted, options) == 0
    assert time.monotonic() - started < 30  # the program was ended, not waited for
    out = capsys.readouterr()
    assert "resume=1 budget=3" in out.out and "/ckpt/0" in out.out
    assert "trial 0 paused at step 2: an ask may resume it" in out.err and "1 trial run: 1 paused" in out.err
    assert not any(s.endswith("/tell") for s in seen)  # a paused trial is not told


def test_cli_creates_and_watches_a_study(
    pg: RunningServer, client: Client, study_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"params": SPACE, "objective": LOSS}))
    assert cli.main(["--url", pg.url, "studies", "create", study_name, "--spec", str(spec)]) != 0
    assert "unknown key(s) objective; missing objectives" in capsys.readouterr().err
    # A categorical value that looks like rich markup is shown as it is.
    space = [*SPACE, {"name": "act", "type": "categorical", "choices": ["[red]", "relu"]}]
    spec.write_text(json.dumps({"params": space, "objectives": LOSS, "engine": "random"}))
    assert cli.main(["--url", pg.url, "studies", "create", study_name, "--spec", str(spec)]) == 0
    study = client.get_study(study_name)
    study.add_trial({"x": 0.5, "width": 2, "act": "[red]"})
    (trial,) = study.ask()
    trial.tell({"loss": 0.25})
    capsys.readouterr()
    assert cli.main(["--url", pg.url, "studies", "watch", study_name, "--once"]) == 0
    frame = capsys.readouterr().out
    assert "trials by state" in frame and "loss=0.25" in frame and "completed" in frame
    assert "act=[red]" in frame


def test_optimize_runs_threads_fails_raising_trials_and_frames_the_study(
    client: Client, study_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    study = client.create_study(study_name, SPACE, LOSS, engine="random")
    study.optimize(lambda trial: (trial.params["x"] - 0.3) ** 2, n_trials=6, n_workers=3)
    assert "6/6" in capsys.readouterr().err  # the progress bar, with the best value so far
    assert [t.state for t in study.trials()] == ["completed"] * 6
    assert len({t.worker_id for t in study.trials()}) == 3

    def flaky(trial: asktell.Trial) -> float:
        if trial.number % 2:
            raise MemoryError("CUDA out of memory")
        return 1.0

    study.optimize(flaky, n_trials=4, catch=(MemoryError,), show_progress=False)
    failed = study.trials(state="failed")
    assert len(failed) == 2 and all("MemoryError: CUDA out of memory" in (t.reason or "") for t in failed)
    with pytest.raises(ZeroDivisionError):
        study.optimize(lambda trial: 1 / 0, n_trials=3, show_progress=False)
    assert len(study.trials(state="failed")) == 3  # the first error stops the loop

    frame = study.to_dataframe()
    assert len(frame) == 11 and {"number", "state", "params_x", "params_width", "values_loss", "duration"} <= set(
        frame.columns
    )
    assert frame.loc[frame.state == "completed", "values_loss"].notna().all()


def test_optimize_wants_a_dict_for_several_objectives(client: Client, study_name: str) -> None:
    study = client.create_study(study_name, SPACE, [*LOSS, {"name": "seconds", "goal": "minimize"}], engine="random")
    with pytest.raises(TypeError, match="dict of metric values"):
        study.optimize(lambda trial: 1.0, n_trials=1, show_progress=False)
    study.optimize(lambda trial: {"loss": 1.0, "seconds": 2.0}, n_trials=2, show_progress=False)
    assert [t.state for t in study.trials()] == ["failed", "completed", "completed"]


def test_optimize_fails_a_trial_whose_result_the_server_refuses(client: Client, study_name: str) -> None:
    """A missing metric (the server's 422) used to leave the trial active until it went stale."""
    study = client.create_study(study_name, SPACE, LOSS, engine="random")
    with pytest.raises(asktell.InvalidArgumentError, match=r"values\.loss"):
        study.optimize(lambda trial: {"accuracy": 0.9}, n_trials=3, show_progress=False)
    (trial,) = study.trials()
    assert trial.state == "failed" and "refused the objective's result: values.loss: missing" in (trial.reason or "")
    study.optimize(
        lambda trial: {"accuracy": 0.9}, n_trials=2, catch=(asktell.InvalidArgumentError,), show_progress=False
    )
    assert [t.state for t in study.trials()] == ["failed"] * 3


def test_optimize_fails_a_non_finite_result_with_a_clear_reason(client: Client, study_name: str) -> None:
    """A diverged run (NaN) is an outcome, not a bug: its trial fails, saying so, and the loop goes on."""
    study = client.create_study(study_name, SPACE, LOSS, engine="random")
    study.optimize(lambda trial: float("nan") if trial.number == 0 else math.inf, n_trials=2, show_progress=False)
    assert [(t.state, t.reason) for t in study.trials()] == [
        ("failed", "the objective returned a value that is not a finite number: loss=nan"),
        ("failed", "the objective returned a value that is not a finite number: loss=inf"),
    ]


def test_optimize_refuses_a_value_that_is_not_a_number(client: Client, study_name: str) -> None:
    study = client.create_study(study_name, SPACE, LOSS, engine="random")
    with pytest.raises(TypeError, match=r"'loss' must be a number, got str '0\.5'"):
        study.optimize(lambda trial: {"loss": "0.5"}, n_trials=2, show_progress=False)  # type: ignore[dict-item]
    (trial,) = study.trials()
    assert trial.state == "failed" and "must be a number" in (trial.reason or "")
    study.optimize(lambda trial: np.float32(0.25), n_trials=1, show_progress=False)  # type: ignore[arg-type,return-value]
    assert study.trials()[-1].values == {"loss": 0.25}


def test_ctrl_c_in_optimize_fails_the_trials_of_every_thread(client: Client, study_name: str) -> None:
    import _thread
    import threading

    study = client.create_study(study_name, SPACE, LOSS, engine="random")
    both_running = threading.Barrier(2, timeout=30)

    def objective(trial: asktell.Trial) -> float:
        if both_running.wait() == 0:
            _thread.interrupt_main()  # Ctrl-C, while both threads evaluate
        time.sleep(2)
        return 1.0

    with pytest.raises(KeyboardInterrupt):
        study.optimize(objective, n_trials=2, n_workers=2, show_progress=False)
    trials = study.trials()
    assert [(t.state, t.reason) for t in trials] == [("failed", "interrupted")] * 2
    time.sleep(2.5)  # the threads finish and find their trials already told: nothing changes
    assert [t.state for t in study.trials()] == ["failed"] * 2


RESUMABLE = """
import json, os, sys
x, resume_from, budget = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
checkpoint, trial = sys.argv[4], sys.argv[5]
if resume_from:
    assert json.load(open(checkpoint))["epoch"] == resume_from, "resumed from the wrong checkpoint"
for epoch in range(int(resume_from) + 1, int(budget) + 1):
    path = os.path.join(sys.argv[6], f"ckpt-{trial}.json")
    json.dump({"epoch": epoch}, open(path, "w"))
    print(f"asktell: step={epoch} loss={(x - 0.3) ** 2 + 1 / epoch} checkpoint={path}", flush=True)
"""


def test_the_agent_pauses_and_resumes_programs_from_their_checkpoints(
    pg: RunningServer, client: Client, study_name: str, tmp_path: Path
) -> None:
    """Engine asha pauses runs at its rungs; resumed programs get {resume_from}, {budget} and the {checkpoint}
    they printed, and continue from there."""
    client.create_study(study_name, SPACE, LOSS, fidelity={"name": "epoch", "min": 1, "max": 9}, engine="asha")
    done = agent(
        pg,
        study_name,
        "--count",
        "12",
        program=RESUMABLE,
        extra=("{x}", "{resume_from}", "{budget}", "{checkpoint}", "{trial_id}", str(tmp_path)),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    trials = client.get_study(study_name).trials(measurements=True)
    assert len(trials) < 12  # some of the 12 runs were resumptions of paused trials
    for trial in trials:
        steps = [m["step"] for m in trial.measurements or []]
        assert steps == [float(e) for e in range(1, len(steps) + 1)]
        assert trial.checkpoint == str(tmp_path / f"ckpt-{trial.number}.json")
    assert any(len(t.measurements or []) >= 3 for t in trials)
