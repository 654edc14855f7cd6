"""Routes for namespaces and tokens; every one needs an admin token (or authentication off)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from service.api.admin_schemas import (
    NamespaceCreate,
    NamespaceList,
    NamespaceOut,
    TokenCreate,
    TokenCreated,
    TokenList,
    TokenOut,
)
from service.core import namespaces, tokens
from service.domain.caller import Caller
from service.store.db import Database
from service.web.deps import admin, authenticator, database
from service.web.paths import RowId

router = APIRouter(prefix="/v1", tags=["access"])
Db = Annotated[Database, Depends(database)]
Admin = Annotated[Caller, Depends(admin)]


@router.post("/namespaces", response_model=NamespaceOut, status_code=status.HTTP_201_CREATED)
async def create_namespace(body: NamespaceCreate, db: Db, _: Admin) -> NamespaceOut:
    return NamespaceOut.of(await namespaces.create_namespace(db, body.name))


@router.get("/namespaces", response_model=NamespaceList)
async def list_namespaces(db: Db, _: Admin) -> NamespaceList:
    return NamespaceList(namespaces=[NamespaceOut.of(n) for n in await namespaces.list_namespaces(db)])


@router.delete(
    "/namespaces/{namespace}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"description": "The namespace still holds studies, or is the default one"}},
)
async def delete_namespace(namespace: str, request: Request, db: Db, _: Admin) -> Response:
    """Delete an empty namespace; its tokens are revoked."""
    await namespaces.delete_namespace(db, namespace)
    authenticator(request).forget()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
async def create_token(body: TokenCreate, db: Db, _: Admin) -> TokenCreated:
    """A new token; the response carries its secret, which is never shown again."""
    issued = await tokens.create_token(db, namespace=body.namespace, role=body.role, name=body.name)
    return TokenCreated(secret=issued.secret, **TokenOut.of(issued.record).model_dump())


@router.get("/tokens", response_model=TokenList)
async def list_tokens(db: Db, _: Admin, namespace: str | None = None) -> TokenList:
    return TokenList(tokens=[TokenOut.of(t) for t in await tokens.list_tokens(db, namespace)])


@router.delete("/tokens/{token_id}", response_model=TokenOut)
async def revoke_token(token_id: RowId, request: Request, db: Db, _: Admin) -> TokenOut:
    """Revoke a token: this replica refuses it at once, the others within the token cache time."""
    revoked = await tokens.revoke_token(db, token_id)
    authenticator(request).forget()
    return TokenOut.of(revoked)
