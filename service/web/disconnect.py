"""Work nobody waits for stops: a long computation polls whether its client is still connected.

A browser refreshing a page, or a client that timed out, drops its connection; without this the server
would compute the answer to the end for no one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import Request

T = TypeVar("T")
POLL_SECONDS = 0.1


async def unless_disconnected(request: Request, work: Callable[[Callable[[], bool]], Awaitable[T]]) -> T:
    """`work(cancelled)`'s result; `cancelled()` turns true once the client has gone (the work then raises)."""
    gone = threading.Event()  # read from the computing thread
    task = asyncio.ensure_future(work(gone.is_set))
    while not task.done():
        await asyncio.wait({task}, timeout=POLL_SECONDS)
        if not task.done() and await request.is_disconnected():
            gone.set()
            await asyncio.wait({task})
    return task.result()
