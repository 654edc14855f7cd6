"""Who is calling and what they may do: namespaces (teams) and the roles of their tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

DEFAULT_NAMESPACE = "default"
NAMESPACE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class Role(StrEnum):
    READER = "reader"  # reads the namespace's studies and trials
    WRITER = "writer"  # also creates studies, asks, reports and tells
    ADMIN = "admin"  # also manages namespaces and tokens (of every namespace)

    def allows(self, needed: Role) -> bool:
        order = (Role.READER, Role.WRITER, Role.ADMIN)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True)
class Caller:
    """The authenticated caller: its namespace scopes every study lookup."""

    namespace: str
    role: Role
    token_id: int | None  # None when authentication is off


ANONYMOUS = Caller(namespace=DEFAULT_NAMESPACE, role=Role.ADMIN, token_id=None)


def namespace_problem(name: str) -> str | None:
    if NAMESPACE_PATTERN.match(name):
        return None
    return "1 to 64 characters: lower-case letters, digits, '-' and '_', starting with a letter or digit"
