"""When two points are the same suggestion: equal integer and categorical values and floats within
MIN_SEPARATION. Neighbouring values of a wide integer lie closer than that on the unit axis and stay distinct, in
the engines' last safeguard and where trials are created."""

from __future__ import annotations

import torch

from service.core.new_trials import TakenPoints
from service.domain.spec import StudySpec
from service.engines import resolve_engine
from service.engines.base import SuggestRequest
from service.engines.shared.modeling import Features
from service.engines.shared.optimizing import separated

SPEC = StudySpec.model_validate(
    {
        "params": [
            {"name": "batch", "type": "int", "low": 1, "high": 1000, "log": True},
            {"name": "lr", "type": "float", "low": 0, "high": 1},
        ],
        "objectives": [{"name": "loss", "goal": "minimize"}],
        "engine": "gp",
    }
)


def test_the_engines_keep_a_neighbouring_integer_and_redraw_the_same_point_onto_the_grid() -> None:
    features = Features.of(SPEC)
    assert list(features.discrete_dims) == [0]  # 1000 values: searched value by value
    request = SuggestRequest(SPEC, resolve_engine(SPEC).options, 2, 1, 0)
    taken = features.encode([{"batch": 512, "lr": 0.5}], torch.device("cpu"))
    candidates = features.encode([{"batch": 513, "lr": 0.5}, {"batch": 512, "lr": 0.5}], torch.device("cpu"))
    neighbour, redrawn = features.decode(separated(candidates, taken, features, request))
    assert neighbour == {"batch": 513, "lr": 0.5}  # 2.6e-4 apart on the unit axis, a different batch size
    assert redrawn != {"batch": 512, "lr": 0.5}
    assert features.encode([redrawn], torch.device("cpu"))[0, 0] in torch.tensor(features.discrete_dims[0])


def test_trial_creation_tells_a_neighbouring_integer_from_the_same_point() -> None:
    taken = TakenPoints(SPEC, [{"batch": 512, "lr": 0.5}])
    assert taken.covers({"batch": 512, "lr": 0.5 + 1e-5})
    assert not taken.covers({"batch": 513, "lr": 0.5})
    assert not taken.covers({"batch": 512, "lr": 0.51})
