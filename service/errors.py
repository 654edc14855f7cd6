"""Domain errors: raised by the store and the domain checks, translated to HTTP in one place (api/errors.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    """One invalid field: a dotted path a user can find in their request, and what is wrong with it."""

    field: str
    reason: str


class AsktellError(Exception):
    """Base of every error the service reports to a client on purpose."""

    code: str = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(AsktellError):
    """The request is well-formed JSON but says something the service cannot accept."""

    code = "invalid_argument"

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in problems))

    @classmethod
    def one(cls, field: str, reason: str) -> InvalidArgument:
        return cls([FieldProblem(field, reason)])


class NotFound(AsktellError):
    code = "not_found"


class Conflict(AsktellError):
    """The request is valid but clashes with the current state (a second tell, an ask on a paused study)."""

    code = "conflict"


class AlreadyExists(Conflict):
    code = "already_exists"


class Unauthenticated(AsktellError):
    """No bearer token, or one that is unknown or revoked."""

    code = "unauthenticated"


class PermissionDenied(AsktellError):
    """The token is valid but its role may not do this (a reader writing, a writer managing tokens)."""

    code = "permission_denied"


class TooLarge(AsktellError):
    code = "too_large"
