"""Engine `sobol`: a scrambled Sobol' sequence (Owen scrambling), seeded per study.

Trial number i always gets point i of the study's sequence, so the design is reproducible and
low-discrepancy across concurrent asks served by different API replicas.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from pydantic import BaseModel
from scipy.stats import qmc

from service.domain.spec import Choice, StudySpec
from service.engines.base import Engine, StoppingOptions, Suggestions, SuggestRequest
from service.engines.encoding import from_unit

log = logging.getLogger(__name__)

MAX_SOBOL_DIMENSION = 21201  # scipy's direction numbers cover this many dimensions


class EngineFailure(Exception):
    """Every rung of the model ladder failed; the caller falls back to a model-free suggestion."""


def sobol_points(request: SuggestRequest[BaseModel]) -> list[dict[str, Choice]]:
    """Points `sequence_start` to `sequence_start + count - 1` of the study's scrambled Sobol' sequence."""
    sampler = qmc.Sobol(d=len(request.spec.params), scramble=True, seed=request.seed % 2**32)
    if request.sequence_start:
        sampler.fast_forward(request.sequence_start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # balance warning: counts are not powers of 2
        points = sampler.random(request.count)
    return from_unit(request.spec, points)


def initial_design(request: SuggestRequest[BaseModel], center_point: bool) -> list[dict[str, Choice]]:
    """A model engine's design before its first model: trial 0 at the centre of the space (the midpoint of every
    encoded axis: the geometric middle of a log range, the middle choice of a categorical), as Ax's default
    strategy does, then the study's Sobol points. Many objectives are good or at least typical in the middle of
    a box their user drew around sensible values, so the centre is a cheap first look."""
    if not center_point or request.sequence_start > 0:
        shift = 1 if center_point else 0
        return sobol_points(replace(request, sequence_start=request.sequence_start - shift))
    centre = from_unit(request.spec, np.full((1, len(request.spec.params)), 0.5))
    if request.count == 1:
        return centre
    return centre + sobol_points(replace(request, count=request.count - 1, sequence_start=0))


def model_or_sobol(
    request: SuggestRequest[BaseModel],
    engine: str,
    completed: int,
    design_size: int,
    model_suggestions: Callable[[], Suggestions],
    center_point: bool = True,
) -> Suggestions:
    """A model engine's suggestions: the initial design until `design_size` trials completed, then the model, and
    Sobol (with the reason) when every rung of the model ladder failed."""
    if completed < design_size:
        return Suggestions(initial_design(request, center_point), rung="initial-design")
    try:
        return model_suggestions()
    except EngineFailure as failure:
        log.warning("%s: every model rung failed, falling back to Sobol: %s", engine, failure)
        return Suggestions(sobol_points(request), rung="sobol-fallback", fallback_reason=str(failure))


class SobolEngine(Engine[StoppingOptions]):
    name = "sobol"

    def unsupported_reason(self, spec: StudySpec) -> str | None:
        if len(spec.params) > MAX_SOBOL_DIMENSION:
            return f"sobol supports at most {MAX_SOBOL_DIMENSION} parameters"
        return None

    def suggest(self, request: SuggestRequest[BaseModel]) -> Suggestions:
        return Suggestions(sobol_points(request))
