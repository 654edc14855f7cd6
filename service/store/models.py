"""The schema: studies, their trials, and the trials' intermediate measurements.

Hot queries filter trials by (study, state) and (study, worker); both have indexes, and every
foreign key is the leading column of an index.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

JSONValue = JSON().with_variant(JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite only auto-increments INTEGER keys


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores them without a zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class StudyRow(Base):
    __tablename__ = "studies"
    __table_args__ = (
        UniqueConstraint("owner", "name", name="uq_studies_owner_name"),
        {"sqlite_autoincrement": True},  # ids are never reused, so caches keyed by id stay valid
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # The namespace that owns the study. The key makes deleting a namespace and creating a study in it exclude
    # each other: whichever comes second fails, so no study outlives its namespace.
    owner: Mapped[str] = mapped_column(
        String(128), ForeignKey("namespaces.name", ondelete="RESTRICT", name="fk_studies_owner_namespaces")
    )
    name: Mapped[str] = mapped_column(String(256))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    engine: Mapped[str] = mapped_column(String(64))
    # The engine's options with every default filled in, as resolved at creation: a server upgrade that changes a
    # default leaves running studies as they were. NULL for studies created before options were pinned.
    engine_options: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)
    seed: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    next_trial_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TrialRow(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("study_id", "number", name="uq_trials_study_number"),
        Index("ix_trials_study_state_number", "study_id", "state", "number"),
        Index("ix_trials_study_worker", "study_id", "worker_id"),
        Index(
            "ix_trials_study_request",
            "study_id",
            "request_id",
            postgresql_where=text("request_id IS NOT NULL"),
            sqlite_where=text("request_id IS NOT NULL"),
        ),
        # The stale-trial sweep reads active trials of every study.
        Index(
            "ix_trials_active_seen",
            "state",
            postgresql_where=text("state = 'active'"),
            sqlite_where=text("state = 'active'"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    state: Mapped[str] = mapped_column(String(16))
    worker_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    values: Mapped[dict[str, float] | None] = mapped_column(JSONValue, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    source: Mapped[str] = mapped_column(String(64))
    budget: Mapped[float | None] = mapped_column(Float, nullable=True)
    resume_from: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    engine_info: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)
    # The client's id of the ask (or add) that created the trial: a retry with the same id finds it instead
    # of creating another. And the id of the tell that finished it.
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    tell_request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Opaque to the service (a URI or path the client owns): the last one reported, handed back on resume.
    checkpoint: Mapped[str | None] = mapped_column(Text, nullable=True)


class MeasurementRow(Base):
    __tablename__ = "measurements"
    __table_args__ = (UniqueConstraint("trial_id", "step", name="uq_measurements_trial_step"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    step: Mapped[float] = mapped_column(Float)
    values: Mapped[dict[str, float]] = mapped_column(JSONValue)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TrialEventRow(Base):
    """A trial's pause and resume history. `paused`: at `step` (its budget, or the step it resumes from when a silent
    resumed run was paused again), with `checkpoint`, leaving `worker_id`. `resumed`: from `step` to `budget` by
    `worker_id`, with the engine's `reason`."""

    __tablename__ = "trial_events"
    __table_args__ = (Index("ix_trial_events_trial", "trial_id", "id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    step: Mapped[float | None] = mapped_column(Float, nullable=True)
    budget: Mapped[float | None] = mapped_column(Float, nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    checkpoint: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


QUEUED_REFILL = "kind = 'refill' AND state = 'queued'"


class JobRow(Base):
    """Work for engine workers: compute suggestions for one study.

    A worker claims a job with a lease (`lease_owner`, `lease_expires_at`) and renews it while it
    works; a job whose lease ran out is claimable again, so a dead worker loses nothing.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_study_state", "study_id", "state"),
        Index("ix_jobs_claim", "state", "priority", "id"),
        # At most one queued refill per study: tells in a burst coalesce into one computation.
        Index(
            "uq_jobs_one_queued_refill",
            "study_id",
            unique=True,
            postgresql_where=text(QUEUED_REFILL),
            sqlite_where=text(QUEUED_REFILL),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)  # of the ask that queued it
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(256), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PooledSuggestionRow(Base):
    """A suggestion computed ahead of time, handed out by the next ask if it is still fresh."""

    __tablename__ = "pooled_suggestions"
    __table_args__ = (
        Index("ix_pooled_suggestions_study", "study_id", "id"),
        Index("ix_pooled_suggestions_job", "job_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    params: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    data_version: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    engine_info: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)
    # The study's next trial number when the data behind this suggestion was read: trials numbered from
    # here on were unknown to the engine.
    as_of_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Engines that plan runs (`plans_runs`) pool runs with their own budget: a new run (these params), or a resume
    # of the paused trial numbered `resume_number` (its params, for reference).
    budget: Mapped[float | None] = mapped_column(Float, nullable=True)
    resume_number: Mapped[int | None] = mapped_column(Integer, nullable=True)


class EngineStateRow(Base):
    """What an engine keeps between computations of one study (warm-start state), what it tells users (its status,
    e.g. `likely_infeasible`; NULL until it says something) and how its computations went."""

    __tablename__ = "engine_states"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True)
    memory: Mapped[dict[str, Any]] = mapped_column(JSONValue)
    status: Mapped[dict[str, Any] | None] = mapped_column(JSONValue, nullable=True)
    computations: Mapped[int] = mapped_column(Integer, default=0)
    fallbacks: Mapped[int] = mapped_column(Integer, default=0)
    last_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_rung: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WorkerRow(Base):
    """An engine worker process, as it last reported itself."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(256), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(256))
    pid: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(64))
    concurrency: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    jobs_done: Mapped[int] = mapped_column(Integer, default=0)
    jobs_failed: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class NamespaceRow(Base):
    """A team: its studies and tokens are invisible to every other namespace."""

    __tablename__ = "namespaces"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TokenRow(Base):
    """A bearer token, stored only as its SHA-256 (tokens are 256 random bits, so no slow hash is needed).

    Rows are never deleted, only revoked (also when their namespace is deleted): authentication is on from
    the first token ever created, so removing tokens can never open the service by accident.
    """

    __tablename__ = "api_tokens"
    __table_args__ = (
        Index("ix_api_tokens_namespace", "namespace"),
        UniqueConstraint("secret_hash", name="uq_api_tokens_secret_hash"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings so a token can be recognised
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# The tables themselves, for Core statements (an ORM entity in an UPDATE executed with a dict of parameters would
# make it an ORM bulk update by primary key).
STUDIES: Table = StudyRow.__table__  # type: ignore[assignment]
TRIALS: Table = TrialRow.__table__  # type: ignore[assignment]
MEASUREMENTS: Table = MeasurementRow.__table__  # type: ignore[assignment]
