"""A worker's computed suggestions against trials created while it computed: a clash is redrawn as the study's
own Sobol point."""

from __future__ import annotations

from service.domain.spec import StudySpec
from service.engines import resolve_engine
from service.engines.base import SuggestRequest
from service.engines.sobol import SobolEngine
from service.workers.runner import _apart_from
from tests.support import make_spec


def test_a_computed_suggestion_on_a_trial_created_meanwhile_is_replaced() -> None:
    spec = StudySpec.model_validate({**make_spec(), "seed": 1})
    request = SuggestRequest(spec, resolve_engine(spec).options, 2, 1, 7)
    created_meanwhile = {"lr": 0.01, "layers": 3, "act": "tanh"}
    apart = {"lr": 0.05, "layers": 6, "act": "relu"}
    kept, infos = _apart_from(request, [dict(created_meanwhile), apart], [{"branch": "exploit"}, None],
                              [created_meanwhile], first_number=9)
    assert kept[1] == apart and infos[1] is None
    assert kept[0] != created_meanwhile and infos[0] == {"branch": "exploit", "redrawn": "sobol"}
    sobol = SobolEngine().suggest(SuggestRequest(spec, request.options, 1, 1, 9))
    assert kept[0] == sobol[0]  # the study's own Sobol point for trial 9: reproducible
