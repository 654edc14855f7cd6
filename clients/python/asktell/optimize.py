"""`Study.optimize` (an ask/evaluate/tell loop on threads, with a progress bar) and `Study.to_dataframe`."""

from __future__ import annotations

import contextlib
import math
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from asktell.errors import AsktellError, ConflictError, InvalidArgumentError, TrialStopped

if TYPE_CHECKING:
    from asktell.client import Study, Trial

Objective = Callable[["Trial"], "float | dict[str, float] | None"]
# Called as callback(study, trial) after each trial the loop ran has ended (completed, failed, stopped, paused).
Callback = Callable[["Study", "Trial"], None]


class _Progress:
    """Counts finished trials and the best value of the study's first objective, behind one lock."""

    def __init__(self, study: Study, total: int | None, deadline: float | None, show: bool) -> None:
        objective = study.spec["objectives"][0]
        self.metric, self.maximize = objective["name"], objective["goal"] == "maximize"
        self.several = len(study.spec["objectives"]) > 1
        self.lock = threading.Lock()
        self.started = 0
        self.total = total
        self.deadline = deadline  # time.monotonic() after which no new trial starts
        self.best: float | None = None
        self.bar = None
        if show:
            from tqdm.auto import tqdm  # type: ignore[import-untyped]

            self.bar = tqdm(total=total, desc=study.name, unit="trial")

    def claim(self) -> bool:
        with self.lock:
            if self.total is not None and self.started >= self.total:
                return False
            if self.deadline is not None and time.monotonic() >= self.deadline:
                return False
            self.started += 1
            return True

    def finished(self, trial: Trial) -> None:
        with self.lock:
            value = (trial.values or {}).get(self.metric) if trial.state == "completed" else None
            if value is not None and (self.best is None or (value > self.best) == self.maximize):
                self.best = value
            if self.bar is not None:
                if self.best is not None and not self.several:
                    self.bar.set_postfix({f"best {self.metric}": f"{self.best:.6g}"}, refresh=False)
                self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _number(metric: str, value: object) -> float:
    """A metric's value as a float. Numbers only (numpy and torch scalars too): a string such as "0.5" is a bug in
    the objective, refused rather than read as a number."""
    if isinstance(value, str | bytes | bool) or not hasattr(type(value), "__float__"):
        raise TypeError(f"the objective's value of {metric!r} must be a number, got {type(value).__name__} {value!r}")
    return float(value)  # type: ignore[arg-type]


def _values_of(study: Study, result: object) -> dict[str, float]:
    if isinstance(result, dict):
        return {str(k): _number(str(k), v) for k, v in result.items()}
    objectives = study.spec["objectives"]
    if len(objectives) != 1 or study.spec.get("constraints"):
        raise TypeError(
            "the objective returned one number, but this study needs a dict of metric values "
            f"({', '.join(o['name'] for o in objectives)} and its constrained metrics)"
        )
    return {objectives[0]["name"]: _number(objectives[0]["name"], result)}


def _fail(trial: Trial, reason: str) -> None:
    with contextlib.suppress(ConflictError):  # the objective had told the trial itself
        trial.tell(failed=True, reason=reason[-2000:])


def _evaluate(study: Study, trial: Trial, objective: Objective, catch: tuple[type[BaseException], ...]) -> None:
    """Evaluate one trial and finish it: told with the objective's values, or failed with the reason, never left
    active. Errors are raised again unless listed in `catch`; a non-finite result (a diverged run) only fails it."""
    try:
        result = objective(trial)
        values = None if result is None else _values_of(study, result)
    except TrialStopped as stopped:
        _end_stopped(trial, str(stopped))
        return
    except BaseException as error:
        _fail(trial, "".join(traceback.format_exception_only(type(error), error)).strip())
        if isinstance(error, catch) and not isinstance(error, KeyboardInterrupt):
            return
        raise
    if values is None:
        trial.refresh()  # the objective told the trial itself
        return
    non_finite = {k: v for k, v in values.items() if not math.isfinite(v)}
    if non_finite:
        _fail(
            trial,
            "the objective returned a value that is not a finite number: "
            + ", ".join(f"{k}={v}" for k, v in non_finite.items()),
        )
        return
    try:
        trial.tell(values)
    except ConflictError:
        # The objective returned after a pause decision: the trial waits, paused, for a later ask.
        if trial.refresh().state != "paused":
            raise
    except InvalidArgumentError as error:  # e.g. a metric the study needs is missing
        _fail(trial, f"the server refused the objective's result: {error}")
        if not isinstance(error, catch):
            raise


def _end_stopped(trial: Trial, reason: str) -> None:
    """The objective raised TrialStopped: a trial the service stopped or paused is left as it is, one the loop
    gave up on by itself is told stopped (with the values it reported, the server's rule for a stop)."""
    if trial.refresh().state == "active":
        with contextlib.suppress(ConflictError):  # stopped meanwhile
            trial.tell(stopped=True, reason=reason[-2000:])


def optimize(
    study: Study,
    objective: Objective,
    n_trials: int | None,
    n_workers: int,
    *,
    timeout: float | None,
    callbacks: Sequence[Callback],
    catch: tuple[type[BaseException], ...],
    show_progress: bool,
) -> None:
    if n_trials is None and timeout is None:
        raise ValueError("give n_trials, timeout or both: otherwise the loop would never end")
    if (n_trials is not None and n_trials < 0) or n_workers < 1 or (timeout is not None and timeout < 0):
        raise ValueError(
            f"need n_trials >= 0, n_workers >= 1 and timeout >= 0, got {n_trials}, {n_workers} and {timeout}"
        )
    deadline = None if timeout is None else time.monotonic() + timeout
    progress = _Progress(study, n_trials, deadline, show_progress)
    errors: list[BaseException] = []
    stop = threading.Event()
    running: dict[int, Trial] = {}  # by slot: the trials the threads are evaluating
    callback_lock = threading.Lock()  # callbacks run one at a time: they need not be thread-safe

    def ended(trial: Trial) -> None:
        progress.finished(trial)
        with callback_lock:
            for callback in callbacks:
                callback(study, trial)

    def work(slot: int) -> None:
        worker_id = f"optimize-{threading.get_ident()}-{slot}"
        while not stop.is_set() and progress.claim():
            try:
                (trial,) = study.ask(worker_id=worker_id, fresh=True)
                running[slot] = trial
                _evaluate(study, trial, objective, catch)
                ended(trial)
            except BaseException as error:
                errors.append(error)
                stop.set()
            finally:
                running.pop(slot, None)

    try:
        if n_workers == 1:
            work(0)
        else:
            threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n_workers)]
            for thread in threads:
                thread.start()
            while any(thread.is_alive() for thread in threads):  # not join(): Ctrl-C inside join() confuses it
                time.sleep(0.1)
    except KeyboardInterrupt:
        # Ctrl-C reaches only this thread: the others' trials would stay active until their heartbeat
        # runs out, so they are told failed here (a thread that finishes first gets a conflict, ignored).
        stop.set()
        for trial in list(running.values()):
            with contextlib.suppress(AsktellError):
                trial.tell(failed=True, reason="interrupted")
        raise
    finally:
        progress.close()
    if errors:
        raise errors[0]


def trials_dataframe(trials: Sequence[Trial]) -> Any:
    try:
        import pandas as pd  # type: ignore[import-untyped]
    except ImportError as error:
        raise AsktellError("to_dataframe needs pandas: pip install pandas") from error
    rows = []
    for trial in trials:
        row: dict[str, Any] = {"number": trial.number, "state": trial.state}
        row.update({f"params_{k}": v for k, v in trial.params.items()})
        row.update({f"values_{k}": v for k, v in (trial.values or {}).items()})
        row.update({f"engine_{k}": v for k, v in trial.engine_info.items()})  # e.g. engine_branch
        row.update(
            {
                "source": trial.source,
                "worker_id": trial.worker_id,
                "reason": trial.reason,
                "created_at": trial.created_at,
                "started_at": trial.started_at,
                "finished_at": trial.finished_at,
            }
        )
        if trial.measurements is not None:
            row["measurements"] = trial.measurements
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        started = pd.to_datetime(frame["started_at"], utc=True)
        frame["duration"] = pd.to_datetime(frame["finished_at"], utc=True) - started
    return frame
