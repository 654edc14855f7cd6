"""The ready pool: suggestions a worker computed ahead, handed out by asks without waiting for an engine.

A pooled suggestion carries the study's data version (its count of finished trials) at the time the engine read
the data, so an ask can tell how far behind the study's results it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.models import PooledSuggestionRow, utcnow
from service.store.trials import finished_count_query


@dataclass(frozen=True)
class PooledSuggestion:
    id: int
    params: dict[str, Any]
    data_version: int
    engine_info: dict[str, Any] | None
    as_of_number: int | None
    budget: float | None = None  # a planned run's budget (engines that plan runs)
    resume_number: int | None = None  # a planned resume: the paused trial it hands out again


async def fresh_pooled_suggestions(
    conn: AsyncConnection, study_id: int, freshness: int, limit: int
) -> list[PooledSuggestion]:
    """Pooled suggestions at most `freshness` results behind the study's data, locked for this
    transaction; concurrent asks skip each other's."""
    min_version = finished_count_query(study_id).scalar_subquery() - freshness
    query = (
        select(
            PooledSuggestionRow.id,
            PooledSuggestionRow.params,
            PooledSuggestionRow.data_version,
            PooledSuggestionRow.engine_info,
            PooledSuggestionRow.as_of_number,
            PooledSuggestionRow.budget,
            PooledSuggestionRow.resume_number,
        )
        .where(PooledSuggestionRow.study_id == study_id, PooledSuggestionRow.data_version >= min_version)
        .order_by(PooledSuggestionRow.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [PooledSuggestion(*row) for row in await conn.execute(query)]


async def delete_pooled(conn: AsyncConnection, ids: Sequence[int]) -> None:
    if ids:
        await conn.execute(delete(PooledSuggestionRow).where(PooledSuggestionRow.id.in_(list(ids))))


async def replace_pool(
    conn: AsyncConnection,
    study_id: int,
    params: Sequence[dict[str, Any]],
    data_version: int,
    job_id: int,
    engine_info: Sequence[dict[str, Any] | None] | None = None,
    as_of_number: int | None = None,
) -> None:
    """Replace the study's pool; `as_of_number` is the study's next trial number when the engine read its data."""
    await conn.execute(delete(PooledSuggestionRow).where(PooledSuggestionRow.study_id == study_id))
    if params:
        now = utcnow()
        infos = list(engine_info) if engine_info is not None else [None] * len(params)
        await conn.execute(
            insert(PooledSuggestionRow),
            [
                dict(
                    study_id=study_id,
                    params=p,
                    data_version=data_version,
                    job_id=job_id,
                    created_at=now,
                    engine_info=info,
                    as_of_number=as_of_number,
                )
                for p, info in zip(params, infos, strict=True)
            ],
        )


@dataclass(frozen=True)
class PlannedRun:
    """A run an engine that plans runs wants handed out: new (`params`) or a resume of paused trial `resume_number`."""

    params: dict[str, Any]
    budget: float
    resume_number: int | None
    engine_info: dict[str, Any] | None


async def replace_plan_pool(
    conn: AsyncConnection,
    study_id: int,
    planned: Sequence[PlannedRun],
    data_version: int,
    job_id: int | None,
    as_of_number: int,
) -> None:
    """Replace the study's pool with a plan's runs, kept in the engine's order (best first)."""
    await conn.execute(delete(PooledSuggestionRow).where(PooledSuggestionRow.study_id == study_id))
    if planned:
        now = utcnow()
        await conn.execute(
            insert(PooledSuggestionRow),
            [
                dict(
                    study_id=study_id,
                    params=run.params,
                    data_version=data_version,
                    job_id=job_id,
                    created_at=now,
                    engine_info=run.engine_info,
                    as_of_number=as_of_number,
                    budget=run.budget,
                    resume_number=run.resume_number,
                )
                for run in planned
            ],
        )


async def pool_size(conn: AsyncConnection, study_id: int) -> int:
    query = select(func.count()).where(PooledSuggestionRow.study_id == study_id)
    return int((await conn.execute(query)).scalar_one())
