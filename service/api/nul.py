"""U+0000 is refused at the edge: PostgreSQL's text and JSONB cannot hold it, so a request carrying it in a path
segment, a query parameter or a JSON body (a value or a key) gets a 422 naming where, before any route runs."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from starlette.datastructures import QueryParams
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_body

NUL = "\x00"
REASON = "must not contain the character U+0000"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _json_paths(value: Any, path: str) -> Iterator[str]:
    """Where in a decoded JSON document a string (or an object's key) holds NUL, as `params[0].choices[1]`."""
    if isinstance(value, str):
        if NUL in value:
            yield path or "body"
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_paths(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            shown = key.replace(NUL, "\\u0000")
            at = f"{path}.{shown}" if path else shown
            if NUL in key:
                yield at
            else:
                yield from _json_paths(item, at)


def _is_json(scope: Scope) -> bool:
    """FastAPI reads a body as JSON when its type says so, or says nothing."""
    content_type = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip().lower()
    return content_type in (b"", b"application/json") or content_type.endswith(b"+json")


async def _whole_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The body, and the messages that carried it (to hand on unchanged), up to the last or a disconnect."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return b"".join(m.get("body", b"") for m in messages), messages


class RefuseNul:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fields = ["path"] if NUL in scope["path"] else []
        if scope["query_string"]:
            fields += [
                key.replace(NUL, "\\u0000")
                for key, value in QueryParams(scope["query_string"]).multi_items()
                if NUL in key or NUL in value
            ]
        if not fields and scope["method"] in BODY_METHODS and _is_json(scope):
            body, messages = await _whole_body(receive)
            receive = _replay(messages, receive)
            if b"\\u0000" in body or b"\x00" in body:  # escaped in UTF-8 JSON; a UTF-16 or UTF-32 body has NULs
                with contextlib.suppress(ValueError):  # not JSON: the route says so
                    fields = list(_json_paths(json.loads(body), ""))
        if fields:
            details = [{"field": field, "reason": REASON} for field in fields]
            message = "; ".join(f"{field}: {REASON}" for field in fields)
            await JSONResponse(error_body("invalid_argument", message, details), status_code=422)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that first hands back the messages already read, then the live ones (a disconnect, say)."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
