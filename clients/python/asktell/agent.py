"""`asktell agent STUDY -- COMMAND`: run any program as the evaluation of a study's trials.

For each trial the agent fills the command's `{param}` placeholders (and `{trial_id}`, `{budget}`,
`{resume_from}`, `{checkpoint}`), runs it, and turns what it prints into reports. A `{name}` that names
neither is refused before any trial starts (a typo would otherwise run every trial with a literal
`{lr_}`), unless `--literal-braces` says the braces are the program's own; a shell's `${VAR}` is left alone.

- a line `asktell: step=3 val_loss=0.41` on stdout, or a JSON object per line in the file named by
  `$ASKTELL_METRICS_FILE` (`{"step": 3, "val_loss": 0.41}`), is reported at that step; without a
  `step` the values are final values; a `checkpoint=PATH` (`"checkpoint": "PATH"`) goes with the report,
  and comes back as `{checkpoint}` when a paused trial is resumed;
- when the program exits 0 the trial is told completed with, per metric, its final value or else its
  latest reported one; a non-zero exit tells it failed with the tail of stderr as the reason.

A `stop` or `pause` answer to a report ends the program (SIGTERM to its process group, SIGKILL after
`--grace` seconds). The agent sends a heartbeat while a program runs silently, runs `--parallel`
programs at once (one per GPU with `--gpus 0,1`, as CUDA_VISIBLE_DEVICES), and on Ctrl-C or SIGTERM
stops its programs and tells their trials failed with reason `interrupted`.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from asktell.client import Client, Study, Trial
from asktell.errors import AsktellError, ConflictError
from asktell.program import (
    TRIAL_KEYS,
    Metrics,
    fill_command,
    parse_metric_json,
    parse_metric_line,
    unknown_placeholders,
)

STDERR_TAIL_LINES = 20
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class AgentOptions:
    study: str
    command: list[str]
    count: int | None = None  # trials to run in all (None: until the study stops handing them out)
    parallel: int = 1
    gpus: list[str] = field(default_factory=list)
    grace_seconds: float = 10.0
    heartbeat_seconds: float = 30.0
    poll_seconds: float = 0.2
    literal_braces: bool = False  # keep `{name}`s that name no parameter (code in the command) instead of refusing
    # Called as callback(study, trial) after each run, one at a time: the MLflow and W&B loggers of --mlflow, --wandb.
    callbacks: tuple[Callable[[Study, Trial], None], ...] = ()


@dataclass(frozen=True)
class Finished:
    """How one run of the program ended for its trial, as the agent's line about it says."""

    state: str  # the trial's state: completed, failed, stopped or paused
    detail: str = ""
    at_step: float | None = None  # the step of a stop or pause decision

    def line(self, number: int) -> str:
        at = f" at step {self.at_step:g}" if self.at_step is not None else ""
        return f"asktell agent: trial {number} {self.state}{at}" + (f": {self.detail}" if self.detail else "")


class _Run:
    """One program evaluating one trial: its process, output readers and the metrics they found."""

    def __init__(self, trial: Trial, argv: list[str], env: dict[str, str], metrics_file: Path, prefix: str) -> None:
        self.trial = trial
        self.prefix = prefix  # before each line of the program's output: whose it is, when several run
        self.metrics: queue.Queue[Metrics] = queue.Queue()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.metrics_file = metrics_file
        self.metrics_offset = 0
        # Output that is not UTF-8 (a progress bar's control bytes, a Latin-1 log) must not end the readers.
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self.readers = [
            threading.Thread(target=self._read_stdout, args=(self.process.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(self.process.stderr,), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def _read_stdout(self, stream: IO[str]) -> None:
        for line in stream:
            _echo(sys.stdout, self.prefix + line)
            metrics = parse_metric_line(line)
            if metrics is not None:
                self.metrics.put(metrics)

    def _read_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            _echo(sys.stderr, self.prefix + line)
            self.stderr_tail.append(line.rstrip("\n"))

    def read_metrics_file(self) -> None:
        """New complete JSON lines appended to $ASKTELL_METRICS_FILE since the last read."""
        try:
            with self.metrics_file.open("rb") as stream:
                stream.seek(self.metrics_offset)
                chunk = stream.read()
        except FileNotFoundError:
            return
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.metrics_offset += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            metrics = parse_metric_json(line)
            if metrics is not None:
                self.metrics.put(metrics)

    def terminate(self, grace_seconds: float, hurry: threading.Event | None = None) -> None:
        """SIGTERM the program's process group; SIGKILL whatever of the group is left after the grace
        period (children that ignore SIGTERM outlive their parent), or at once when `hurry` is set."""
        group = self.process.pid
        if not _group_alive(group):
            self.process.wait()
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while _group_alive(group) and time.monotonic() < deadline and not (hurry and hurry.is_set()):
            self.process.poll()  # reap the leader, so that a dead group reads as gone
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait()

    def finish_reading(self) -> None:
        for reader in self.readers:
            reader.join(timeout=5)
        self.read_metrics_file()


class Agent:
    def __init__(self, client: Client, options: AgentOptions) -> None:
        self.client = client
        self.options = options
        self.study = client.get_study(options.study)
        unknown = unknown_placeholders(self.study, options.command)
        if unknown and not options.literal_braces:
            names = ", ".join(p["name"] for p in self.study.spec["params"])
            raise AsktellError(
                f"{', '.join('{' + u + '}' for u in unknown)} in the command names no parameter of "
                f"{self.study.name} ({names}) nor a trial key ({', '.join(TRIAL_KEYS)}): a typo? If "
                "the braces belong to the program (code passed inline), add --literal-braces"
            )
        shadowing = sorted({p["name"] for p in self.study.spec["params"]} & set(TRIAL_KEYS))
        if shadowing:
            print(
                f"asktell agent: warning: {', '.join('{' + n + '}' for n in shadowing)} will be the parameter "
                f"of that name, not the trial's {'/'.join(shadowing)}",
                file=sys.stderr,
            )
        self.interrupted = threading.Event()
        self.lock = threading.Lock()
        self.started = 0
        self.ended: list[str] = []  # the state each run left its trial in, in the order they ended
        self.errors: list[BaseException] = []
        self.hurry = threading.Event()  # a second interrupt: SIGKILL programs without the grace period
        self.runs = itertools.count()
        self.workdir = Path(tempfile.mkdtemp(prefix="asktell-agent-"))
        self.worker_prefix = f"agent-{socket.gethostname()}-{os.getpid()}"

    def run(self) -> int:
        """Run trials until --count is reached, the study stops handing them out, or an interrupt; exit code."""
        slots = [threading.Thread(target=self._slot, args=(i,), daemon=True) for i in range(self.options.parallel)]
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            for slot in slots:
                slot.start()
            _wait_for(slots)
        except KeyboardInterrupt:
            self.interrupted.set()
            print("asktell agent: stopping (interrupt again to kill the programs at once)", file=sys.stderr)
            try:
                _wait_for(slots)  # each slot ends its program and fails its trial
            except KeyboardInterrupt:
                self.hurry.set()
                _wait_for(slots)
        finally:
            signal.signal(signal.SIGTERM, previous)
            shutil.rmtree(self.workdir, ignore_errors=True)
        self._summarize()
        if self.interrupted.is_set():
            return 130
        return 1 if self.errors else 0

    def _summarize(self) -> None:
        """The closing lines: this run's trials by state, and the study's best trial (or Pareto set) now."""
        counts = collections.Counter(self.ended)
        states = ", ".join(f"{count} {state}" for state, count in counts.items())
        runs = f"{len(self.ended)} trial{'' if len(self.ended) == 1 else 's'} run"
        print(f"asktell agent: {runs}" + (f": {states}" if states else ""), file=sys.stderr)
        try:
            best = self.study.best_trials()
        except AsktellError as error:
            print(f"asktell agent: best trial unknown: {error}", file=sys.stderr)
            return
        if not best:
            print(f"asktell agent: study {self.study.name} has no completed trial yet", file=sys.stderr)
        elif len(self.study.spec["objectives"]) == 1:
            name = self.study.spec["objectives"][0]["name"]
            value = (best[0].values or {}).get(name)
            print(
                f"asktell agent: best trial of {self.study.name}: {best[0].number} ({name}={value:.6g})",
                file=sys.stderr,
            )
        else:
            print(
                f"asktell agent: {len(best)} Pareto-optimal trials in {self.study.name}: "
                f"{', '.join(str(t.number) for t in best)}",
                file=sys.stderr,
            )

    def _claim(self) -> bool:
        with self.lock:
            if self.interrupted.is_set() or self.errors:
                return False
            if self.options.count is not None and self.started >= self.options.count:
                return False
            self.started += 1
            return True

    def _slot(self, index: int) -> None:
        worker_id = f"{self.worker_prefix}-{index}"
        while self._claim():
            try:
                (trial,) = self.study.ask(worker_id=worker_id, fresh=True)
            except ConflictError as error:  # the study is paused or completed: nothing more to run
                print(f"asktell agent: {error}", file=sys.stderr)
                return
            except AsktellError as error:
                self.errors.append(error)
                print(f"asktell agent: ask failed: {error}", file=sys.stderr)
                return
            if self.interrupted.is_set():
                self._tell(trial, failed=True, reason=INTERRUPTED)
                self._ended(trial, Finished("failed", INTERRUPTED))
                return
            try:
                finished = self._evaluate(trial, index)
            except Exception as error:  # recorded; it ends the agent with exit code 1
                self.errors.append(error)
                finished = Finished("failed", f"agent error: {type(error).__name__}: {error}")
            self._ended(trial, finished)

    def _ended(self, trial: Trial, finished: Finished) -> None:
        print(finished.line(trial.number), file=sys.stderr)
        with self.lock:
            self.ended.append(finished.state)
            for callback in self.options.callbacks:
                try:
                    callback(self.study, trial)
                except Exception as error:  # a tracker that is down must not stop the trials
                    print(
                        f"asktell agent: logging trial {trial.number} failed: {type(error).__name__}: {error}",
                        file=sys.stderr,
                    )

    def _environment(self, trial: Trial, slot: int, metrics_file: Path) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "ASKTELL_URL": self.client.url,
                "ASKTELL_STUDY": self.study.name,
                "ASKTELL_TRIAL_ID": str(trial.number),
                "ASKTELL_METRICS_FILE": str(metrics_file),
                "ASKTELL_RETRY_SECONDS": str(self.client.retry.deadline_seconds),
            }
        )
        if self.options.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.options.gpus[slot % len(self.options.gpus)]
        return env

    def _evaluate(self, trial: Trial, slot: int) -> Finished:
        # A file of its own per run: a resumed trial runs again under the same number.
        metrics_file = self.workdir / f"trial-{trial.number}-run-{next(self.runs)}.jsonl"
        argv = fill_command(self.options.command, trial)
        print(f"asktell agent: trial {trial.number} (slot {slot}): {' '.join(argv)}", file=sys.stderr)
        prefix = f"[trial {trial.number}] " if self.options.parallel > 1 else ""
        try:
            run = _Run(trial, argv, self._environment(trial, slot, metrics_file), metrics_file, prefix)
        except OSError as error:
            reason = f"could not start {argv[0]!r}: {error}"
            self._tell(trial, failed=True, reason=reason)
            return Finished("failed", reason)
        try:
            return self._supervise(trial, run)
        except BaseException as error:
            # Whatever went wrong in the agent, the program must not run on unsupervised, and the
            # trial must not stay active until its heartbeat times out.
            run.terminate(self.options.grace_seconds, self.hurry)
            with contextlib.suppress(Exception):
                self._tell(trial, failed=True, reason=f"agent error: {type(error).__name__}: {error}")
            raise
        finally:
            metrics_file.unlink(missing_ok=True)

    def _supervise(self, trial: Trial, run: _Run) -> Finished:
        """Relay the program's metrics until it exits or the study decides; then finish the trial."""
        final: dict[str, float] = {}
        reported: dict[float, dict[str, float]] = {}
        decision: str | None = None
        decided_at: float | None = None
        last_sign_of_life = time.monotonic()
        while True:
            exited = run.process.poll() is not None
            if exited:
                run.finish_reading()
            else:
                run.read_metrics_file()
            while decision is None and not run.metrics.empty():
                metrics = run.metrics.get()
                if metrics.step is None:
                    final.update(metrics.values)
                    continue
                # The server replaces a step's values when it is reported again: send the step's values so far.
                reported.setdefault(metrics.step, {}).update(metrics.values)
                decision = self._report(trial, Metrics(metrics.step, reported[metrics.step], metrics.checkpoint))
                decided_at = metrics.step
                last_sign_of_life = time.monotonic()
            if decision is not None or exited:
                break
            if self.interrupted.is_set():
                run.terminate(self.options.grace_seconds, self.hurry)
                self._tell(trial, failed=True, reason=INTERRUPTED)
                return Finished("failed", INTERRUPTED)
            if time.monotonic() - last_sign_of_life >= self.options.heartbeat_seconds:
                self._heartbeat(trial)
                last_sign_of_life = time.monotonic()
            time.sleep(self.options.poll_seconds)

        if decision is not None:  # stop or pause: the server has already recorded it
            run.terminate(self.options.grace_seconds, self.hurry)
            run.finish_reading()
            if decision == "pause":
                return Finished("paused", "an ask may resume it", decided_at)
            return Finished("stopped", trial.reason or "", decided_at)
        code = run.process.returncode
        if code != 0:
            tail = "\n".join(run.stderr_tail)
            self._tell(trial, failed=True, reason=f"exit code {code}" + (f": {tail}" if tail else ""))
            return Finished("failed", f"exit {code}")
        return self._complete(trial, final)

    def _report(self, trial: Trial, metrics: Metrics) -> str | None:
        """Report one step; the engine's decision if it is stop or pause."""
        assert metrics.step is not None
        try:
            decision = trial.report(metrics.step, metrics.values, checkpoint=metrics.checkpoint)
        except ConflictError:
            return None  # the program finished or paused the trial itself through the SDK
        return decision.action if decision.action in ("stop", "pause") else None

    def _heartbeat(self, trial: Trial) -> None:
        with contextlib.suppress(ConflictError):  # the trial finished meanwhile
            trial.heartbeat()

    def _complete(self, trial: Trial, final: dict[str, float]) -> Finished:
        trial.refresh()
        if trial.state != "active":
            return Finished(trial.state, "told by the program itself")
        values = _latest_values(trial.measurements or [])
        values.update(final)
        try:
            trial.tell(values)
        except AsktellError as error:
            if error.status != 422:
                raise
            reason = f"the program exited 0 but its results were refused: {error}"
            trial.tell(failed=True, reason=reason)
            return Finished("failed", reason)
        objectives = [o["name"] for o in self.study.spec["objectives"]]
        return Finished("completed", " ".join(f"{name}={values[name]:.6g}" for name in objectives if name in values))

    def _tell(self, trial: Trial, *, failed: bool, reason: str) -> None:
        with contextlib.suppress(ConflictError):  # already finished
            trial.tell(failed=failed, reason=reason)


def _latest_values(measurements: list[dict[str, Any]]) -> dict[str, float]:
    """Per metric, its value at the latest step that reported it."""
    values: dict[str, float] = {}
    for measurement in sorted(measurements, key=lambda m: m["step"]):
        values.update(measurement["values"])
    return values


def _echo(stream: IO[str], line: str) -> None:
    """Pass the program's output through; a closed or broken terminal must not stop the metrics."""
    with contextlib.suppress(OSError, ValueError):
        stream.write(line)
        stream.flush()


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_for(threads: list[threading.Thread]) -> None:
    """Sleep until every thread has ended. Not Thread.join: a KeyboardInterrupt that lands inside join()
    can leave the thread marked as ended while it still runs (CPython 3.11)."""
    while any(thread.is_alive() for thread in threads):
        time.sleep(0.1)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_agent(client: Client, options: AgentOptions) -> int:
    return Agent(client, options).run()
