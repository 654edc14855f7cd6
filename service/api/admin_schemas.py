"""Bodies of the namespace and token routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from service.domain.caller import NAMESPACE_PATTERN, Role
from service.store.namespaces import NamespaceRecord
from service.store.tokens import TokenRecord


class NamespaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=NAMESPACE_PATTERN.pattern)


class NamespaceOut(BaseModel):
    name: str
    created_at: datetime
    studies: int
    tokens: int = Field(description="Tokens not revoked.")

    @classmethod
    def of(cls, record: NamespaceRecord) -> NamespaceOut:
        return cls(**record.__dict__)


class NamespaceList(BaseModel):
    namespaces: list[NamespaceOut]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: str = Field(min_length=1, max_length=64, pattern=NAMESPACE_PATTERN.pattern)
    role: Role = Role.WRITER
    name: str = Field(default="", max_length=128, description="What the token is for (shown in listings).")


class TokenOut(BaseModel):
    id: int
    namespace: str
    role: Role
    name: str
    prefix: str = Field(description="The token's first characters, to recognise it; the secret is never stored.")
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, record: TokenRecord) -> TokenOut:
        return cls(**record.__dict__)


class TokenCreated(TokenOut):
    secret: str = Field(description="The bearer token. Shown this once: only its hash is stored.")


class TokenList(BaseModel):
    tokens: list[TokenOut]
