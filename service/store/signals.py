"""Wake-ups between API processes and workers, so nobody has to poll the database fast.

A waiter registers interest in a channel, re-reads the database, and sleeps until a signal or a
timeout. Signals cross processes through PostgreSQL LISTEN/NOTIFY and stay in-process for SQLite
(whose embedded worker lives in the API process). Signals are hints, never the truth: every waiter
re-reads the database after waking and still polls on a slow timer, so a lost notification (a
dropped listener connection, say) costs latency, not correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

JOBS_QUEUED = "asktell_jobs_queued"
JOBS_DONE = "asktell_jobs_done"
CHANNELS = (JOBS_QUEUED, JOBS_DONE)
RECONNECT_SECONDS = 2.0


class Signals:
    def __init__(self, engine: AsyncEngine, listen_url: URL | None) -> None:
        self._engine = engine
        self._listen_url = listen_url  # None: in-process only (SQLite)
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Begin listening for other processes' signals (PostgreSQL only)."""
        if self._listen_url is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen_forever(), name="asktell-signal-listener")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        self.wake_all()

    @contextlib.asynccontextmanager
    async def subscription(self, channel: str) -> AsyncIterator[asyncio.Event]:
        """An event set by the next signal on `channel`; register before reading the database."""
        event = asyncio.Event()
        self._waiters[channel].add(event)
        try:
            yield event
        finally:
            self._waiters[channel].discard(event)

    async def publish(self, channel: str) -> None:
        """Signal waiters here and, on PostgreSQL, in every other process."""
        self._wake(channel)
        if self._listen_url is not None:
            try:
                async with self._engine.connect() as connection:
                    await connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})
                    await connection.commit()
            except Exception:  # a lost hint only costs latency: waiters poll as well
                log.warning("could not send signal %s", channel, exc_info=True)

    def wake_all(self) -> None:
        for channel in list(self._waiters):
            self._wake(channel)

    def _wake(self, channel: str, *_: Any) -> None:
        for event in self._waiters.get(channel, ()):
            event.set()

    async def _listen_forever(self) -> None:
        import asyncpg

        assert self._listen_url is not None
        dsn = self._listen_url.set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            connection = None
            try:
                connection = await asyncpg.connect(dsn)
                for channel in CHANNELS:
                    await connection.add_listener(channel, lambda _c, _pid, name, _payload: self._wake(name))
                self.wake_all()  # anything sent while we were away: let waiters re-read
                while not connection.is_closed():
                    await asyncio.sleep(RECONNECT_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("signal listener lost its connection; reconnecting", exc_info=True)
            finally:
                if connection is not None and not connection.is_closed():
                    await connection.close()
            await asyncio.sleep(RECONNECT_SECONDS)


async def wait(event: asyncio.Event, timeout: float) -> None:
    """Sleep until `event` is set or `timeout` passes, then clear it for the next round."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=max(timeout, 0.0))
    event.clear()
