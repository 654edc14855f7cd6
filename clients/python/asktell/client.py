"""The synchronous client: `Client`, `Study`, `Trial`. Calls are built in `_protocol`; this module only sends them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from asktell import _protocol as api
from asktell._models import Decision, HypervolumeHistory, StudyFields, TrialFields
from asktell.errors import AsktellError


class Client:
    """A connection to an asktell server. Reads ASKTELL_URL and ASKTELL_TOKEN when `url` / `token` are not given.

    Idempotent calls are retried on connection errors, timeouts and 5xx for `retry_seconds` (ASKTELL_RETRY_SECONDS,
    default 300: a server restart is ridden out), or `max_retries` times if given.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        max_retries: int | None = None,
        retry_seconds: float | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base, headers = api.settings(url, token)
        self.url = base
        self.retry = api.retry_policy(max_retries, retry_seconds)
        # A long-polled ask may legitimately take LONG_POLL_SECONDS on the server: the read timeout allows for it.
        self._http = httpx.Client(
            base_url=base,
            headers=headers,
            transport=transport,
            verify=api.tls_verify(base),
            timeout=httpx.Timeout(timeout, read=timeout + api.LONG_POLL_SECONDS),
        )

    def _send(self, call: api.Call) -> httpx.Response:
        retries = api.Retries(self.retry)
        while True:
            try:
                outcome: httpx.Response | Exception = self._http.request(
                    call.method, call.path, json=call.json, params=call.params
                )
            except httpx.TransportError as error:
                outcome = error
            delay = retries.delay(call, outcome)
            if delay is None:
                return api.result(outcome, self.url)
            time.sleep(delay)

    def _run(self, flow: api.Flow) -> Any:
        try:
            call = next(flow)
            while True:
                call = flow.send(self._send(call))
        except StopIteration as done:
            return done.value

    def _call(self, call: api.Call) -> Any:
        return self._run(api.single(call))

    def create_study(
        self,
        name: str,
        params: list[dict[str, Any]],
        objectives: list[dict[str, Any]],
        *,
        constraints: list[dict[str, Any]] | None = None,
        fidelity: dict[str, Any] | None = None,
        engine: str = "auto",
        engine_options: dict[str, Any] | None = None,
        seed: int | None = None,
        if_exists: str = "get",
        stale_after: float | None = None,
        retry_failed: int | None = None,
    ) -> Study:
        """Create a study. With if_exists="get" (the default) every worker can run the same line at start-up:
        an identical existing study is returned, a different one with that name raises ConflictError.

        `stale_after` (seconds, default 30 min): an active trial with no report or heartbeat for that long is
        failed as stale; `retry_failed: N` re-queues a failed trial's params up to N times."""
        spec = api.study_spec(
            params, objectives, constraints, fidelity, engine, engine_options, seed, stale_after, retry_failed
        )
        return Study(self, self._call(api.create_study(name, spec, if_exists)))

    def get_study(self, name: str) -> Study:
        """The study called `name` (NotFoundError if there is none)."""
        return Study(self, self._call(api.get_study(name)))

    def list_studies(self, *, summary: bool = False) -> list[Study]:
        """Every study, all pages; with `summary`, each with its trial_counts and best_value."""
        return [Study(self, s) for s in self._run(api.paged(api.list_studies(summary), "studies"))]

    def delete_study(self, name: str) -> None:
        """Delete a study and all its trials."""
        self._call(api.delete_study(name))

    def workers(self) -> list[dict[str, Any]]:
        """The server's engine workers: device, jobs done, last heartbeat, alive."""
        return list(self._call(api.list_workers())["workers"])

    # Administration: needs an admin token (or a server with authentication off). ---------------------------

    def create_namespace(self, name: str) -> dict[str, Any]:
        """A new namespace (team): its studies and tokens are invisible to every other namespace."""
        return dict(self._call(api.create_namespace(name)))

    def list_namespaces(self) -> list[dict[str, Any]]:
        return list((self._call(api.list_namespaces()))["namespaces"])

    def delete_namespace(self, name: str) -> None:
        """Delete an empty namespace; its tokens are revoked."""
        self._call(api.delete_namespace(name))

    def create_token(self, namespace: str, role: str = "writer", name: str = "") -> dict[str, Any]:
        """A new token of `namespace` with `role` (reader, writer or admin). Its `secret` is shown only here."""
        return dict(self._call(api.create_token(namespace, role, name)))

    def list_tokens(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Tokens (never their secrets), optionally of one namespace."""
        return list((self._call(api.list_tokens(namespace)))["tokens"])

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        return dict(self._call(api.revoke_token(token_id)))

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"


class Study(StudyFields):
    """A study as last read from the server; its methods act on the server and refresh it where they can."""

    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self._client = client
        self._load(data)

    def ask(
        self, n: int = 1, worker_id: str | None = None, fresh: bool = False, *, timeout: float = 300.0
    ) -> list[Trial]:
        """Up to `n` trials to evaluate. A worker_id that asks again gets its active trials back (so a restarted
        worker resumes its own work, and the ask can be retried safely) unless `fresh`.

        Waits up to `timeout` seconds for suggestions an engine worker is still computing (AskTimeoutError).
        """
        flow = api.ask_flow(self.name, n, worker_id, fresh, timeout)
        return [Trial(self._client, self.name, t) for t in self._client._run(flow)]

    def add_trial(self, params: dict[str, Any], values: dict[str, float] | None = None) -> Trial:
        """Enqueue params for the next ask, or with `values` record a point evaluated elsewhere."""
        return Trial(self._client, self.name, self._client._call(api.add_trial(self.name, params, values)))

    def trials(
        self, state: str | list[str] | None = None, *, worker_id: str | None = None, measurements: bool = False
    ) -> list[Trial]:
        """Every trial (all pages), optionally only in the given state(s) or of one worker."""
        flow = api.paged(api.list_trials(self.name, state, worker_id, measurements), "trials")
        return [Trial(self._client, self.name, t) for t in self._client._run(flow)]

    def trial(self, number: int) -> Trial:
        """Trial `number` of this study, with its measurements."""
        return Trial(self._client, self.name, self._client._call(api.get_trial(self.name, number)))

    def best_trials(self) -> list[Trial]:
        """The best feasible trial (one objective) or the Pareto-optimal trials (several)."""
        return [Trial(self._client, self.name, t) for t in self._client._call(api.best(self.name))["trials"]]

    def pareto_front(self) -> list[Trial]:
        """The Pareto-optimal feasible trials (for one objective, the single best one)."""
        return self.best_trials()

    def hypervolume_history(self) -> HypervolumeHistory:
        """The dominated hypervolume after each completed trial, against the study's reference point."""
        return HypervolumeHistory.from_json(self._client._call(api.hypervolume(self.name)))

    def engine_status(self) -> dict[str, Any]:
        """How the study's engine is doing (last fit, fallbacks, ready pool, jobs): for dashboards and debugging."""
        return dict(self._client._call(api.engine_status(self.name)))

    def status(self) -> dict[str, Any]:
        """The engine's status as a dict, including `likely_infeasible` (engine constrained) and its evidence."""
        return self.engine_status()

    def optimize(
        self,
        objective: Callable[[Trial], float | dict[str, float] | None],
        n_trials: int | None = None,
        n_workers: int = 1,
        *,
        timeout: float | None = None,
        callbacks: Sequence[Callable[[Study, Trial], None]] = (),
        catch: tuple[type[BaseException], ...] = (),
        show_progress: bool = True,
    ) -> None:
        """Ask, evaluate `objective(trial)` and tell, `n_trials` times on `n_workers` threads, and start no new
        trial after `timeout` seconds (running ones finish); at least one of the two is needed.

        `objective` returns the value of the single objective, a dict of metric values, or None when it told
        the trial itself. Raising `TrialStopped` ends the trial early (after a stop or pause decision) without
        failing it. Any other exception marks the trial failed (with the exception as reason) and is raised
        again unless it is an instance of `catch`. Each of `callbacks` is called as `callback(study, trial)`
        after every trial, one call at a time. The progress bar (tqdm) shows the best value so far.
        """
        from asktell.optimize import optimize

        optimize(
            self,
            objective,
            n_trials,
            n_workers,
            timeout=timeout,
            callbacks=callbacks,
            catch=catch,
            show_progress=show_progress,
        )

    @property
    def best_trial(self) -> Trial:
        """The best feasible completed trial of a single-objective study, read from the server now (ValueError
        when there is none yet, or the study has several objectives: see `best_trials`)."""
        objectives = self.spec["objectives"]
        if len(objectives) > 1:
            raise ValueError(
                f"study {self.name!r} has {len(objectives)} objectives: best_trials() gives its Pareto-optimal trials"
            )
        best = self.best_trials()
        if not best:
            raise ValueError(f"study {self.name!r} has no completed feasible trial yet")
        return best[0]

    @property
    def best_params(self) -> dict[str, Any]:
        """The parameters of `best_trial`."""
        return self.best_trial.params

    @property
    def best_value(self) -> float:
        """The objective's value of `best_trial`, read from the server now (a listing's summary value, which
        this replaces on a synchronous `Study`, stays in `to_dict()["best_value"]`)."""
        value = (self.best_trial.values or {})[self.spec["objectives"][0]["name"]]
        assert value is not None  # a completed trial has every objective's value
        return float(value)

    def to_dataframe(self, *, measurements: bool = False) -> Any:
        """Every trial as a pandas DataFrame: number, state, params_*, values_*, engine_* (what the engine said,
        e.g. engine_branch), source, timing (needs pandas)."""
        from asktell.optimize import trials_dataframe

        return trials_dataframe(self.trials(measurements=measurements))

    def refresh(self) -> Study:
        """Re-read the study (state, trial counts) from the server."""
        self._load(self._client._call(api.get_study(self.name)))
        return self

    def pause(self) -> Study:
        """Stop handing out trials; tells of running trials still land."""
        return self._set_state("paused")

    def resume(self) -> Study:
        return self._set_state("active")

    def complete(self) -> Study:
        return self._set_state("completed")

    def delete(self) -> None:
        self._client.delete_study(self.name)

    def _set_state(self, state: str) -> Study:
        self._load(self._client._call(api.set_study_state(self.name, state)))
        return self


class Trial(TrialFields):
    """One point to evaluate; `report` and `tell` update it in place from the server's answer."""

    def __init__(self, client: Client, study: str, data: dict[str, Any]) -> None:
        self._client = client
        self.study_name = study
        self._load(data)

    def report(self, step: float, values: dict[str, float], checkpoint: str | None = None) -> Decision:
        """Record an intermediate value; the decision says whether to continue, pause or stop training.

        `checkpoint` (a path or URI you own) is kept with the trial and handed back as `trial.checkpoint` when a
        paused trial is resumed: report it with the step at which you saved it."""
        body = self._client._call(api.report(self.study_name, self.number, step, values, checkpoint))
        self._load(body["trial"])
        return Decision(body["action"], body.get("reason"))

    def tell(
        self,
        values: dict[str, float] | None = None,
        *,
        failed: bool = False,
        infeasible: bool = False,
        stopped: bool = False,
        reason: str | None = None,
    ) -> Trial:
        """Finish the trial with its final values, or as failed / infeasible / stopped (with an optional reason)."""
        call = api.tell(self.study_name, self.number, values, failed, infeasible, stopped, reason)
        self._load(self._client._call(call))
        return self

    def heartbeat(self) -> Trial:
        """Tell the server the job evaluating this trial is alive (reports count too): for long silent steps."""
        self._load(self._client._call(api.heartbeat(self.study_name, self.number)))
        return self

    @contextmanager
    def keep_alive(self, interval: float = 60.0) -> Iterator[Trial]:
        """Send a heartbeat every `interval` seconds from a background thread while the block runs, so a long
        step with nothing to report is not failed as stale. Heartbeat errors are retried, never raised here."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    self._client._call(api.heartbeat(self.study_name, self.number))
                except AsktellError:
                    if stop.is_set():
                        return  # the trial was told meanwhile: nothing left to keep alive

        thread = threading.Thread(target=beat, name=f"asktell-heartbeat-{self.number}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=interval + 5)

    def refresh(self) -> Trial:
        """Re-read the trial (state, values, measurements) from the server."""
        self._load(self._client._call(api.get_trial(self.study_name, self.number)))
        return self
