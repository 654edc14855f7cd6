"""The synchronous client: `Client`, `Study`, `Trial`."""

from __future__ import annotations

import time
from typing import Any

import httpx

from asktell import _protocol as api
from asktell._models import Decision, StudyFields, TrialFields


class Client:
    """A connection to an asktell server. Reads ASKTELL_URL and ASKTELL_TOKEN when not given."""

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0,
                 max_retries: int = 5, transport: httpx.BaseTransport | None = None) -> None:
        base, headers = api.settings(url, token)
        self.url = base
        self.retry = api.RetryPolicy(max_retries=max_retries)
        # Long polls wait up to LONG_POLL_SECONDS on the server: the read timeout leaves room for them.
        self._http = httpx.Client(base_url=base, headers=headers, transport=transport,
                                  timeout=httpx.Timeout(timeout, read=timeout + api.LONG_POLL_SECONDS))

    def _send(self, call: api.Call) -> httpx.Response:
        attempt = 0
        while True:
            try:
                outcome: httpx.Response | Exception = self._http.request(call.method, call.path, json=call.json,
                                                                         params=call.params)
            except httpx.TransportError as error:
                outcome = error
            delay = self.retry.delay(call, attempt, outcome)
            if delay is None:
                return api.result(outcome)
            time.sleep(delay)
            attempt += 1

    def _run(self, flow: api.Flow) -> Any:
        try:
            call = next(flow)
            while True:
                call = flow.send(self._send(call))
        except StopIteration as done:
            return done.value

    def create_study(self, name: str, params: list[dict[str, Any]], objectives: list[dict[str, Any]], *,
                     constraints: list[dict[str, Any]] | None = None, fidelity: dict[str, Any] | None = None,
                     engine: str = "auto", engine_options: dict[str, Any] | None = None, seed: int | None = None,
                     if_exists: str = "get") -> Study:
        """Create a study; with if_exists="get" an identical existing study is returned instead."""
        spec = api.study_spec(params, objectives, constraints, fidelity, engine, engine_options, seed)
        return Study(self, self._run(api.single(api.create_study(name, spec, if_exists))))

    def get_study(self, name: str) -> Study:
        return Study(self, self._run(api.single(api.get_study(name))))

    def list_studies(self) -> list[Study]:
        return [Study(self, s) for s in self._run(api.paged_flow(api.list_studies(None), "studies"))]

    def delete_study(self, name: str) -> None:
        self._run(api.single(api.delete_study(name)))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Study(StudyFields):
    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self._client = client
        self._load(data)

    def ask(self, n: int = 1, worker_id: str | None = None, *, fresh: bool = False,
            timeout: float = 300.0) -> list[Trial]:
        """Trials to evaluate. A worker_id that asks again gets its active trials back unless `fresh`.

        Waits up to `timeout` seconds for suggestions an engine worker is still computing.
        """
        flow = api.ask_flow(self.name, n, worker_id, fresh, timeout)
        return [Trial(self._client, self.name, t) for t in self._client._run(flow)]

    def add_trial(self, params: dict[str, Any], values: dict[str, float] | None = None) -> Trial:
        """Enqueue params for the next ask, or with `values` record a point evaluated elsewhere."""
        return Trial(self._client, self.name, self._client._run(api.single(api.add_trial(self.name, params, values))))

    def trials(self, state: str | list[str] | None = None, *, worker_id: str | None = None,
               measurements: bool = False) -> list[Trial]:
        states = [state] if isinstance(state, str) else list(state or [])
        flow = api.paged_flow(api.list_trials(self.name, states, worker_id, measurements, None), "trials")
        return [Trial(self._client, self.name, t) for t in self._client._run(flow)]

    def trial(self, number: int) -> Trial:
        return Trial(self._client, self.name, self._client._run(api.single(api.get_trial(self.name, number))))

    def best_trials(self) -> list[Trial]:
        """The best feasible trial (one objective) or the Pareto-optimal trials (several)."""
        body = self._client._run(api.single(api.best(self.name)))
        return [Trial(self._client, self.name, t) for t in body["trials"]]

    def engine_status(self) -> dict[str, Any]:
        return dict(self._client._run(api.single(api.engine_status(self.name))))

    def refresh(self) -> Study:
        self._load(self._client._run(api.single(api.get_study(self.name))))
        return self

    def pause(self) -> Study:
        return self._set_state("paused")

    def resume(self) -> Study:
        return self._set_state("active")

    def complete(self) -> Study:
        return self._set_state("completed")

    def delete(self) -> None:
        self._client.delete_study(self.name)

    def _set_state(self, state: str) -> Study:
        self._load(self._client._run(api.single(api.set_study_state(self.name, state))))
        return self


class Trial(TrialFields):
    def __init__(self, client: Client, study: str, data: dict[str, Any]) -> None:
        self._client = client
        self.study_name = study
        self._load(data)

    def report(self, step: float, values: dict[str, float]) -> Decision:
        """Record an intermediate value; the decision says whether to continue, pause or stop."""
        body = self._client._run(api.single(api.report(self.study_name, self.number, step, values)))
        self._load(body["trial"])
        return Decision(body["action"], body.get("reason"))

    def tell(self, values: dict[str, float] | None = None, *, failed: bool = False, infeasible: bool = False,
             stopped: bool = False, reason: str | None = None) -> Trial:
        """Finish the trial with its final values, or as failed / infeasible / stopped."""
        body = api.tell_body(values, failed, infeasible, stopped, reason)
        self._load(self._client._run(api.single(api.tell(self.study_name, self.number, body))))
        return self

    def refresh(self) -> Trial:
        self._load(self._client._run(api.single(api.get_trial(self.study_name, self.number))))
        return self
