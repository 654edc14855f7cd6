"""A worker's computed suggestions against trials created while it computed: a clash is redrawn as the study's
own Sobol point."""

from __future__ import annotations

from service.core.new_trials import NewTrial, kept_apart
from service.domain.spec import StudySpec
from service.engines import resolve_engine
from service.engines.base import SuggestRequest
from service.engines.sobol import SobolEngine
from tests.support import make_spec


def test_a_computed_suggestion_on_a_trial_created_meanwhile_is_replaced() -> None:
    spec = StudySpec.model_validate({**make_spec(), "seed": 1})
    created_meanwhile = {"lr": 0.01, "layers": 3, "act": "tanh"}
    apart = {"lr": 0.05, "layers": 6, "act": "relu"}
    computed = [NewTrial(dict(created_meanwhile), {"branch": "exploit"}), NewTrial(apart)]
    kept = kept_apart(spec, 1, computed, [created_meanwhile], first_number=9)
    assert kept[1] == NewTrial(apart)
    assert kept[0].params != created_meanwhile and kept[0].info == {"branch": "exploit", "redrawn": "sobol"}
    sobol = SobolEngine().suggest(SuggestRequest(spec, resolve_engine(spec).options, 1, 1, 9)).params
    assert kept[0].params == sobol[0]  # the study's own Sobol point for trial 9: reproducible
