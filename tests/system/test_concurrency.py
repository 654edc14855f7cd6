"""Many clients at once: no duplicated numbers, no trial handed out twice, no lost tell."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support import RunningServer

THREADS = 32
ROUNDS = 6


def _worker(url: str, study: str, worker: int, barrier: threading.Barrier) -> list[tuple[int, float]]:
    told = []
    with httpx.Client(base_url=url, timeout=60) as api:
        barrier.wait()
        for round_ in range(ROUNDS):
            response = api.post(f"/v1/studies/{study}/ask", json={"count": 1 + round_ % 2, "worker_id": f"w{worker}"})
            response.raise_for_status()
            for trial in response.json()["trials"]:
                loss = worker * 1000 + trial["number"] + 0.5
                tell = api.post(f"/v1/studies/{study}/trials/{trial['number']}/tell", json={"values": {"loss": loss}})
                tell.raise_for_status()
                told.append((trial["number"], loss))
    return told


def test_32_threads_asking_and_telling_lose_nothing(server: RunningServer, api: httpx.Client, study: str) -> None:
    for i in range(20):  # enqueued trials are claimed concurrently too
        api.post(f"/v1/studies/{study}/trials", json={"params": {"lr": 0.001 * (i + 1), "layers": 2, "act": "relu"}})
    barrier = threading.Barrier(THREADS)
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda w: _worker(server.url, study, w, barrier), range(THREADS)))
    told = [item for worker in results for item in worker]
    numbers = [number for number, _ in told]
    duplicates = [n for n, count in Counter(numbers).items() if count > 1]
    assert not duplicates, f"trials handed out twice: {duplicates}"

    stored = api.get(f"/v1/studies/{study}/trials", params={"page_size": 10_000}).json()["trials"]
    assert [t["number"] for t in stored] == list(range(len(stored))), "trial numbers have gaps or duplicates"
    assert len(stored) == len(told) == THREADS * sum(1 + r % 2 for r in range(ROUNDS))
    by_number = {t["number"]: t for t in stored}
    for number, loss in told:
        assert by_number[number]["state"] == "completed"
        assert by_number[number]["values"] == {"loss": loss}
    assert sum(t["source"] == "user" for t in stored) == 20


def test_concurrent_tells_of_one_trial_one_wins(server: RunningServer, api: httpx.Client, study: str) -> None:
    for _ in range(3):
        (trial,) = api.post(f"/v1/studies/{study}/ask", json={}).json()["trials"]
        url = f"{server.url}/v1/studies/{study}/trials/{trial['number']}/tell"
        barrier = threading.Barrier(16)

        def tell(value: int, url: str = url, barrier: threading.Barrier = barrier) -> int:
            barrier.wait()
            return httpx.post(url, json={"values": {"loss": value}}, timeout=60).status_code

        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(tell, range(16)))
        assert sorted(codes) == [200] + [409] * 15
        stored = api.get(f"/v1/studies/{study}/trials/{trial['number']}").json()
        assert stored["state"] == "completed"


def test_identical_concurrent_tells_all_succeed(server: RunningServer, api: httpx.Client, study: str) -> None:
    (trial,) = api.post(f"/v1/studies/{study}/ask", json={}).json()["trials"]
    url = f"{server.url}/v1/studies/{study}/trials/{trial['number']}/tell"
    with ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(lambda _: httpx.post(url, json={"values": {"loss": 1.5}}, timeout=60).status_code, range(8))
        )
    assert codes == [200] * 8
