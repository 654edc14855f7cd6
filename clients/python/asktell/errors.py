"""Typed errors carrying what the server said; one class per kind of thing a caller may handle."""

from __future__ import annotations

from typing import Any

import httpx


class AsktellError(Exception):
    """Base of every error the client raises on purpose."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 details: list[tuple[str, str]] | None = None) -> None:
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
    """The request clashes with the current state (409): a second tell, an ask on a paused study."""


class AlreadyExistsError(ConflictError):
    """A study of that name exists already (409, code already_exists)."""


class AuthenticationError(AsktellError):
    """The token is missing, wrong, or may not do this (401/403)."""


class ServerError(AsktellError):
    """The server failed (5xx) and retries, if allowed, did not help."""


class ServiceUnavailableError(AsktellError):
    """The server could not be reached, even after retries."""


class AskTimeoutError(AsktellError):
    """Suggestions were still being computed when the caller's timeout ran out; `job_id` can be polled."""

    def __init__(self, message: str, job_id: int) -> None:
        super().__init__(message)
        self.job_id = job_id


def error_from_response(response: httpx.Response) -> AsktellError:
    """Map an error response to its exception class, keeping the server's message and field details."""
    try:
        body: Any = response.json().get("error", {})
    except ValueError:
        body = {}
    code = body.get("code") if isinstance(body, dict) else None
    message = (body.get("message") if isinstance(body, dict) else None) or f"HTTP {response.status_code}"
    details = [(d.get("field", ""), d.get("reason", "")) for d in body.get("details", [])] \
        if isinstance(body, dict) else []
    status = response.status_code
    cls: type[AsktellError]
    if status in (400, 422):
        cls = InvalidArgumentError
    elif status == 404:
        cls = NotFoundError
    elif status == 409:
        cls = AlreadyExistsError if code == "already_exists" else ConflictError
    elif status in (401, 403):
        cls = AuthenticationError
    elif status >= 500:
        cls = ServerError
    else:
        cls = AsktellError
    return cls(message, status=status, code=code, details=details)
