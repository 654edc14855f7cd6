"""Study operations: each one a transaction over the store, with the domain checks in front."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from service.domain.spec import StudySpec
from service.domain.study import StudyState
from service.engines import check_study_spec, pinned_options
from service.errors import AlreadyExists, Conflict
from service.store import browsing
from service.store import studies as study_store
from service.store.browsing import StudySummary
from service.store.db import Database
from service.store.records import StudyRecord


@dataclass(frozen=True)
class CreatedStudy:
    study: StudyRecord
    created: bool  # False when an identical study already existed and if_exists="get"


async def create_study(
    db: Database, owner: str, name: str, spec: StudySpec, *, if_exists: str = "error"
) -> CreatedStudy:
    """Create a study, or with if_exists="get" return the existing one when its spec is the same."""
    resolved = check_study_spec(spec)
    seed = spec.seed if spec.seed is not None else secrets.randbits(63)
    async with db.transaction() as conn:
        existing = await study_store.find_study(conn, owner, name)
        if existing is None:
            try:
                study = await study_store.insert_study(
                    conn,
                    owner=owner,
                    name=name,
                    spec=spec,
                    engine=resolved.engine.name,
                    engine_options=pinned_options(resolved),
                    seed=seed,
                )
                return CreatedStudy(study, created=True)
            except AlreadyExists:
                if if_exists != "get":
                    raise
                existing = await study_store.get_study(conn, owner, name)
    if if_exists != "get":
        raise AlreadyExists(f"study {name!r} already exists")
    if existing.spec != spec:
        raise Conflict(f"study {name!r} already exists with a different spec")
    return CreatedStudy(existing, created=False)


async def get_study(db: Database, owner: str, name: str) -> tuple[StudyRecord, dict[str, int]]:
    async with db.direct() as conn:
        return await study_store.study_with_counts(conn, owner, name)


async def list_studies(db: Database, owner: str, *, after_id: int, limit: int) -> list[StudyRecord]:
    async with db.transaction() as conn:
        return await study_store.list_studies(conn, owner, after_id=after_id, limit=limit)


async def summarize(db: Database, studies: list[StudyRecord]) -> list[StudySummary]:
    """Trial counts and best values of listed studies (for `GET /v1/studies?summary=true`)."""
    async with db.transaction() as conn:
        return await browsing.summarize(conn, studies)


async def delete_study(db: Database, owner: str, name: str) -> None:
    async with db.transaction() as conn:
        study = await study_store.get_study(conn, owner, name)
        await study_store.delete_study(conn, study.id)


async def set_study_state(db: Database, owner: str, name: str, state: StudyState) -> StudyRecord:
    async with db.transaction() as conn:
        study = await study_store.get_study(conn, owner, name)
        await study_store.set_study_state(conn, study.id, state)
        return await study_store.get_study(conn, owner, name)
