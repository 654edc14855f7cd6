"""The model-free engines and the shared encoding, tested without a server."""

from __future__ import annotations

import numpy as np
import pytest

from service.domain.spec import StudySpec
from service.domain.trial import TrialState, TrialView, normalize_params
from service.engines import ENGINES, resolve_engine
from service.engines.base import Action, SuggestRequest
from service.engines.encoding import from_unit, to_unit
from service.errors import InvalidArgument

SPEC = StudySpec.model_validate(
    {
        "params": [
            {"name": "lr", "type": "float", "low": 1e-5, "high": 1.0, "log": True},
            {"name": "x", "type": "float", "low": -2, "high": 3},
            {"name": "units", "type": "int", "low": 16, "high": 1024, "log": True},
            {"name": "depth", "type": "int", "low": 1, "high": 4},
            {"name": "opt", "type": "categorical", "choices": ["sgd", "adam", 3, True]},
        ],
        "objectives": [{"name": "loss", "goal": "minimize"}],
    }
)


def _suggest(name: str, count: int, seed: int = 1, start: int = 0) -> list[dict[str, object]]:
    resolved = resolve_engine(SPEC, name)
    return resolved.engine.suggest(SuggestRequest(SPEC, resolved.options, count, seed, start)).params  # type: ignore[return-value]


@pytest.mark.parametrize("name", ["random", "sobol"])
def test_suggestions_lie_in_the_space(name: str) -> None:
    suggestions = _suggest(name, 512)
    assert len(suggestions) == 512
    for params in suggestions:
        assert normalize_params(SPEC, params) == params
    assert {p["depth"] for p in suggestions} == {1, 2, 3, 4}
    assert {str(p["opt"]) for p in suggestions} == {"sgd", "adam", "3", "True"}


@pytest.mark.parametrize("name", ["random", "sobol"])
def test_log_parameters_are_uniform_in_log_space(name: str) -> None:
    exponents = np.log10([p["lr"] for p in _suggest(name, 2048)])  # type: ignore[arg-type]
    counts, _ = np.histogram(exponents, bins=5, range=(-5, 0))
    assert counts.min() > 0.8 * 2048 / 5


@pytest.mark.parametrize("name", ["random", "sobol"])
def test_same_seed_and_position_give_the_same_points(name: str) -> None:
    assert _suggest(name, 4, seed=3) == _suggest(name, 4, seed=3)
    assert _suggest(name, 4, seed=3) != _suggest(name, 4, seed=4)


def test_sobol_continues_its_sequence_across_asks() -> None:
    whole = _suggest("sobol", 8)
    assert _suggest("sobol", 3) + _suggest("sobol", 5, start=3) == whole


def test_sobol_first_points_cover_the_cube_evenly() -> None:
    unit = to_unit(SPEC, _suggest("sobol", 64))
    counts, _ = np.histogram(unit[:, 1], bins=8, range=(0, 1))
    assert counts.min() >= 7  # a random design of 64 points is rarely this even


def test_encoding_round_trips() -> None:
    params = _suggest("random", 100)
    assert from_unit(SPEC, to_unit(SPEC, params)) == [
        {**p, "lr": pytest.approx(p["lr"]), "x": pytest.approx(p["x"])} for p in params
    ]


def test_integer_cells_are_equal_width() -> None:
    depths = [p["depth"] for p in from_unit(SPEC, np.tile(np.linspace(0, 1, 4001)[:, None], (1, 5)))]
    counts = np.bincount(depths)[1:]  # type: ignore[arg-type]
    assert max(counts) - min(counts) <= 2


def test_model_free_engines_always_continue() -> None:
    for engine in ENGINES.values():
        decision = engine.decide(SPEC, engine.Options(), TrialView(0, {}, TrialState.ACTIVE), [])
        assert decision.action is Action.CONTINUE


def test_unknown_engine_options_are_rejected() -> None:
    spec = SPEC.model_copy(update={"engine": "random", "engine_options": {"temperature": 1}})
    with pytest.raises(InvalidArgument) as error:
        resolve_engine(spec)
    assert error.value.problems[0].field == "engine_options.temperature"


def test_the_api_and_every_engines_light_half_load_no_torch() -> None:
    """API processes validate options and serve initial designs without the model stack: only a worker's first
    model-based suggestion imports torch."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "import service.app, service.workers.runner\n"
        "from service.domain.spec import StudySpec\n"
        "from service.engines import ENGINES, resolve_engine\n"
        "from service.engines.base import SuggestRequest\n"
        "spec = StudySpec.model_validate({'params': [{'name': 'x', 'type': 'float', 'low': 0, 'high': 1}],\n"
        "    'objectives': [{'name': 'loss', 'goal': 'minimize'}]})\n"
        "for name, engine in ENGINES.items():\n"
        "    if engine.unsupported_reason(spec) is None:\n"
        "        resolved = resolve_engine(spec, name)\n"
        "        if not resolved.needs_worker(0, created=0):\n"
        "            engine.suggest(SuggestRequest(spec, resolved.options, 1, 1, 0))\n"
        "print(sorted({'torch', 'botorch', 'gpytorch'} & set(sys.modules)))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr
