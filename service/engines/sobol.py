"""Engine `sobol`: a scrambled Sobol' sequence (Owen scrambling), seeded per study.

Trial number i always gets point i of the study's sequence, so the design is reproducible and
low-discrepancy across concurrent asks served by different API replicas.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

from scipy.stats import qmc

from service.domain.spec import Choice, StudySpec
from service.engines.base import Engine, SuggestRequest
from service.engines.encoding import from_unit

log = logging.getLogger(__name__)

MAX_SOBOL_DIMENSION = 21201  # scipy's direction numbers cover this many dimensions


class EngineFailure(Exception):
    """Every rung of the model ladder failed; the caller falls back to a model-free suggestion."""


def model_or_sobol(request: SuggestRequest, engine: str, completed: int, design_size: int,
                   model_suggestions: Callable[[], list[dict[str, Choice]]]) -> list[dict[str, Choice]]:
    """A model engine's suggestions: Sobol until `design_size` trials completed, then the model, and Sobol again
    (flagged in the notes) when every rung of the model ladder failed."""
    if completed < design_size:
        request.notes.rung = "initial-design"
        return SobolEngine().suggest(request)
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
