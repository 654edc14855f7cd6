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
from scipy.stats import qmc

from service.domain.spec import Choice, StudySpec
from service.engines.base import Engine, SuggestRequest
from service.engines.encoding import from_unit

log = logging.getLogger(__name__)

MAX_SOBOL_DIMENSION = 21201  # scipy's direction numbers cover this many dimensions


class EngineFailure(Exception):
    """Every rung of the model ladder failed; the caller falls back to a model-free suggestion."""


def initial_design(request: SuggestRequest, center_point: bool) -> list[dict[str, Choice]]:
    """A model engine's design before its first model: trial 0 at the centre of the space (the midpoint of every
    encoded axis: the geometric middle of a log range, the middle choice of a categorical), as Ax's default
    strategy does, then the study's Sobol points. Many objectives are good or at least typical in the middle of
    a box their user drew around sensible values, so the centre is a cheap first look."""
    if not center_point or request.sequence_start > 0:
        shift = 1 if center_point else 0
        return SobolEngine().suggest(replace(request, sequence_start=request.sequence_start - shift))
    centre = from_unit(request.spec, np.full((1, len(request.spec.params)), 0.5))
    if request.count == 1:
        return centre
    return centre + SobolEngine().suggest(replace(request, count=request.count - 1, sequence_start=0))


def model_or_sobol(request: SuggestRequest, engine: str, completed: int, design_size: int,
                   model_suggestions: Callable[[], list[dict[str, Choice]]],
                   center_point: bool = True) -> list[dict[str, Choice]]:
    """A model engine's suggestions: the initial design until `design_size` trials completed, then the model, and
    Sobol (flagged in the notes) when every rung of the model ladder failed."""
    if completed < design_size:
        request.notes.rung = "initial-design"
        return initial_design(request, center_point)
    try:
        return model_suggestions()
    except EngineFailure as failure:
        log.warning("%s: every model rung failed, falling back to Sobol: %s", engine, failure)
        request.notes.rung = "sobol-fallback"
        request.notes.fallback_reason = str(failure)
        request.notes.suggestion_info = None
        return SobolEngine().suggest(request)


class SobolEngine(Engine):
    name = "sobol"

    def unsupported_reason(self, spec: StudySpec) -> str | None:
        if len(spec.params) > MAX_SOBOL_DIMENSION:
            return f"sobol supports at most {MAX_SOBOL_DIMENSION} parameters"
        return None

    def suggest(self, request: SuggestRequest) -> list[dict[str, Choice]]:
        sampler = qmc.Sobol(d=len(request.spec.params), scramble=True, seed=request.seed % 2**32)
        if request.sequence_start:
            sampler.fast_forward(request.sequence_start)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # balance warning: counts are not powers of 2
            points = sampler.random(request.count)
        return from_unit(request.spec, points)
