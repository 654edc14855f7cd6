"""Request and response bodies of the REST API (the OpenAPI schema is generated from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from service.core.asking import AskOutcome
from service.core.hypervolume import HypervolumeReport
from service.domain.hypervolume import oriented_reference
from service.domain.spec import STUDY_NAME_PATTERN, Choice, Name, StudySpec
from service.domain.study import StudyState
from service.domain.trial import TrialState
from service.engines.base import Action
from service.store.jobs import Job
from service.store.records import StudyRecord, TrialRecord


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Metric names as in a study spec; at most 256 metrics per report or tell.
MetricValues = Annotated[dict[Name, float], Field(max_length=256)]
RequestId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.:\-]+$",
        description="The client's id for this request: a retry with the same id returns "
        "the first attempt's result and changes nothing.",
    ),
]


def _reachable_name(name: str) -> str:
    if name in (".", ".."):
        raise ValueError(f"{name!r} is a URL path segment: clients would resolve it away and never reach the study")
    return name


class StudyCreate(StudySpec):
    """A new study: its name plus the spec. With if_exists="get", an identical existing study is returned."""

    name: Annotated[
        str, Field(min_length=1, max_length=256, pattern=STUDY_NAME_PATTERN), AfterValidator(_reachable_name)
    ]
    if_exists: Literal["error", "get"] = "error"

    def spec(self) -> StudySpec:
        return StudySpec.model_validate(self.model_dump(exclude={"name", "if_exists"}))


class StudyOut(BaseModel):
    id: int
    name: str
    owner: str
    state: StudyState
    engine: str = Field(description="The engine serving this study (what `auto` resolved to at creation).")
    engine_options: dict[str, Any] | None = Field(
        default=None,
        description="The engine's options with every default filled in, pinned at creation: a server "
        "upgrade that changes a default does not change this study. Null for studies "
        "created before options were pinned (they follow the server's defaults).",
    )
    seed: int
    spec: StudySpec
    created_at: datetime
    updated_at: datetime
    trial_counts: dict[str, int] | None = Field(
        default=None, description="Trials per state (single-study reads, and listings with summary=true)."
    )
    best_value: float | None = Field(
        default=None,
        description="The best feasible completed value of a single-objective study (listings with summary=true).",
    )

    @classmethod
    def of(cls, study: StudyRecord, counts: dict[str, int] | None = None, best_value: float | None = None) -> StudyOut:
        return cls(
            id=study.id,
            name=study.name,
            owner=study.owner,
            state=study.state,
            engine=study.engine,
            engine_options=study.engine_options,
            seed=study.seed,
            spec=study.spec,
            created_at=study.created_at,
            updated_at=study.updated_at,
            trial_counts=counts,
            best_value=best_value,
        )


class StudyPage(BaseModel):
    studies: list[StudyOut]
    next_page_token: str | None = Field(description="Pass as page_token to get the next page; null at the end.")


class StudyStateChange(_Body):
    state: StudyState


class MeasurementOut(BaseModel):
    step: float
    values: dict[str, float]


class TrialEventOut(BaseModel):
    """One pause or resume of a trial."""

    kind: Literal["paused", "resumed"]
    at: datetime
    step: float | None = Field(description="paused: the step it paused at; resumed: the step it resumed from.")
    budget: float | None = Field(description="paused: the budget it had; resumed: the new budget.")
    worker_id: str | None = Field(description="paused: the worker it left; resumed: the worker that took it up.")
    checkpoint: str | None
    reason: str | None = Field(description="resumed: the engine's reason; paused: why, unless its budget.")


class TrialOut(BaseModel):
    id: int
    number: int
    state: TrialState
    params: dict[str, Any]
    values: dict[str, float | None] | None
    reason: str | None
    worker_id: str | None
    source: str = Field(description="The engine that suggested it, or `user` for added trials.")
    budget: float | None = Field(description="Target fidelity step to train to (studies with a fidelity).")
    resume_from: float | None = Field(description="Step to resume a paused trial from.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None = Field(default=None, description="Last report or heartbeat of an active trial.")
    measurements: list[MeasurementOut] | None = None
    engine_info: dict[str, Any] | None = Field(
        default=None, description="What the engine said of this suggestion, e.g. `branch` for engine egreedy."
    )
    checkpoint: str | None = Field(default=None, description="The last checkpoint reported (resume from it).")
    history: list[TrialEventOut] | None = Field(
        default=None, description="Its pauses and resumes, oldest first (single-trial reads)."
    )

    @classmethod
    def of(cls, trial: TrialRecord) -> TrialOut:
        measurements = (
            None
            if trial.measurements is None
            else [MeasurementOut(step=m.step, values=m.values) for m in trial.measurements]
        )
        return cls(
            id=trial.id,
            number=trial.number,
            state=trial.state,
            params=trial.params,
            values=trial.values,
            reason=trial.reason,
            worker_id=trial.worker_id,
            source=trial.source,
            budget=trial.budget,
            resume_from=trial.resume_from,
            created_at=trial.created_at,
            started_at=trial.started_at,
            finished_at=trial.finished_at,
            heartbeat_at=trial.heartbeat_at,
            measurements=measurements,
            engine_info=trial.engine_info,
            checkpoint=trial.checkpoint,
            history=None
            if trial.history is None
            else [
                TrialEventOut(
                    kind=e.kind.value,
                    at=e.at,
                    step=e.step,
                    budget=e.budget,
                    worker_id=e.worker_id,
                    checkpoint=e.checkpoint,
                    reason=e.reason,
                )
                for e in trial.history
            ],
        )


class TrialPage(BaseModel):
    trials: list[TrialOut]
    next_page_token: str | None


class AskRequest(_Body):
    count: int = Field(default=1, ge=1, le=1000, description="How many trials to hand out.")
    worker_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Who evaluates them. A worker that asks again gets its active "
        "trials back (a restarted worker resumes its own work).",
    )
    fresh: bool = Field(default=False, description="Hand out new trials even if worker_id holds active ones.")
    wait_seconds: float = Field(
        default=30.0,
        ge=0,
        le=300,
        description="How long to wait for a worker-computed suggestion before answering "
        "202 with a pending job to poll.",
    )
    request_id: RequestId | None = None


class PendingJob(BaseModel):
    """Suggestions still being computed by an engine worker: poll `GET /v1/studies/{study}/jobs/{id}`."""

    id: int
    state: str
    count: int
    attempts: int
    error: str | None

    @classmethod
    def of(cls, job: Job) -> PendingJob:
        return cls(id=job.id, state=job.state, count=job.count, attempts=job.attempts, error=job.error)


FALLBACK = (
    "Set when some trials are Sobol points instead of the engine's suggestions (their source is "
    "`sobol-fallback`), saying why: e.g. no live engine worker (start `asktell worker`)."
)


class AskResponse(BaseModel):
    trials: list[TrialOut]
    pending: PendingJob | None = Field(
        default=None, description="Set (with status 202) when some trials are still being computed; poll it."
    )
    fallback: str | None = Field(default=None, description=FALLBACK)

    @classmethod
    def of(cls, outcome: AskOutcome) -> AskResponse:
        return cls(
            trials=[TrialOut.of(t) for t in outcome.trials],
            pending=PendingJob.of(outcome.pending) if outcome.pending else None,
            fallback=outcome.fallback,
        )


class WorkerOut(BaseModel):
    id: str
    hostname: str
    pid: int
    device: str
    concurrency: int
    state: str
    alive: bool = Field(description="Heartbeat seen recently and not stopped.")
    jobs_done: int
    jobs_failed: int
    started_at: datetime
    heartbeat_at: datetime


class WorkersResponse(BaseModel):
    workers: list[WorkerOut]


class EngineStatusOut(BaseModel):
    engine: str
    computations: int = Field(description="Model computations done by workers for this study.")
    fallbacks: int = Field(description="Times a Sobol suggestion replaced a failed or unavailable computation.")
    last_seconds: float | None = Field(description="Duration of the last computation (fit + acquisition).")
    last_rung: str | None = Field(description="Which step of the model ladder produced the last suggestions.")
    last_error: str | None
    updated_at: datetime | None
    pool_size: int = Field(description="Suggestions ready to hand out.")
    jobs: dict[str, int] = Field(description="The study's jobs per state.")
    likely_infeasible: bool = Field(
        default=False,
        description="Engine constrained found no optimistically feasible point for several rounds in a row.",
    )
    infeasibility: dict[str, Any] | None = Field(
        default=None,
        description="The evidence for `likely_infeasible`: consecutive rounds and the trial that "
        "came closest to feasibility.",
    )
    fallback: str | None = Field(
        default=None,
        description="Set while the study's asks get Sobol points instead of "
        "the engine's (source `sobol-fallback`), saying why: no "
        "live engine worker (start `asktell worker`).",
    )


class TellRequest(_Body):
    state: Literal["completed", "failed", "infeasible", "stopped"] = "completed"
    values: MetricValues | None = Field(
        default=None, description="Final metric values (all objectives and constrained metrics when completed)."
    )
    reason: str | None = Field(default=None, max_length=10_000, description="Why it failed / was infeasible.")
    request_id: RequestId | None = None


class ReportRequest(_Body):
    step: float = Field(allow_inf_nan=False, description="Training progress (the fidelity axis: step, epoch...).")
    values: MetricValues = Field(min_length=1)
    checkpoint: str | None = Field(
        default=None,
        max_length=4096,
        description="Where the client saved its training state (opaque to the service); "
        "handed back when a paused trial is resumed.",
    )


class DecisionOut(BaseModel):
    action: Action
    reason: str | None
    trial: TrialOut


class AddTrialRequest(_Body):
    params: dict[str, Choice] = Field(max_length=1000)
    values: MetricValues | None = Field(
        default=None, description="If given, the trial is recorded as completed; otherwise it is enqueued."
    )


class BestResponse(BaseModel):
    trials: list[TrialOut] = Field(description="Best feasible trial (one objective) or the Pareto set (several).")


class HypervolumePoint(BaseModel):
    trial: int = Field(description="Number of the completed trial.")
    finished_at: datetime | None
    hypervolume: float = Field(description="Dominated hypervolume of the feasible front once this trial finished.")


class HypervolumeOut(BaseModel):
    reference_point: dict[str, float | None] = Field(
        description="Per objective, in its own units: its threshold, else inferred from the current front "
        "(nadir minus 10% of the range; null before any feasible result)."
    )
    hypervolume: float = Field(description="The current dominated hypervolume.")
    history: list[HypervolumePoint] = Field(description="One entry per completed trial, in finishing order.")
    approximate: bool = Field(
        default=False,
        description="True when the history is a quasi-Monte Carlo estimate "
        "(2^15 points): for more than 5 objectives, or a front "
        "too large to compute exactly in about a second.",
    )

    @classmethod
    def of(cls, report: HypervolumeReport) -> HypervolumeOut:
        history = report.history
        points = [
            HypervolumePoint(trial=t.number, finished_at=t.finished_at, hypervolume=v)
            for t, v in zip(report.trials, history.values, strict=True)
        ]
        return cls(
            reference_point=oriented_reference(report.study.spec, history.reference),
            hypervolume=history.final,
            history=points,
            approximate=history.approximate,
        )


class ProblemDetail(BaseModel):
    field: str
    reason: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ProblemDetail] = []


class ErrorResponse(BaseModel):
    error: ErrorBody
