"""A small HTTP/1.1 load generator on raw keep-alive connections, cheap enough not to be the bottleneck.

Each connection sends one request, reads the whole response (status, headers, Content-Length body)
and sends the next, until the deadline or the requests run out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def post(host: str, path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _connection(host: str, port: int, requests: Iterator[bytes], deadline: float, result: LoadResult) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < deadline:
            request = next(requests, None)
            if request is None:
                return
            started = time.perf_counter()
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            result.latencies.append(time.perf_counter() - started)
            result.requests += 1
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status >= 400:
                result.errors += 1
    finally:
        writer.close()


async def _run(host: str, port: int, requests: Iterator[bytes], connections: int, seconds: float) -> LoadResult:
    result = LoadResult()
    started = time.monotonic()
    await asyncio.gather(*(_connection(host, port, requests, started + seconds, result) for _ in range(connections)))
    result.seconds = time.monotonic() - started
    return result


def drive(host: str, port: int, requests: list[bytes], connections: int, seconds: float) -> LoadResult:
    """Send `requests` (each at most once) over `connections` connections for up to `seconds`."""
    try:
        from uvloop import new_event_loop
    except ImportError:
        new_event_loop = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(_run(host, port, iter(requests), connections, seconds))
