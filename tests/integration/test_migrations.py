"""`db upgrade` on an empty database gives exactly the models' schema, and is safe to run concurrently."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from service.store.db import alembic_config, upgrade
from service.store.models import Base
from service.store.urls import sync_url


def _schema_diff(url: str) -> list[object]:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))
    finally:
        engine.dispose()


def test_upgrade_head_on_empty_postgresql_matches_the_models(postgresql_factory: Callable[[], str]) -> None:
    url = postgresql_factory()
    upgrade(url)
    assert _schema_diff(url) == []


def test_upgrade_head_on_empty_sqlite_matches_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    assert _schema_diff(url) == []


def test_every_foreign_key_leads_an_index(postgresql_factory: Callable[[], str]) -> None:
    url = postgresql_factory()
    upgrade(url)
    engine = create_engine(sync_url(url))
    inspector = inspect(engine)
    for table in inspector.get_table_names():
        leading = {tuple(i["column_names"][:1]) for i in inspector.get_indexes(table)}
        leading |= {tuple(u["column_names"][:1]) for u in inspector.get_unique_constraints(table)}
        leading.add(tuple(inspector.get_pk_constraint(table)["constrained_columns"][:1]))
        for foreign_key in inspector.get_foreign_keys(table):
            assert tuple(foreign_key["constrained_columns"][:1]) in leading, (table, foreign_key)
    engine.dispose()


@pytest.mark.parametrize("replicas", [4])
def test_replicas_upgrading_at_once_all_succeed(postgresql_factory: Callable[[], str], replicas: int) -> None:
    url = postgresql_factory()
    with ThreadPoolExecutor(replicas) as pool:
        list(pool.map(lambda _: upgrade(url), range(replicas)))
    assert _schema_diff(url) == []


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_a_study_from_before_0008_keeps_no_pinned_options(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = (
        request.getfixturevalue("postgresql_factory")()
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 'old.db'}"
    )
    upgrade(url, "0007")
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO studies (owner, name, spec, engine, seed, state, next_trial_number, created_at, "
                    "updated_at) VALUES ('default', 'old', :spec, 'gp', 1, 'active', 0, CURRENT_TIMESTAMP, "
                    "CURRENT_TIMESTAMP)"
                ),
                {
                    "spec": '{"params": [{"name": "x", "type": "float", "low": 0, "high": 1}], '
                    '"objectives": [{"name": "y", "goal": "minimize"}]}'
                },
            )
        upgrade(url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT engine_options FROM studies WHERE name = 'old'")).scalar() is None
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_0008_to_0010_go_down_and_up_again(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Pinned options (0008), planned runs in the pool (0009) and trial events (0010) come off and back cleanly."""
    url = (
        request.getfixturevalue("postgresql_factory")()
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 'round.db'}"
    )
    upgrade(url)
    command.downgrade(alembic_config(url), "0007")
    engine = create_engine(sync_url(url))
    try:
        inspector = inspect(engine)
        assert "trial_events" not in inspector.get_table_names()
        assert "engine_options" not in {c["name"] for c in inspector.get_columns("studies")}
        assert not {"budget", "resume_number"} & {c["name"] for c in inspector.get_columns("pooled_suggestions")}
    finally:
        engine.dispose()
    upgrade(url)
    assert _schema_diff(url) == []


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_0011_moves_an_engines_status_out_of_its_memory_and_back(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """An engine kept what users see (`likely_infeasible`) in its memory under `status`; 0011 gives it a column."""
    url = (
        request.getfixturevalue("postgresql_factory")()
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 'status.db'}"
    )
    upgrade(url, "0010")
    status = {"likely_infeasible": True, "rounds": 3, "infeasibility": {"rounds": 3}}
    memory = {"outcomes": {"names": ["y", "c"]}, "infeasible": {"rounds": 3, "data": 9}}
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO studies (owner, name, spec, engine, seed, state, next_trial_number, created_at, "
                    "updated_at) VALUES ('default', 'old', '{}', 'constrained', 1, 'active', 0, CURRENT_TIMESTAMP, "
                    "CURRENT_TIMESTAMP)"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO engine_states (study_id, memory, computations, fallbacks, updated_at) "
                    "SELECT id, :memory, 3, 0, CURRENT_TIMESTAMP FROM studies WHERE name = 'old'"
                ),
                {"memory": json.dumps({**memory, "status": status})},
            )
        upgrade(url)
        with engine.connect() as connection:
            row = connection.execute(text("SELECT memory, status FROM engine_states")).one()
        assert [_json(row.memory), _json(row.status)] == [memory, status]
        command.downgrade(alembic_config(url), "0010")
        with engine.connect() as connection:
            assert _json(connection.execute(text("SELECT memory FROM engine_states")).scalar()) == {
                **memory,
                "status": status,
            }
    finally:
        engine.dispose()


def _json(value: object) -> object:
    """A JSON column as read by plain SQL: parsed already on PostgreSQL, text on SQLite."""
    return json.loads(value) if isinstance(value, str) else value
