"""Typed errors carrying what the server said; one class per kind of failure a caller may want to handle."""

from __future__ import annotations

from typing import Any

import httpx


class AsktellError(Exception):
    """Base of every error the client raises on purpose, so `except AsktellError` catches them all."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details or []

    def __str__(self) -> str:
        return self.message


class InvalidArgumentError(AsktellError):
    """The server rejected the request's content (422/400); `details` names each field and why."""


class NotFoundError(AsktellError):
    """No such study, trial or job (404)."""


class ConflictError(AsktellError):
    """The request clashes with the current state (409): a different second tell, an ask on a paused study."""


class AlreadyExistsError(ConflictError):
    """A study of that name exists already (409, code already_exists)."""


class AuthenticationError(AsktellError):
    """The token is missing, wrong, or may not do this (401/403)."""


class ServerError(AsktellError):
    """The server failed (5xx) and retries, where allowed, did not help."""


class ServiceUnavailableError(AsktellError):
    """The server could not be reached (or stopped answering), even after retries."""


class TrialStopped(AsktellError):
    """Raised by a training loop (or a framework callback of `asktell.integrations`) to end its trial early, as
    Optuna's TrialPruned: after a report's stop or pause decision, which the server has already recorded, or on
    the loop's own initiative. `Study.optimize` counts the trial as ended, not failed, and goes on; a trial still
    active is told stopped (with this message as the reason)."""

    def __init__(self, message: str = "stopped by the service", *, action: str = "stop") -> None:
        super().__init__(message)
        self.action = action  # the decision that ended it: stop or pause


class SobolFallbackWarning(UserWarning):
    """The server handed out Sobol points instead of its engine's suggestions (trial source `sobol-fallback`):
    typically no engine worker is running (start `asktell worker`). The message says why."""


class ConfigurationError(AsktellError, ValueError):
    """The client's own settings are wrong (a server URL without http://, say); nothing was sent."""


class AskTimeoutError(AsktellError):
    """Suggestions were still being computed when the caller's timeout ran out; `job_id` can be polled."""

    def __init__(self, message: str, job_id: int) -> None:
        super().__init__(message)
        self.job_id = job_id


def _error_class(status: int, code: str | None) -> type[AsktellError]:
    if status in (400, 422):
        return InvalidArgumentError
    if status == 404:
        return NotFoundError
    if status == 409:
        return AlreadyExistsError if code == "already_exists" else ConflictError
    if status in (401, 403):
        return AuthenticationError
    if status >= 500:
        return ServerError
    return AsktellError


def error_from_response(response: httpx.Response) -> AsktellError:
    """Map an error response to its exception class, keeping the server's message and field details.

    A body that is not the server's error envelope (say, an HTML page from a proxy) still maps by status.
    """
    try:
        envelope: Any = response.json()
    except ValueError:
        envelope = None
    error = envelope.get("error") if isinstance(envelope, dict) else None
    if not isinstance(error, dict):
        error = {}
    code = error.get("code")
    message = error.get("message") or f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    details = [
        (str(d.get("field", "")), str(d.get("reason", ""))) for d in error.get("details") or [] if isinstance(d, dict)
    ]
    status = response.status_code
    return _error_class(status, code)(message, status=status, code=code, details=details)
