"""Engine registry: which engines exist, and how a spec's engine choice and options are resolved."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from service.domain.spec import StudySpec, spec_problems
from service.engines.base import Engine
from service.engines.gp import GPEngine
from service.engines.random_search import RandomEngine
from service.engines.sobol import SobolEngine
from service.errors import FieldProblem, InvalidArgument

ENGINES: dict[str, Engine] = {engine.name: engine for engine in (RandomEngine(), SobolEngine(), GPEngine())}
AUTO = "auto"


@dataclass(frozen=True)
class ResolvedEngine:
    engine: Engine
    options: BaseModel


def auto_engine_name(spec: StudySpec) -> str:
    """The best installed engine for this spec: `gp` where it applies, else `sobol`."""
    if len(spec.objectives) == 1 and not spec.constraints and spec.fidelity is None:
        return GPEngine.name
    return SobolEngine.name


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


def resolve_engine(spec: StudySpec, engine_name: str | None = None) -> ResolvedEngine:
    """Pick the engine named by the spec (resolving `auto`) and validate its options.

    `engine_name` overrides the spec's choice: a stored study keeps the engine `auto` resolved to
    when it was created, so upgrading the server never changes a running study's algorithm.
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
        options = engine.Options.model_validate(spec.engine_options)
    except ValidationError as error:
        raise InvalidArgument(
            [FieldProblem(".".join(["engine_options", *map(str, e["loc"])]), e["msg"]) for e in error.errors()]
        ) from error
    return ResolvedEngine(engine, options)
