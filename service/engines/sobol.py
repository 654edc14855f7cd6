"""Engine `sobol`: a scrambled Sobol' sequence (Owen scrambling), seeded per study.

Trial number i always gets point i of the study's sequence, so the design is reproducible and
low-discrepancy across concurrent asks served by different API replicas.
"""

from __future__ import annotations

import warnings

from scipy.stats import qmc

from service.domain.spec import Choice, StudySpec
from service.engines.base import Engine, SuggestRequest
from service.engines.encoding import from_unit

MAX_SOBOL_DIMENSION = 21201  # scipy's direction numbers cover this many dimensions


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
