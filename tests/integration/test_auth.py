"""Namespaces in the store, on PostgreSQL and SQLite: no study is created in a namespace deleted meanwhile (the
servers' authentication and roles: tests/system/test_auth.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from service.core import namespaces, studies
from service.domain.spec import StudySpec
from service.errors import Conflict
from service.store.db import Database, upgrade
from tests.support import make_spec


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_no_study_is_created_in_a_deleted_namespace(
    backend: str, postgresql_factory: Callable[[], str], tmp_path: Path
) -> None:
    url = postgresql_factory() if backend == "postgresql" else f"sqlite:///{tmp_path / 'keys.db'}"
    upgrade(url)
    db = Database(url)
    try:
        await namespaces.create_namespace(db, "team-x")
        await namespaces.delete_namespace(db, "team-x")
        with pytest.raises(Conflict, match="namespace 'team-x' was deleted"):  # a writer whose token was cached
            await studies.create_study(db, "team-x", "s", StudySpec.model_validate(make_spec()))
        assert [n.name for n in await namespaces.list_namespaces(db)] == ["default"]
    finally:
        await db.dispose()
