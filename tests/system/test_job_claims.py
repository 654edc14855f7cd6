"""Jobs claimed in the database behind a running server: one computation per study at a time (on both backends).
(A computed suggestion never lands on a trial created while it was computed: tests/unit/test_suggestion_redraw.py.)"""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update

from service.store import jobs as job_store
from service.store.db import Database
from service.store.models import JobRow, StudyRow, utcnow
from tests.support import RunningServer, make_spec

LEASE = timedelta(seconds=30)


async def test_a_study_computes_one_job_at_a_time(server: RunningServer, api: httpx.Client, study_name: str) -> None:
    other_name = f"{study_name}-other"
    for name in (study_name, other_name):
        assert api.post("/v1/studies", json={"name": name, **make_spec()}).status_code == 201
    db = Database(server.database_url)
    try:
        async with db.transaction() as conn:
            ids = {
                name: (await conn.execute(select(StudyRow.id).where(StudyRow.name == name))).scalar_one()
                for name in (study_name, other_name)
            }
            first = await job_store.enqueue_suggest(conn, ids[study_name], 1, "a")
            second = await job_store.enqueue_suggest(conn, ids[study_name], 1, "b")
            elsewhere = await job_store.enqueue_suggest(conn, ids[other_name], 1, "c")
        async with db.transaction() as conn:
            claimed = await job_store.claim_job(conn, "worker-1", LEASE)
        assert claimed is not None and claimed.id == first.id
        async with db.transaction() as conn:  # the study is busy: worker 2 gets the other study's job
            claimed = await job_store.claim_job(conn, "worker-2", LEASE)
        assert claimed is not None and claimed.id == elsewhere.id
        async with db.transaction() as conn:
            assert await job_store.claim_job(conn, "worker-3", LEASE) is None
        async with db.transaction() as conn:  # worker 1 went silent: its lease ran out
            await conn.execute(
                update(JobRow).where(JobRow.id == first.id).values(lease_expires_at=utcnow() - timedelta(seconds=1))
            )
        async with db.transaction() as conn:  # the stale job is redone first, still one at a time
            claimed = await job_store.claim_job(conn, "worker-3", LEASE)
        assert claimed is not None and claimed.id == first.id and claimed.attempts == 2
        async with db.transaction() as conn:
            assert await job_store.finish_job(conn, claimed, "worker-3", result={})
        async with db.transaction() as conn:
            claimed = await job_store.claim_job(conn, "worker-1", LEASE)
        assert claimed is not None and claimed.id == second.id
    finally:
        await db.dispose()
