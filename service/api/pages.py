"""Opaque page tokens: a cursor a client passes back, not a number it should compute with."""

from __future__ import annotations

import base64

from service.errors import InvalidArgument


def encode(position: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{position}".encode()).decode().rstrip("=")


def decode(token: str | None, start: int) -> int:
    if not token:
        return start
    try:
        prefix, position = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().split(":")
        if prefix != "v1" or not -1 <= int(position) < 2**63:
            raise ValueError(prefix)
        return int(position)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidArgument.one("page_token", "not a token this API handed out") from error
