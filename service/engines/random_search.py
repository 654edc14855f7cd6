"""Engine `random`: independent uniform draws (uniform in log space for log-scaled parameters)."""

from __future__ import annotations

import numpy as np

from service.engines.base import Engine, StoppingOptions, Suggestions, SuggestRequest
from service.engines.encoding import from_unit


class RandomEngine(Engine[StoppingOptions]):
    name = "random"

    def suggest(self, request: SuggestRequest[StoppingOptions]) -> Suggestions:
        rng = np.random.default_rng([request.seed, request.sequence_start])
        return Suggestions(from_unit(request.spec, rng.random((request.count, len(request.spec.params)))))
