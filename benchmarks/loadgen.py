"""A small HTTP/1.1 load generator on raw keep-alive connections, cheap enough not to be the bottleneck.

Each of `connections` asyncio-stream connections sends one pre-built request, reads the response
(status line and headers up to the blank line, then exactly Content-Length bytes of body) and sends
the next, until the deadline passes or the requests run out; every request is sent at most once.
Requests that complete during the first `warmup` seconds are sent but not counted. uvloop is used
when installed. `LoadGenerator` runs it in a process of its own, so that it does not share the
benchmark's interpreter (and GIL) with anything else.
"""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

_CONTENT_LENGTH = b"\r\ncontent-length:"
REPO = Path(__file__).resolve().parent.parent


@dataclass
class LoadResult:
    """What one run measured: counts, statuses and latencies inside the measurement window."""

    requests: int = 0  # completed inside the measurement window
    errors: int = 0  # of those, status >= 400
    seconds: float = 0.0  # length of the measurement window (shorter when the requests ran out)
    sent: int = 0  # all requests sent, warm-up included
    exhausted: bool = False  # the requests ran out before the deadline
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def post(host: str, path: str, body: bytes) -> bytes:
    """The bytes of one keep-alive HTTP/1.1 POST with a JSON body."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _body_length(head: bytes) -> int:
    lowered = head.lower()
    start = lowered.find(_CONTENT_LENGTH)
    if start < 0:
        raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
    start += len(_CONTENT_LENGTH)
    return int(lowered[start : lowered.index(b"\r\n", start)])


async def _connection(
    host: str, port: int, requests: Iterator[bytes], window: tuple[float, float], result: LoadResult
) -> float:
    """Drive one connection; returns the time of its last completed request."""
    counted_from, deadline = window
    reader, writer = await asyncio.open_connection(host, port)
    last = time.perf_counter()
    clock = time.perf_counter
    try:
        while last < deadline:
            request = next(requests, None)
            if request is None:
                result.exhausted = True
                break
            started = clock()
            writer.write(request)
            result.sent += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = _body_length(head)
            if length:
                await reader.readexactly(length)
            last = clock()
            if counted_from <= last < deadline:
                status = int(head[9:12])
                result.requests += 1
                result.latencies.append(last - started)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status >= 400:
                    result.errors += 1
    finally:
        writer.close()
    return last


async def _run(
    host: str, port: int, requests: Sequence[bytes], connections: int, seconds: float, warmup: float
) -> LoadResult:
    result = LoadResult()
    started = time.perf_counter()
    window = (started + warmup, started + warmup + seconds)
    source = iter(requests)
    finished = await asyncio.gather(*(_connection(host, port, source, window, result) for _ in range(connections)))
    end = min(window[1], max(finished)) if result.exhausted else window[1]
    result.seconds = max(0.0, end - window[0])
    return result


def drive(
    host: str, port: int, requests: Sequence[bytes], connections: int, seconds: float, warmup: float = 0.0
) -> LoadResult:
    """Send `requests` (each at most once) over `connections` connections: `warmup` s uncounted, then `seconds`."""
    try:
        from uvloop import new_event_loop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        new_event_loop = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(_run(host, port, requests, connections, seconds, warmup))


class LoadGenerator:
    """Runs `drive` in a child process (`python -m benchmarks.loadgen`), so that it has a core and a GIL of its own.

    The job goes to the child's stdin and the result comes back on its stdout, both pickled; the child is
    killed if it overruns its deadline.
    """

    def run(
        self, port: int, requests: Sequence[bytes], *, connections: int, seconds: float, warmup: float = 0.0
    ) -> LoadResult:
        job = {
            "host": "127.0.0.1",
            "port": port,
            "requests": list(requests),
            "connections": connections,
            "seconds": seconds,
            "warmup": warmup,
        }
        child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.loadgen"], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        try:
            out, _ = child.communicate(pickle.dumps(job), timeout=warmup + seconds + 120)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        if child.returncode != 0:
            raise RuntimeError(f"load generator exited with {child.returncode}")
        return LoadResult(**pickle.loads(out))

    def close(self) -> None:
        """Nothing to release: every run has its own child process."""

    def __enter__(self) -> LoadGenerator:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _child() -> None:
    job = pickle.load(sys.stdin.buffer)
    pickle.dump(asdict(drive(**job)), sys.stdout.buffer)


if __name__ == "__main__":
    _child()
