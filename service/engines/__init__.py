"""Engine registry: which engines exist, and how a spec's engine choice and options are resolved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from service.domain.spec import StudySpec, spec_problems
from service.engines.asha import AshaEngine
from service.engines.asha_bo.engine import AshaBOEngine
from service.engines.base import Engine, ModelEngineOptions
from service.engines.constrained.engine import ConstrainedEngine
from service.engines.egreedy.engine import EGreedyEngine
from service.engines.freeze_thaw.engine import FreezeThawEngine
from service.engines.gp.engine import GPEngine
from service.engines.multiobjective.engine import MultiObjectiveEngine
from service.engines.random_search import RandomEngine
from service.engines.sobol import SobolEngine
from service.engines.stopping import StoppingOptions, stopping_problem
from service.errors import FieldProblem, InvalidArgument

ENGINES: dict[str, Engine[Any]] = {
    engine.name: engine
    for engine in (
        RandomEngine(),
        SobolEngine(),
        GPEngine(),
        EGreedyEngine(),
        ConstrainedEngine(),
        MultiObjectiveEngine(),
        AshaEngine(),
        AshaBOEngine(),
        FreezeThawEngine(),
    )
}
AUTO = "auto"


@dataclass(frozen=True)
class ResolvedEngine:
    """A study's engine bound to its spec and its validated options: resolved once per request or job, then asked
    about that study."""

    engine: Engine[Any]
    options: StoppingOptions
    spec: StudySpec

    @property
    def pool_options(self) -> ModelEngineOptions | None:
        """How the study's ready pool behaves; None for an engine that keeps none (it answers inline)."""
        return self.options if isinstance(self.options, ModelEngineOptions) else None

    @property
    def pool_max(self) -> int:
        """How many suggestions a worker precomputes for the study (0: none)."""
        return self.pool_options.pool_max if self.pool_options is not None else 0

    def first_budget(self) -> float | None:
        return self.engine.first_budget(self.spec, self.options)

    def needs_worker(self, finished: int, created: int) -> bool:
        return self.engine.needs_worker(self.spec, self.options, finished, created=created)


def keeps_pool(engine_name: str) -> bool:
    """Whether a study of this engine (or of one this version no longer has) may keep a ready pool: what a tell's
    single-statement path must rule out, told without resolving the study's options."""
    engine = ENGINES.get(engine_name)
    return engine is None or issubclass(engine.Options, ModelEngineOptions)


def auto_engine_name(spec: StudySpec) -> str:
    """The best installed engine for this spec: `multiobjective` for several objectives, `constrained` for one
    with outcome constraints, `gp` for one without; with a fidelity, `freeze_thaw` (rule `promote`) for one
    objective without constraints, the best of the fidelity engines on benchmarks/learning_curves.py (README,
    "Benchmarks"), and `sobol` where none applies (a fidelity with outcome constraints, which no fidelity engine
    models)."""
    if len(spec.objectives) > 1:
        return MultiObjectiveEngine.name
    if spec.fidelity is None:
        return ConstrainedEngine.name if spec.constraints else GPEngine.name
    return SobolEngine.name if spec.constraints else FreezeThawEngine.name


def check_study_spec(spec: StudySpec) -> ResolvedEngine:
    """Validate a new study's spec as a whole and resolve its engine, reporting every problem at once."""
    problems = spec_problems(spec)
    try:
        resolved = resolve_engine(spec)
    except InvalidArgument as error:
        problems += error.problems
    if problems:
        raise InvalidArgument(problems)
    return resolved


def resolve_engine(
    spec: StudySpec, engine_name: str | None = None, pinned: dict[str, Any] | None = None
) -> ResolvedEngine:
    """Pick the engine named by the spec (resolving `auto`) and validate its options.

    A stored study passes what was pinned at its creation, so upgrading the server never changes a running study's
    behaviour: `engine_name`, the engine `auto` resolved to, and `pinned`, its options with every default filled
    in (`pinned_options`). A pinned default that this version's engine no longer has is dropped (the engine cannot
    honour it); an option the user set stays and is validated as always. A study created before options were
    pinned passes None and gets today's defaults.
    """
    name = engine_name or (auto_engine_name(spec) if spec.engine == AUTO else spec.engine)
    engine = ENGINES.get(name)
    if engine is None:
        available = ", ".join([AUTO, *ENGINES])
        raise InvalidArgument.one("engine", f"unknown engine {spec.engine!r}; available: {available}")
    reason = engine.unsupported_reason(spec)
    if reason:
        raise InvalidArgument.one("engine", reason)
    try:
        options = engine.Options.model_validate(
            spec.engine_options
            if pinned is None
            else {k: v for k, v in pinned.items() if k in engine.Options.model_fields or k in spec.engine_options}
        )
    except ValidationError as error:
        raise InvalidArgument(
            [FieldProblem(".".join(["engine_options", *map(str, e["loc"])]), e["msg"]) for e in error.errors()]
        ) from error
    if problem := stopping_problem(spec, options):
        raise InvalidArgument.one("engine_options.stopping", problem)
    return ResolvedEngine(engine, options, spec)


def pinned_options(resolved: ResolvedEngine) -> dict[str, Any]:
    """The options to store with a new study: every field, defaults included, as JSON."""
    return resolved.options.model_dump(mode="json")


def warm_up(device: str = "cpu") -> None:
    """Load the model stack and run one tiny model suggestion, so a worker's first job pays for neither."""
    from service.domain.trial import TrialState, TrialView
    from service.engines.base import SuggestRequest

    spec = StudySpec.model_validate(
        {
            "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
            "objectives": [{"name": "y", "goal": "minimize"}],
            "engine": GPEngine.name,
            "engine_options": {"initial_design": 3, "raw_samples": 32, "num_restarts": 2},
        }
    )
    resolved = resolve_engine(spec)
    trials = [
        TrialView(i, {"x": x}, TrialState.COMPLETED, {"y": (x - 0.3) ** 2}) for i, x in enumerate((0.1, 0.5, 0.9))
    ]
    resolved.engine.suggest(SuggestRequest(spec, resolved.options, 1, 0, 3, trials=trials, device=device))
