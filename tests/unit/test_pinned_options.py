"""Pinned engine options against today's engine: a pinned default the engine dropped is ignored, a user's option
is still checked (pinning at creation, on both backends: tests/integration/test_pinned_options.py)."""

from __future__ import annotations

import pytest

from service.domain.spec import StudySpec
from service.engines import resolve_engine
from service.engines.asha import AshaOptions
from service.errors import InvalidArgument

SPEC = StudySpec.model_validate(
    {
        "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "objectives": [{"name": "loss", "goal": "minimize"}],
        "fidelity": {"name": "epoch", "min": 1, "max": 81},
        "engine": "asha",
    }
)


def test_a_pinned_default_the_engine_no_longer_has_is_dropped_but_a_user_option_is_still_checked() -> None:
    pinned = {"eta": 4, "min_step": None, "stopping": "none", "retired_option": 7}
    assert resolve_engine(SPEC, "asha", pinned).options == AshaOptions(eta=4)
    spec = SPEC.model_copy(update={"engine_options": {"retired_option": 7}})
    with pytest.raises(InvalidArgument) as refused:
        resolve_engine(spec, "asha", pinned)
    assert [p.field for p in refused.value.problems] == ["engine_options.retired_option"]
