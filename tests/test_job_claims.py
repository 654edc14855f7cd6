"""Jobs and the trials they create: one computation per study at a time (on both backends), and a computed
suggestion never lands on a trial created while it was computed."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select, update

from service.core.new_trials import NewTrial, kept_apart
from service.domain.spec import StudySpec
from service.engines import resolve_engine
from service.engines.base import SuggestRequest
from service.engines.sobol import SobolEngine
from service.store import jobs as job_store
from service.store.db import Database
from service.store.models import JobRow, StudyRow, utcnow
from tests.conftest import RunningServer, make_spec

LEASE = timedelta(seconds=30)


async def test_a_study_computes_one_job_at_a_time(server: RunningServer, api: httpx.Client, study_name: str) -> None:
    other_name = f"{study_name}-other"
    for name in (study_name, other_name):
        assert api.post("/v1/studies", json={"name": name, **make_spec()}).status_code == 201
    db = Database(server.database_url)
    try:
        async with db.transaction() as conn:
            ids = {name: (await conn.execute(select(StudyRow.id).where(StudyRow.name == name))).scalar_one()
                   for name in (study_name, other_name)}
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
            await conn.execute(update(JobRow).where(JobRow.id == first.id)
                               .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
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


def test_a_computed_suggestion_on_a_trial_created_meanwhile_is_replaced() -> None:
    spec = StudySpec.model_validate({**make_spec(), "seed": 1})
    created_meanwhile = {"lr": 0.01, "layers": 3, "act": "tanh"}
    apart = {"lr": 0.05, "layers": 6, "act": "relu"}
    computed = [NewTrial(dict(created_meanwhile), {"branch": "exploit"}), NewTrial(apart)]
    kept = kept_apart(spec, 1, computed, [created_meanwhile], first_number=9)
    assert kept[1] == NewTrial(apart)
    assert kept[0].params != created_meanwhile and kept[0].info == {"branch": "exploit", "redrawn": "sobol"}
    sobol = SobolEngine().suggest(SuggestRequest(spec, resolve_engine(spec).options, 1, 1, 9)).params
    assert kept[0].params == sobol[0]  # the study's own Sobol point for trial 9: reproducible
