"""What the sync and async clients share: how each call is built, retried and read.

Only the transport call and the sleep differ between `Client` and `AsyncClient`; every route, body, retry rule,
multi-request flow (paging, pending asks) and error mapping lives here once.
"""

from __future__ import annotations

import functools
import os
import random
import ssl
import time
import uuid
import warnings
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from asktell.errors import (
    AskTimeoutError,
    ConfigurationError,
    ServiceUnavailableError,
    SobolFallbackWarning,
    error_from_response,
)

DEFAULT_URL = "http://127.0.0.1:8000"
USER_AGENT = "asktell-python/0.1.0"
# How long the server holds an ask (or a job poll) open by default while an engine worker computes suggestions.
LONG_POLL_SECONDS = 30.0
# Failures after which the request may simply not have arrived, or the answer was lost: worth another try.
# (A bad URL scheme or a local protocol misuse would fail the same way every time.)
RETRYABLE_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError)


@dataclass(frozen=True)
class Call:
    """One HTTP request. `idempotent` calls may be retried: repeating them cannot change the outcome."""

    method: str
    path: str
    json: Any = None
    params: Any = None
    idempotent: bool = False


DEFAULT_RETRY_SECONDS = 300.0  # long enough to ride out a server or database restart


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter on connection errors, timeouts and 5xx, for idempotent calls only, until
    `deadline_seconds` have passed since the call's first attempt (or after `max_retries` retries, if set)."""

    deadline_seconds: float = DEFAULT_RETRY_SECONDS
    max_retries: int | None = None
    base_seconds: float = 0.1
    cap_seconds: float = 5.0

    def delay(self, call: Call, attempt: int, outcome: httpx.Response | Exception, elapsed: float) -> float | None:
        """Seconds to wait before retry number `attempt + 1`, `elapsed` seconds after the first attempt, or None to
        stop and report the outcome."""
        retryable = isinstance(outcome, RETRYABLE_ERRORS) or (
            isinstance(outcome, httpx.Response) and outcome.status_code >= 500
        )
        remaining = self.deadline_seconds - elapsed
        if not (call.idempotent and retryable and remaining > 0):
            return None
        if self.max_retries is not None and attempt >= self.max_retries:
            return None
        # "Equal jitter": never less than half the exponential step, so retries stay spread out but bounded.
        return float(min(remaining, self.cap_seconds, self.base_seconds * 2**attempt) * random.uniform(0.5, 1.0))


class Retries:
    """One call's retries under a policy: how many so far, and since when."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.attempt = 0
        self.started = time.monotonic()

    def delay(self, call: Call, outcome: httpx.Response | Exception) -> float | None:
        delay = self.policy.delay(call, self.attempt, outcome, time.monotonic() - self.started)
        self.attempt += 1
        return delay


def retry_policy(max_retries: int | None, retry_seconds: float | None) -> RetryPolicy:
    """The policy from the arguments, else ASKTELL_RETRY_SECONDS, else retries for DEFAULT_RETRY_SECONDS."""
    if retry_seconds is None:
        retry_seconds = float(os.environ.get("ASKTELL_RETRY_SECONDS") or DEFAULT_RETRY_SECONDS)
    return RetryPolicy(deadline_seconds=retry_seconds, max_retries=max_retries)


def settings(url: str | None, token: str | None) -> tuple[str, dict[str, str]]:
    """Resolve the base URL and headers from the arguments, else ASKTELL_URL / ASKTELL_TOKEN."""
    base = (url or os.environ.get("ASKTELL_URL") or DEFAULT_URL).rstrip("/")
    check_url(base)
    headers = {"User-Agent": USER_AGENT}
    token = token or os.environ.get("ASKTELL_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return base, headers


def check_url(url: str) -> None:
    """A server URL is the server's root over http or https; say what is wrong with one that is not, before any
    request goes out with it (a missing scheme otherwise surfaced as "unsupported protocol 'host'", and a
    trailing /v1 as a 404 for every call)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"the server URL {url!r} must start with http:// or https://, "
            f"e.g. http://{url.split('://')[-1] or '127.0.0.1:8000'}"
        )
    if parts.path.rstrip("/").endswith("/v1") or "/v1/" in parts.path:
        root = urlunsplit((parts.scheme, parts.netloc, parts.path[: parts.path.index("/v1")], "", ""))
        raise ConfigurationError(
            f"the server URL {url!r} must be the server's root, without the API's /v1 (the client adds it): {root}"
        )


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def tls_verify(base_url: str) -> ssl.SSLContext | bool:
    """TLS settings for the client: one shared default context for https (building one costs tens of
    milliseconds, paid by every new Client otherwise), none for plain http (no redirects are followed)."""
    return _tls_context() if base_url.startswith("https://") else False


def result(outcome: httpx.Response | Exception, base_url: str) -> httpx.Response:
    """The response of a finished call, or the typed error it amounts to."""
    if isinstance(outcome, httpx.TransportError):
        if isinstance(outcome, httpx.ConnectError | httpx.ConnectTimeout):
            problem = f"cannot reach the asktell server at {base_url}"
        else:  # past the connect step the server may have acted on the request
            problem = f"no answer from the asktell server at {base_url} (the request may have been applied)"
        raise ServiceUnavailableError(f"{problem}: {type(outcome).__name__}: {outcome}") from outcome
    if isinstance(outcome, Exception):
        raise outcome
    if outcome.is_error:
        raise error_from_response(outcome)
    return outcome


def _study(name: str) -> str:
    return f"/v1/studies/{quote(name, safe='')}"


# The API, one function per route ------------------------------------------------------------------------------


def create_study(name: str, spec: dict[str, Any], if_exists: str) -> Call:
    # With if_exists="get" a repeat returns the study the first attempt created: safe to retry.
    return Call(
        "POST", "/v1/studies", json={"name": name, "if_exists": if_exists, **spec}, idempotent=if_exists == "get"
    )


def get_study(name: str) -> Call:
    return Call("GET", _study(name), idempotent=True)


def list_studies(summary: bool) -> Call:
    return Call("GET", "/v1/studies", params={"page_size": 500, "summary": str(summary).lower()}, idempotent=True)


def delete_study(name: str) -> Call:
    return Call("DELETE", _study(name), idempotent=True)


def set_study_state(name: str, state: str) -> Call:
    return Call("PUT", f"{_study(name)}/state", json={"state": state}, idempotent=True)


def request_id() -> str:
    """A fresh id for one logical request; every retry of it sends the same id, so the server applies it once."""
    return uuid.uuid4().hex


def ask(name: str, count: int, worker_id: str | None, fresh: bool, timeout: float) -> Call:
    body: dict[str, Any] = {"count": count, "worker_id": worker_id, "fresh": fresh, "request_id": request_id()}
    if timeout < LONG_POLL_SECONDS:
        # Only a caller in more of a hurry than the server's default long poll needs to say so.
        body["wait_seconds"] = timeout
    # The request id makes a retry return what the first attempt handed out.
    return Call("POST", f"{_study(name)}/ask", json=body, idempotent=True)


def poll_job(name: str, job_id: int, wait_seconds: float) -> Call:
    return Call("GET", f"{_study(name)}/jobs/{job_id}", params={"wait_seconds": wait_seconds}, idempotent=True)


def add_trial(name: str, params: dict[str, Any], values: dict[str, float] | None) -> Call:
    return Call("POST", f"{_study(name)}/trials", json={"params": params, "values": values})


def list_trials(name: str, state: str | list[str] | None, worker_id: str | None, measurements: bool) -> Call:
    states = [state] if isinstance(state, str) else list(state or [])
    params: list[tuple[str, Any]] = [("state", s) for s in states]
    params += [("page_size", 1000), ("measurements", str(measurements).lower())]
    if worker_id:
        params.append(("worker_id", worker_id))
    return Call("GET", f"{_study(name)}/trials", params=params, idempotent=True)


def get_trial(name: str, number: int) -> Call:
    return Call("GET", f"{_study(name)}/trials/{number}", idempotent=True)


def report(name: str, number: int, step: float, values: dict[str, float], checkpoint: str | None = None) -> Call:
    # Reporting a step again replaces its values: safe to retry.
    body: dict[str, Any] = {"step": step, "values": values}
    if checkpoint is not None:
        body["checkpoint"] = checkpoint
    return Call("POST", f"{_study(name)}/trials/{number}/report", json=body, idempotent=True)


def heartbeat(name: str, number: int) -> Call:
    return Call("POST", f"{_study(name)}/trials/{number}/heartbeat", idempotent=True)


def list_workers() -> Call:
    return Call("GET", "/v1/workers", idempotent=True)


def tell(
    name: str,
    number: int,
    values: dict[str, float] | None,
    failed: bool,
    infeasible: bool,
    stopped: bool,
    reason: str | None,
) -> Call:
    chosen = [s for s, on in (("failed", failed), ("infeasible", infeasible), ("stopped", stopped)) if on]
    if len(chosen) > 1:
        raise ValueError(f"tell one of failed, infeasible or stopped, not {' and '.join(chosen)}")
    body = {
        "state": chosen[0] if chosen else "completed",
        "values": values,
        "reason": reason,
        "request_id": request_id(),
    }
    # The server answers a retry (same request id) with the trial as the first attempt left it.
    return Call("POST", f"{_study(name)}/trials/{number}/tell", json=body, idempotent=True)


def best(name: str) -> Call:
    return Call("GET", f"{_study(name)}/best", idempotent=True)


def hypervolume(name: str) -> Call:
    return Call("GET", f"{_study(name)}/hypervolume", idempotent=True)


def engine_status(name: str) -> Call:
    return Call("GET", f"{_study(name)}/engine", idempotent=True)


def study_spec(
    params: list[dict[str, Any]],
    objectives: list[dict[str, Any]],
    constraints: list[dict[str, Any]] | None,
    fidelity: dict[str, Any] | None,
    engine: str,
    engine_options: dict[str, Any] | None,
    seed: int | None,
    stale_after: float | None = None,
    retry_failed: int | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "params": params,
        "objectives": objectives,
        "constraints": constraints or [],
        "fidelity": fidelity,
        "engine": engine,
        "engine_options": engine_options or {},
        "seed": seed,
    }
    if stale_after is not None:
        spec["stale_after"] = stale_after
    if retry_failed is not None:
        spec["retry_failed"] = retry_failed
    return spec


# Administration (admin tokens): namespaces and tokens ------------------------------------------------------


def create_namespace(name: str) -> Call:
    return Call("POST", "/v1/namespaces", json={"name": name})


def list_namespaces() -> Call:
    return Call("GET", "/v1/namespaces", idempotent=True)


def delete_namespace(name: str) -> Call:
    return Call("DELETE", f"/v1/namespaces/{quote(name, safe='')}", idempotent=True)


def create_token(namespace: str, role: str, name: str) -> Call:
    return Call("POST", "/v1/tokens", json={"namespace": namespace, "role": role, "name": name})


def list_tokens(namespace: str | None) -> Call:
    return Call("GET", "/v1/tokens", params={"namespace": namespace} if namespace else None, idempotent=True)


def revoke_token(token_id: int) -> Call:
    return Call("DELETE", f"/v1/tokens/{token_id}", idempotent=True)


# Operations of one or more requests, written once as generators: they yield calls and receive responses. ------

Flow = Generator[Call, httpx.Response, Any]


def single(call: Call) -> Flow:
    """One request; its JSON body (None for an empty one, as DELETE's 204)."""
    response = yield call
    return response.json() if response.content else None


def paged(first: Call, key: str) -> Flow:
    """Every item of a paged listing, following next_page_token to the end."""
    items: list[Any] = []
    call = first
    while True:
        body = (yield call).json()
        items += body[key]
        token = body.get("next_page_token")
        if not token:
            return items
        params = first.params.items() if isinstance(first.params, dict) else first.params
        call = Call(first.method, first.path, params=[*params, ("page_token", token)], idempotent=first.idempotent)


def ask_flow(name: str, count: int, worker_id: str | None, fresh: bool, timeout: float) -> Flow:
    """Ask, then poll a pending job (long-polling) until its trials exist or `timeout` runs out.

    The server answers at once with what it has; trials an engine worker is still computing come back as a
    `pending` job, so a slow model never holds an HTTP request open for long.
    """
    deadline = time.monotonic() + timeout
    body = (yield ask(name, count, worker_id, fresh, timeout)).json()
    trials: list[dict[str, Any]] = list(body["trials"])
    _warn_of_fallback(name, body)
    while body.get("pending"):
        job_id = body["pending"]["id"]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AskTimeoutError(
                f"suggestions for study {name!r} were still being computed after {timeout:g} s "
                f"(job {job_id}); ask again with the same worker_id to pick them up",
                job_id,
            )
        body = (yield poll_job(name, job_id, min(LONG_POLL_SECONDS, remaining))).json()
        trials += body["trials"]
        _warn_of_fallback(name, body)
    return trials


def _warn_of_fallback(name: str, body: dict[str, Any]) -> None:
    """Sobol points in place of a model's suggestions are worth knowing about: the study is not being optimized."""
    if body.get("fallback"):
        warnings.warn(f"study {name!r}: {body['fallback']}", SobolFallbackWarning, stacklevel=2)
