"""Parameter importance: first-order shares of the variance of the objective's ranks."""

from __future__ import annotations

import numpy as np

from service.domain.importance import MIN_TRIALS, bin_index, first_order_share, importances, ranks


def test_ranks_share_ties() -> None:
    assert ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_the_parameter_the_objective_depends_on_gets_the_share() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    lr, noise, act = rng.uniform(size=n), rng.uniform(size=n), rng.integers(0, 3, size=n).astype(float)
    y = (lr - 0.3) ** 2 + 0.02 * act + 0.001 * rng.normal(size=n)
    found = {f.name: f.share for f in importances({"lr": (lr, False), "noise": (noise, False), "act": (act, True)}, y)}
    assert found["lr"] > 0.8
    assert found["act"] > found["noise"]
    assert found["noise"] < 0.01  # the bias correction brings an unused parameter to about zero


def test_one_diverged_run_does_not_move_the_shares() -> None:
    rng = np.random.default_rng(1)
    x, other = rng.uniform(size=300), rng.uniform(size=300)
    y = x + 0.1 * rng.normal(size=300)
    base = importances({"x": (x, False), "other": (other, False)}, y)
    y[np.argmax(other)] = 1e12  # a diverged run at the largest value of the unused parameter
    spoiled = importances({"x": (x, False), "other": (other, False)}, y)
    assert [f.name for f in spoiled] == [f.name for f in base] == ["x", "other"]
    assert abs(spoiled[0].share - base[0].share) < 0.05


def test_absent_values_bin_apart_and_few_trials_give_nothing() -> None:
    values = np.array([1.0, np.nan, 2.0, np.nan])
    index = bin_index(values, categorical=False, bins=4)
    assert index.tolist() == [0, 2, 1, 2]
    assert importances({"x": (np.arange(MIN_TRIALS - 1.0), False)}, np.arange(MIN_TRIALS - 1.0)) == []
    assert first_order_share(np.zeros(10, dtype=np.int64), np.arange(10.0)) == (0.0, 1)
