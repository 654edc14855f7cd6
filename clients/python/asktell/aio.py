"""The asyncio client: `AsyncClient`, `AsyncStudy`, `AsyncTrial`, the surface of `Client` with `await`."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from asktell import _protocol as api
from asktell._models import Decision, HypervolumeHistory, StudyFields, TrialFields


class AsyncClient:
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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        base, headers = api.settings(url, token)
        self.url = base
        self.retry = api.retry_policy(max_retries, retry_seconds)
        # A long-polled ask may legitimately take LONG_POLL_SECONDS on the server: the read timeout allows for it.
        self._http = httpx.AsyncClient(
            base_url=base,
            headers=headers,
            transport=transport,
            verify=api.tls_verify(base),
            timeout=httpx.Timeout(timeout, read=timeout + api.LONG_POLL_SECONDS),
        )

    async def _send(self, call: api.Call) -> httpx.Response:
        retries = api.Retries(self.retry)
        while True:
            try:
                outcome: httpx.Response | Exception = await self._http.request(
                    call.method, call.path, json=call.json, params=call.params
                )
            except httpx.TransportError as error:
                outcome = error
            delay = retries.delay(call, outcome)
            if delay is None:
                return api.result(outcome, self.url)
            await asyncio.sleep(delay)

    async def _run(self, flow: api.Flow) -> Any:
        try:
            call = next(flow)
            while True:
                call = flow.send(await self._send(call))
        except StopIteration as done:
            return done.value

    async def _call(self, call: api.Call) -> Any:
        return await self._run(api.single(call))

    async def create_study(
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
    ) -> AsyncStudy:
        """Create a study. With if_exists="get" (the default) every worker can run the same line at start-up:
        an identical existing study is returned, a different one with that name raises ConflictError.

        `stale_after` (seconds, default 30 min): an active trial with no report or heartbeat for that long is
        failed as stale; `retry_failed: N` re-queues a failed trial's params up to N times."""
        spec = api.study_spec(
            params, objectives, constraints, fidelity, engine, engine_options, seed, stale_after, retry_failed
        )
        return AsyncStudy(self, await self._call(api.create_study(name, spec, if_exists)))

    async def get_study(self, name: str) -> AsyncStudy:
        """The study called `name` (NotFoundError if there is none)."""
        return AsyncStudy(self, await self._call(api.get_study(name)))

    async def list_studies(self, *, summary: bool = False) -> list[AsyncStudy]:
        """Every study, all pages; with `summary`, each with its trial_counts and best_value."""
        return [AsyncStudy(self, s) for s in await self._run(api.paged(api.list_studies(summary), "studies"))]

    async def delete_study(self, name: str) -> None:
        """Delete a study and all its trials."""
        await self._call(api.delete_study(name))

    async def workers(self) -> list[dict[str, Any]]:
        """The server's engine workers: device, jobs done, last heartbeat, alive."""
        return list((await self._call(api.list_workers()))["workers"])

    # Administration: needs an admin token (or a server with authentication off). ---------------------------

    async def create_namespace(self, name: str) -> dict[str, Any]:
        """A new namespace (team): its studies and tokens are invisible to every other namespace."""
        return dict(await self._call(api.create_namespace(name)))

    async def list_namespaces(self) -> list[dict[str, Any]]:
        return list((await self._call(api.list_namespaces()))["namespaces"])

    async def delete_namespace(self, name: str) -> None:
        """Delete an empty namespace; its tokens are revoked."""
        await self._call(api.delete_namespace(name))

    async def create_token(self, namespace: str, role: str = "writer", name: str = "") -> dict[str, Any]:
        """A new token of `namespace` with `role` (reader, writer or admin). Its `secret` is shown only here."""
        return dict(await self._call(api.create_token(namespace, role, name)))

    async def list_tokens(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Tokens (never their secrets), optionally of one namespace."""
        return list((await self._call(api.list_tokens(namespace)))["tokens"])

    async def revoke_token(self, token_id: int) -> dict[str, Any]:
        return dict(await self._call(api.revoke_token(token_id)))

    async def close(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient({self.url!r})"


class AsyncStudy(StudyFields):
    """A study as last read from the server; its methods act on the server and refresh it where they can."""

    def __init__(self, client: AsyncClient, data: dict[str, Any]) -> None:
        self._client = client
        self._load(data)

    async def ask(
        self, n: int = 1, worker_id: str | None = None, fresh: bool = False, *, timeout: float = 300.0
    ) -> list[AsyncTrial]:
        """Up to `n` trials to evaluate. A worker_id that asks again gets its active trials back (so a restarted
        worker resumes its own work, and the ask can be retried safely) unless `fresh`.

        Waits up to `timeout` seconds for suggestions an engine worker is still computing (AskTimeoutError).
        """
        flow = api.ask_flow(self.name, n, worker_id, fresh, timeout)
        return [AsyncTrial(self._client, self.name, t) for t in await self._client._run(flow)]

    async def add_trial(self, params: dict[str, Any], values: dict[str, float] | None = None) -> AsyncTrial:
        """Enqueue params for the next ask, or with `values` record a point evaluated elsewhere."""
        data = await self._client._call(api.add_trial(self.name, params, values))
        return AsyncTrial(self._client, self.name, data)

    async def trials(
        self, state: str | list[str] | None = None, *, worker_id: str | None = None, measurements: bool = False
    ) -> list[AsyncTrial]:
        """Every trial (all pages), optionally only in the given state(s) or of one worker."""
        flow = api.paged(api.list_trials(self.name, state, worker_id, measurements), "trials")
        return [AsyncTrial(self._client, self.name, t) for t in await self._client._run(flow)]

    async def trial(self, number: int) -> AsyncTrial:
        """Trial `number` of this study, with its measurements."""
        data = await self._client._call(api.get_trial(self.name, number))
        return AsyncTrial(self._client, self.name, data)

    async def best_trials(self) -> list[AsyncTrial]:
        """The best feasible trial (one objective) or the Pareto-optimal trials (several)."""
        body = await self._client._call(api.best(self.name))
        return [AsyncTrial(self._client, self.name, t) for t in body["trials"]]

    async def pareto_front(self) -> list[AsyncTrial]:
        """The Pareto-optimal feasible trials (for one objective, the single best one)."""
        return await self.best_trials()

    async def hypervolume_history(self) -> HypervolumeHistory:
        """The dominated hypervolume after each completed trial, against the study's reference point."""
        return HypervolumeHistory.from_json(await self._client._call(api.hypervolume(self.name)))

    async def engine_status(self) -> dict[str, Any]:
        """How the study's engine is doing (last fit, fallbacks, ready pool, jobs): for dashboards and debugging."""
        return dict(await self._client._call(api.engine_status(self.name)))

    async def status(self) -> dict[str, Any]:
        """The engine's status as a dict, including `likely_infeasible` (engine constrained) and its evidence."""
        return await self.engine_status()

    async def refresh(self) -> AsyncStudy:
        """Re-read the study (state, trial counts) from the server."""
        self._load(await self._client._call(api.get_study(self.name)))
        return self

    async def pause(self) -> AsyncStudy:
        """Stop handing out trials; tells of running trials still land."""
        return await self._set_state("paused")

    async def resume(self) -> AsyncStudy:
        return await self._set_state("active")

    async def complete(self) -> AsyncStudy:
        return await self._set_state("completed")

    async def delete(self) -> None:
        await self._client.delete_study(self.name)

    async def _set_state(self, state: str) -> AsyncStudy:
        self._load(await self._client._call(api.set_study_state(self.name, state)))
        return self


class AsyncTrial(TrialFields):
    """One point to evaluate; `report` and `tell` update it in place from the server's answer."""

    def __init__(self, client: AsyncClient, study: str, data: dict[str, Any]) -> None:
        self._client = client
        self.study_name = study
        self._load(data)

    async def report(self, step: float, values: dict[str, float], checkpoint: str | None = None) -> Decision:
        """Record an intermediate value; the decision says whether to continue, pause or stop training.

        `checkpoint` (a path or URI you own) is kept with the trial and handed back as `trial.checkpoint` when a
        paused trial is resumed: report it with the step at which you saved it."""
        body = await self._client._call(api.report(self.study_name, self.number, step, values, checkpoint))
        self._load(body["trial"])
        return Decision(body["action"], body.get("reason"))

    async def tell(
        self,
        values: dict[str, float] | None = None,
        *,
        failed: bool = False,
        infeasible: bool = False,
        stopped: bool = False,
        reason: str | None = None,
    ) -> AsyncTrial:
        """Finish the trial with its final values, or as failed / infeasible / stopped (with an optional reason)."""
        call = api.tell(self.study_name, self.number, values, failed, infeasible, stopped, reason)
        self._load(await self._client._call(call))
        return self

    async def heartbeat(self) -> AsyncTrial:
        """Tell the server the job evaluating this trial is alive (reports count too): for long silent steps."""
        self._load(await self._client._call(api.heartbeat(self.study_name, self.number)))
        return self

    async def refresh(self) -> AsyncTrial:
        """Re-read the trial (state, values, measurements) from the server."""
        self._load(await self._client._call(api.get_trial(self.study_name, self.number)))
        return self
