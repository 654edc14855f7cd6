"""Study queries. Every function runs inside the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, delete, exists, false, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from service.domain.spec import StudySpec
from service.domain.study import StudyState
from service.domain.trial import TrialState
from service.errors import AlreadyExists, Conflict, NotFound
from service.store.models import STUDIES, NamespaceRow, StudyRow, TrialRow, utcnow
from service.store.prepared import Prepared, Statements, constant
from service.store.records import StudyRecord

_STUDY_COLUMNS = StudyRow.__table__.c


def study_record(row: Any) -> StudyRecord:
    spec = StudySpec.model_validate(row.spec)
    return StudyRecord(
        id=row.id,
        owner=row.owner,
        name=row.name,
        spec=spec,
        engine=row.engine,
        seed=row.seed,
        state=StudyState(row.state),
        next_trial_number=row.next_trial_number,
        created_at=row.created_at,
        updated_at=row.updated_at,
        engine_options=row.engine_options,
    )


async def insert_study(
    conn: AsyncConnection,
    *,
    owner: str,
    name: str,
    spec: StudySpec,
    engine: str,
    engine_options: dict[str, Any],
    seed: int,
) -> StudyRecord:
    now = utcnow()
    values = dict(
        owner=owner,
        name=name,
        spec=spec.model_dump(mode="json"),
        engine=engine,
        engine_options=engine_options,
        seed=seed,
        state=StudyState.ACTIVE.value,
        next_trial_number=0,
        created_at=now,
        updated_at=now,
    )
    try:
        async with conn.begin_nested():
            row = (await conn.execute(insert(StudyRow).values(**values).returning(*_STUDY_COLUMNS))).one()
    except IntegrityError as error:
        if not await namespace_exists(conn, owner):  # the owner's key refused it: the namespace was just deleted
            raise Conflict(f"namespace {owner!r} was deleted; its tokens are revoked") from error
        raise AlreadyExists(f"study {name!r} already exists") from error
    return study_record(row)


async def namespace_exists(conn: AsyncConnection, name: str) -> bool:
    return (await conn.execute(select(NamespaceRow.name).where(NamespaceRow.name == name))).first() is not None


async def find_study(conn: AsyncConnection, owner: str, name: str) -> StudyRecord | None:
    query = select(*_STUDY_COLUMNS).where(StudyRow.owner == owner, StudyRow.name == name)
    row = (await conn.execute(query)).one_or_none()
    return study_record(row) if row else None


async def get_study(conn: AsyncConnection, owner: str, name: str) -> StudyRecord:
    study = await find_study(conn, owner, name)
    if study is None:
        raise NotFound(f"study {name!r} not found")
    return study


@dataclass(frozen=True)
class AskContext:
    study: StudyRecord
    has_waiting: bool  # enqueued trials exist
    worker_has_active: bool  # the asking worker holds active trials


async def ask_context(conn: AsyncConnection, owner: str, name: str, worker_id: str | None) -> AskContext:
    """The study plus whether an ask must look for enqueued or held trials, in one round trip."""
    waiting = exists().where(TrialRow.study_id == StudyRow.id, TrialRow.state == TrialState.WAITING.value)
    held = (
        exists().where(
            TrialRow.study_id == StudyRow.id, TrialRow.worker_id == worker_id, TrialRow.state == TrialState.ACTIVE.value
        )
        if worker_id is not None
        else false()
    )
    query = select(*_STUDY_COLUMNS, waiting.label("has_waiting"), held.label("worker_has_active")).where(
        StudyRow.owner == owner, StudyRow.name == name
    )
    row = (await conn.execute(query)).one_or_none()
    if row is None:
        raise NotFound(f"study {name!r} not found")
    return AskContext(study_record(row), bool(row.has_waiting), bool(row.worker_has_active))


async def list_studies(conn: AsyncConnection, owner: str, *, after_id: int, limit: int) -> list[StudyRecord]:
    query = (
        select(*_STUDY_COLUMNS)
        .where(StudyRow.owner == owner, StudyRow.id > after_id)
        .order_by(StudyRow.id)
        .limit(limit)
    )
    return [study_record(row) for row in await conn.execute(query)]


async def delete_study(conn: AsyncConnection, study_id: int) -> None:
    await conn.execute(delete(StudyRow).where(StudyRow.id == study_id))


async def set_study_state(conn: AsyncConnection, study_id: int, state: StudyState) -> None:
    await conn.execute(update(StudyRow).where(StudyRow.id == study_id).values(state=state.value, updated_at=utcnow()))


async def allocate_trial_numbers(conn: AsyncConnection, study_id: int, count: int) -> int:
    """Reserve `count` consecutive trial numbers and return the first.

    The UPDATE locks the study row until the transaction ends, so numbers are gap-free and unique
    under any concurrency; a rolled-back transaction gives its numbers back.
    """
    query = (
        update(StudyRow)
        .where(StudyRow.id == study_id)
        .values(next_trial_number=StudyRow.next_trial_number + count)
        .returning(StudyRow.next_trial_number)
    )
    next_number = (await conn.execute(query)).scalar_one()
    return int(next_number) - count


async def trial_counts(conn: AsyncConnection, study_id: int) -> dict[str, int]:
    query = select(TrialRow.state, func.count()).where(TrialRow.study_id == study_id).group_by(TrialRow.state)
    return {state: count for state, count in await conn.execute(query)}


async def get_study_by_id(conn: AsyncConnection, study_id: int) -> StudyRecord | None:
    row = (await conn.execute(select(*_STUDY_COLUMNS).where(StudyRow.id == study_id))).one_or_none()
    return study_record(row) if row else None


async def lock_study(conn: AsyncConnection, study_id: int) -> None:
    """Serialize with other writers of this study until the transaction ends (SQLite serializes anyway)."""
    await conn.execute(select(StudyRow.id).where(StudyRow.id == study_id).with_for_update())


async def studies_by_id(conn: AsyncConnection, ids: list[int]) -> dict[int, StudyRecord]:
    rows = await conn.execute(select(*_STUDY_COLUMNS).where(StudyRow.id.in_(ids)))
    return {row.id: study_record(row) for row in rows}


@dataclass(frozen=True)
class Reservation:
    """Trial numbers reserved by `reserve_trial_numbers`, with what decides whether the ask may use them."""

    study_id: int
    state: StudyState
    first_number: int
    has_waiting: bool
    worker_has_active: bool


_TRIALS = TrialRow.__table__.c
# The flags find the study by name again, not by correlation to the updated row: SQLite renders RETURNING's columns
# unqualified, and inside the subquery `id` would be the trial's.
_NAMED_STUDY = (
    select(_STUDY_COLUMNS.id)
    .where(_STUDY_COLUMNS.owner == bindparam("study_owner"), _STUDY_COLUMNS.name == bindparam("study_name"))
    .scalar_subquery()
)
_RESERVE = Prepared(
    update(STUDIES)
    .where(_STUDY_COLUMNS.owner == bindparam("study_owner"), _STUDY_COLUMNS.name == bindparam("study_name"))
    .values(next_trial_number=_STUDY_COLUMNS.next_trial_number + bindparam("reserved"))
    .returning(
        _STUDY_COLUMNS.id,
        _STUDY_COLUMNS.state,
        _STUDY_COLUMNS.next_trial_number,
        exists()
        .where(_TRIALS.study_id == _NAMED_STUDY, _TRIALS.state == constant(TrialState.WAITING.value))
        .label("has_waiting"),
        exists()
        .where(
            _TRIALS.study_id == _NAMED_STUDY,
            _TRIALS.worker_id == bindparam("asking_worker"),
            _TRIALS.state == constant(TrialState.ACTIVE.value),
        )
        .label("worker_has_active"),
    )
)


async def reserve_trial_numbers(
    conn: Statements, owner: str, name: str, count: int, worker_id: str | None
) -> Reservation | None:
    """Reserve `count` trial numbers in the statement that finds the study (None: no such study), and lock its row
    until the transaction ends, like `allocate_trial_numbers`. The flags come from the statement's snapshot: a
    caller that must see what a writer it waited for did reads again afterwards."""
    rows = await conn.rows(_RESERVE, study_owner=owner, study_name=name, reserved=count, asking_worker=worker_id)
    if not rows:
        return None
    row = rows[0]
    return Reservation(
        study_id=row["id"],
        state=StudyState(row["state"]),
        first_number=int(row["next_trial_number"]) - count,
        has_waiting=bool(row["has_waiting"]),
        worker_has_active=bool(row["worker_has_active"]),
    )


_STUDY_WITH_COUNTS = Prepared(
    select(
        *_STUDY_COLUMNS,
        *(
            select(func.count())
            .where(_TRIALS.study_id == _STUDY_COLUMNS.id, _TRIALS.state == constant(state.value))
            .scalar_subquery()
            .label(f"count_{state.value}")
            for state in TrialState
        ),
    ).where(_STUDY_COLUMNS.owner == bindparam("study_owner"), _STUDY_COLUMNS.name == bindparam("study_name"))
)


async def study_with_counts(conn: Statements, owner: str, name: str) -> tuple[StudyRecord, dict[str, int]]:
    """A study and its trial counts by state (states without trials left out) in one statement: each count is a
    range of the (study, state, number) index."""
    rows = await conn.rows(_STUDY_WITH_COUNTS, study_owner=owner, study_name=name)
    if not rows:
        raise NotFound(f"study {name!r} not found")
    row = rows[0]
    counts = {state.value: int(row[f"count_{state.value}"]) for state in TrialState if row[f"count_{state.value}"]}
    return study_record(SimpleNamespace(**row)), counts
