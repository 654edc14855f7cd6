"""Engine state per study: the memory an engine keeps between computations, what it tells users (its status), and
how its computations went."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.store.db import dialect_insert
from service.store.models import EngineStateRow, utcnow


@dataclass(frozen=True)
class EngineStatus:
    memory: dict[str, Any]  # the engine's warm-start state: its own business
    status: dict[str, Any]  # what the engine tells users (e.g. `likely_infeasible`)
    computations: int
    fallbacks: int
    last_seconds: float | None
    last_rung: str | None
    last_error: str | None
    updated_at: datetime | None


async def engine_status(conn: AsyncConnection, study_id: int) -> EngineStatus:
    query = select(*EngineStateRow.__table__.c).where(EngineStateRow.study_id == study_id)
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        return EngineStatus({}, {}, 0, 0, None, None, None, None)
    return EngineStatus(
        row.memory,
        row.status or {},
        row.computations,
        row.fallbacks,
        row.last_seconds,
        row.last_rung,
        row.last_error,
        row.updated_at,
    )


async def record_computation(
    conn: AsyncConnection,
    study_id: int,
    *,
    memory: dict[str, Any] | None,
    seconds: float | None,
    rung: str | None,
    error: str | None,
    fallback: bool,
    status: dict[str, Any] | None = None,
) -> None:
    """Count one engine computation (or fallback), keep the engine's memory for the next one and its status for
    users; None keeps what was stored."""
    now = utcnow()
    values: dict[str, Any] = dict(last_seconds=seconds, last_rung=rung, last_error=error, updated_at=now)
    statement = dialect_insert(conn)(EngineStateRow).values(
        study_id=study_id,
        memory=memory or {},
        status=status,
        computations=0 if fallback else 1,
        fallbacks=int(fallback),
        **values,
    )
    update_values: dict[str, Any] = {
        **values,
        "computations": EngineStateRow.computations + (0 if fallback else 1),
        "fallbacks": EngineStateRow.fallbacks + int(fallback),
    }
    if memory is not None:
        update_values["memory"] = memory
    if status is not None:
        update_values["status"] = status
    await conn.execute(statement.on_conflict_do_update(index_elements=[EngineStateRow.study_id], set_=update_values))
