"""Engine egreedy alone: the selection rules, the branches, and concurrent asks (no server, no database)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from service.domain.spec import StudySpec
from service.domain.trial import TrialState, TrialView
from service.engines import resolve_engine
from service.engines.base import Suggestions, SuggestRequest
from service.engines.egreedy.engine import EGreedyOptions, choose_branch, default_epsilon
from service.engines.encoding import to_unit
from service.errors import InvalidArgument

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
FAST = {"initial_design": 4, "raw_samples": 64, "num_restarts": 2, "pareto_points": 200}
DRAWS = 20_000


def spec_of(dimension: int = 2, **options: object) -> StudySpec:
    return StudySpec.model_validate(
        {
            "params": [{"name": f"x{i}", "type": "float", "low": 0, "high": 1} for i in range(dimension)],
            "objectives": [{"name": "loss", "goal": "minimize"}],
            "engine": "egreedy",
            "engine_options": {**FAST, **options},
        }
    )


def loss(params: dict[str, object]) -> float:
    return sum((float(v) - 0.3) ** 2 for v in params.values())  # type: ignore[arg-type]


def completed_history(spec: StudySpec, n: int) -> list[TrialView]:
    rng = random.Random(5)
    trials = []
    for i in range(n):
        params = {p.name: rng.random() for p in spec.params}
        trials.append(TrialView(i, params, TrialState.COMPLETED, {"loss": loss(params)}))
    return trials


def suggest(
    spec: StudySpec, trials: list[TrialView], count: int = 1, memory: dict[str, object] | None = None
) -> tuple[list[dict[str, object]], Suggestions]:
    resolved = resolve_engine(spec)
    request = SuggestRequest(spec, resolved.options, count, 11, len(trials), trials=trials, memory=dict(memory or {}))
    suggested = resolved.engine.suggest(request)
    return suggested.params, suggested  # type: ignore[return-value]


def frequencies(variant: str, epsilon: float, selections_from: int = 100, workers: int = 4) -> dict[str, float]:
    rng = random.Random(0)
    counts = Counter(
        choose_branch(variant, epsilon, 0.5, selections_from + i, workers, rng)  # type: ignore[arg-type]
        for i in range(DRAWS)
    )
    return {branch: counts[branch] / DRAWS for branch in ("exploit", "thompson", "pareto", "random")}


def test_aegis_branch_frequencies_match_epsilon() -> None:
    epsilon = default_epsilon("aegis", 10)
    assert epsilon == pytest.approx(10**-0.5)
    seen = frequencies("aegis", epsilon)
    assert seen["exploit"] == pytest.approx(1 - 2 * epsilon, abs=0.015)
    assert seen["thompson"] == pytest.approx(epsilon, abs=0.015)
    assert seen["pareto"] == pytest.approx(epsilon, abs=0.015)
    assert seen["random"] == 0


def test_aegis_warm_up_exploits_only_the_first_selection() -> None:
    rng = random.Random(1)
    epsilon = default_epsilon("aegis", 9)
    first = [choose_branch("aegis", epsilon, 0.5, t, 8, rng) for t in range(9)]
    assert first[0] == "exploit" and "exploit" not in first[1:]
    # With epsilon 0.5 (the paper's value up to d = 4) the rule never exploits, not even first; so the default
    # there is 0.1 (D3).
    assert default_epsilon("aegis", 2) == 0.1 and default_epsilon("aegis", 4) == 0.1
    assert default_epsilon("aegis", 16) == 0.25
    assert frequencies("aegis", 0.5)["exploit"] == 0
    assert choose_branch("aegis", 0.5, 0.5, 0, 8, rng) != "exploit"


@pytest.mark.parametrize(("variant", "explore"), [("eps_pf", "pareto"), ("eps_rs", "random")])
def test_greedy_variants_exploit_with_one_minus_epsilon(variant: str, explore: str) -> None:
    seen = frequencies(variant, 0.1, selections_from=0)
    assert seen["exploit"] == pytest.approx(0.9, abs=0.01)
    assert seen[explore] == pytest.approx(0.1, abs=0.01)
    assert default_epsilon(variant, 30) == 0.1  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("variant", "epsilon", "expected"),
    [
        ("eps_rs", 0.0, {"exploit", "thompson"}),
        ("eps_rs", 1.0, {"random"}),
        ("eps_pf", 1.0, {"pareto"}),
        ("aegis", 0.5, {"thompson", "pareto"}),
    ],
)
def test_every_branch_produces_valid_points_and_says_which_it_was(
    variant: str, epsilon: float, expected: set[str]
) -> None:
    spec = spec_of(3, variant=variant, epsilon=epsilon)
    trials = completed_history(spec, 8)
    suggestions, suggested = suggest(spec, trials, count=3)
    assert len(suggestions) == 3 and suggested.info is not None
    assert {info["branch"] for info in suggested.info} <= expected
    assert all(0 <= float(v) <= 1 for s in suggestions for v in s.values())  # type: ignore[arg-type]
    assert suggested.memory["selections"] == 3


def test_exploit_moves_to_the_posterior_mean_maximum() -> None:
    spec = spec_of(2, variant="eps_rs", epsilon=0.0)
    trials = completed_history(spec, 14)
    (point,), suggested = suggest(spec, trials)
    assert suggested.info == [{"branch": "exploit"}]
    assert loss(point) < min(t.values["loss"] for t in trials) + 0.02  # type: ignore[index]


def test_exploit_in_a_small_discrete_space_takes_the_best_untried_point() -> None:
    spec = StudySpec.model_validate(
        {
            "params": [
                {"name": "k", "type": "int", "low": 1, "high": 6},
                {"name": "act", "type": "categorical", "choices": ["relu", "tanh", "gelu"]},
            ],
            "objectives": [{"name": "loss", "goal": "minimize"}],
            "engine": "egreedy",
            "engine_options": {**FAST, "variant": "eps_rs", "epsilon": 0.0},
        }
    )
    rng = random.Random(3)
    tried = rng.sample([(k, a) for k in range(1, 7) for a in ("relu", "tanh", "gelu")], 9)
    trials = [
        TrialView(i, {"k": k, "act": a}, TrialState.COMPLETED, {"loss": (k - 4) ** 2 + (a != "gelu")})
        for i, (k, a) in enumerate(tried)
    ]
    (point,), suggested = suggest(spec, trials)
    # Every point of the 18 is scored and the tried ones skipped: no random redraw off an observed point.
    assert suggested.info == [{"branch": "exploit"}]
    assert (point["k"], point["act"]) not in tried


def test_concurrent_asks_never_share_an_exploit_point() -> None:
    """D4: a second ask while the first exploit point is pending re-rolls as Thompson, away from it."""
    spec = spec_of(2, variant="eps_rs", epsilon=0.0)
    trials = completed_history(spec, 14)
    (first,), suggested = suggest(spec, trials)
    assert suggested.info == [{"branch": "exploit"}]
    pending = TrialView(len(trials), first, TrialState.ACTIVE)
    (second,), suggested = suggest(spec, [*trials, pending], memory=suggested.memory)
    assert suggested.info == [{"branch": "thompson", "rerolled": "exploit"}]
    distance = abs(to_unit(spec, [first]) - to_unit(spec, [second])).max()
    assert distance > 1e-3
    batch, suggested = suggest(spec, trials, count=3)  # one pool refill: the same rule inside the batch
    assert len(batch) == 3
    assert [info["branch"] for info in suggested.info or []] == ["exploit", "thompson", "thompson"]


def test_categorical_spaces_use_pool_thompson_sampling() -> None:
    spec = StudySpec.model_validate(
        {
            "params": [
                {"name": "x", "type": "float", "low": -1, "high": 1},
                {"name": "act", "type": "categorical", "choices": ["relu", "tanh"]},
                {"name": "k", "type": "int", "low": 1, "high": 4},
            ],
            "objectives": [{"name": "loss", "goal": "minimize"}],
            "engine": "egreedy",
            "engine_options": {**FAST, "variant": "aegis", "epsilon": 0.5},
        }
    )
    rng = random.Random(2)
    trials = []
    for i in range(8):
        params = {"x": rng.uniform(-1, 1), "act": rng.choice(["relu", "tanh"]), "k": rng.randint(1, 4)}
        trials.append(
            TrialView(
                i,
                params,
                TrialState.COMPLETED,
                {"loss": params["x"] ** 2 + (params["act"] == "tanh") + params["k"] / 10},
            )
        )
    suggestions, suggested = suggest(spec, trials, count=4)
    assert {info["branch"] for info in suggested.info or []} <= {"thompson", "pareto"}
    for s in suggestions:
        assert s["act"] in ("relu", "tanh") and s["k"] in (1, 2, 3, 4) and -1 <= s["x"] <= 1  # type: ignore[operator]


def test_initial_design_and_refusals() -> None:
    spec = spec_of(2)
    suggestions, suggested = suggest(spec, completed_history(spec, 2), count=2)
    assert suggested.rung == "initial-design" and suggested.info is None and len(suggestions) == 2
    resolved = resolve_engine(spec)
    assert isinstance(resolved.options, EGreedyOptions) and resolved.options.variant == "aegis"
    with pytest.raises(InvalidArgument) as error:
        resolve_engine(spec_of(2, variant="greedy"))
    assert error.value.problems[0].field == "engine_options.variant"
    with pytest.raises(InvalidArgument) as error:
        resolve_engine(spec_of(2, epsilon=1.5))
    assert error.value.problems[0].field == "engine_options.epsilon"
    bound = {"name": "c", "op": "<=", "bound": 0}
    constrained = StudySpec.model_validate({**spec.model_dump(), "constraints": [bound]})
    with pytest.raises(InvalidArgument, match="constrained"):
        resolve_engine(constrained)
