"""The engine interface: pure functions of a study's spec and trials, no HTTP and no database.

An engine proposes new parameters (`suggest`) and, for trials that report intermediate values,
decides whether training should continue, pause or stop (`decide`). The service loads what the
engine says it needs, calls it, and stores the result; the engine never sees how.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, Field

from service.domain.spec import Choice, StudySpec
from service.domain.trial import TrialView
from service.engines.decisions import CONTINUE, Action, Decision, NoOptions
from service.engines.stopping import StoppingOptions, median_stopping

__all__ = [
    "CONTINUE",
    "Action",
    "Decision",
    "Engine",
    "ModelEngineOptions",
    "NewRun",
    "NoOptions",
    "Plan",
    "Resume",
    "StoppingOptions",
    "SuggestRequest",
    "Suggestions",
]


RequestOptionsT = TypeVar("RequestOptionsT", bound=BaseModel, covariant=True)
EngineOptionsT = TypeVar("EngineOptionsT", bound=StoppingOptions)


class ModelEngineOptions(StoppingOptions):
    """Options every worker-computed engine shares: how its ready pool behaves."""

    pool_freshness: int = Field(default=1, ge=0, description="A pooled suggestion may be this many tells old.")
    pool_max: int = Field(default=8, ge=0, le=256, description="At most this many suggestions are precomputed.")


@dataclass(frozen=True)
class NewRun:
    """A new trial with an explicit budget (engines that plan runs step by step)."""

    params: dict[str, Choice]
    budget: float
    info: dict[str, Any] | None = None


@dataclass(frozen=True)
class Resume:
    """A paused trial an ask should hand out again, to train on until `budget`.

    `instead` is the engine's new run for when another ask resumed the trial first (None: a Sobol point at the
    engine's first budget), so a lost race costs what the engine would have spent on a new run anyway. freeze_thaw's
    `promote` gives one; its `entropy` and `ei` rules leave it to the Sobol point, which starts at their increment."""

    number: int
    budget: float
    reason: str | None = None
    instead: NewRun | None = None


@dataclass(frozen=True)
class SuggestRequest(Generic[RequestOptionsT]):
    """What an engine gets to propose `count` new trials.

    `sequence_start` is the number the first new trial will carry; with `seed` it makes seeded
    engines reproducible no matter which process serves the ask. `trials` holds the study's history
    (with measurements) only for engines whose `needs_history` is true, and is empty otherwise.
    """

    spec: StudySpec
    options: RequestOptionsT
    count: int
    seed: int
    sequence_start: int
    trials: Sequence[TrialView] = ()
    device: str = "cpu"
    memory: Mapping[str, Any] = field(default_factory=dict)  # what the engine kept last time (warm start)


@dataclass(frozen=True)
class Suggestions:
    """What an engine's `suggest` returns: the params, and what the worker stores about the computation.

    `info`, when the engine gives it, holds one dict per suggestion (e.g. which branch of a randomized rule produced
    it); it is stored with the trial. `memory` is the warm-start state the engine wants next time (None: keep what
    it had); `rung` names the step of the model-failure ladder that produced the answer, and `fallback_reason` why
    it fell back to Sobol. `status` holds facts for users, shown in the study's engine status (e.g.
    `likely_infeasible`; None: keep the last ones); it is stored apart from the memory.
    """

    params: list[dict[str, Choice]]
    info: list[dict[str, Any]] | None = None
    memory: dict[str, Any] | None = None
    rung: str | None = None
    fallback_reason: str | None = None
    status: dict[str, Any] | None = None


@dataclass(frozen=True)
class Plan:
    """What an engine's `plan` returns: up to `count` runs to resume or start, best first, and (as in
    `Suggestions`) its warm-start memory, rung and fallback reason."""

    runs: list[Resume | NewRun]
    memory: dict[str, Any] | None = None
    rung: str | None = None
    fallback_reason: str | None = None


class Engine(ABC, Generic[EngineOptionsT]):
    """An engine, typed by its options: a study resolves it once (`resolve_engine`) with options validated by
    `Options`, so each method gets the options of its own engine."""

    name: ClassVar[str]
    Options: ClassVar[type[StoppingOptions]] = StoppingOptions
    needs_history: ClassVar[bool] = False
    resumes_paused: ClassVar[bool] = False  # asks consult `resumes` (with the study's history) before new trials
    plans_runs: ClassVar[bool] = False  # a worker's job calls `plan` (resume or start runs) instead of `suggest`

    def unsupported_reason(self, spec: StudySpec) -> str | None:
        """Why this engine cannot serve `spec`, or None when it can."""
        return None

    def needs_worker(self, spec: StudySpec, options: EngineOptionsT, finished: int, created: int = 0) -> bool:
        """True when the next suggestion needs a model, so a worker computes it, never an API request.

        `finished` counts the study's trials with a final result and `created` all its trials; model-based
        engines answer their initial design inline and need a worker once there is data to model.
        """
        return False

    def plan(self, request: SuggestRequest[EngineOptionsT]) -> Plan:
        """For engines with `plans_runs`: up to `request.count` runs to resume or start, best first."""
        raise NotImplementedError(f"engine {self.name} does not plan runs")

    @abstractmethod
    def suggest(self, request: SuggestRequest[EngineOptionsT]) -> Suggestions:
        """Exactly `request.count` parameter dicts inside the search space, and what to store about them."""

    def first_budget(self, spec: StudySpec, options: EngineOptionsT) -> float | None:
        """The step a new trial trains to: the fidelity's max, unless the engine pauses runs on the way."""
        return spec.fidelity.max if spec.fidelity else None

    def resumes(
        self, spec: StudySpec, options: EngineOptionsT, trials: Sequence[TrialView], count: int
    ) -> list[Resume]:
        """Up to `count` paused trials to resume now, best first; an engine that never pauses resumes none."""
        return []

    def decision_needs_history(self, options: EngineOptionsT) -> bool:
        """Whether `decide` compares the reporting trial with the others: only a stopping rule does. A report
        on a study without one skips loading every trial's measurements."""
        return options.stopping != "none"

    def decide(
        self, spec: StudySpec, options: EngineOptionsT, trial: TrialView, trials: Sequence[TrialView]
    ) -> Decision:
        """Continue, pause or stop a trial that just reported: the study's stopping rule, if it chose one."""
        if options.stopping == "median":
            return median_stopping(spec, options, trial, trials)
        return CONTINUE
