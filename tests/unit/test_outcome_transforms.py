"""What the models see of the outcomes: winsorized objectives and constraint metrics, bilog around a bound, the
Yeo-Johnson power transform."""

from __future__ import annotations

import torch

from service.engines.shared.outcome_transforms import bilog, power_transformed, winsorized, winsorized_constraint


def column(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).reshape(-1, 1)


def test_winsorizing_clips_only_the_bad_tail_of_a_maximized_objective() -> None:
    Y = column(1.0, 1.2, 0.9, 1.1, 1.0, -6e9, 5.0)
    clipped = winsorized(Y)
    q1, q3 = 0.9, 1.2  # the lower and higher order statistics at 25% and 75% of 7 values
    assert clipped[5, 0] == q1 - 1.5 * (q3 - q1)  # the diverged run sits at the fence, not 9 orders below
    assert torch.equal(clipped[[0, 1, 2, 3, 4, 6]], Y[[0, 1, 2, 3, 4, 6]])  # good values, even outliers, stay
    assert torch.equal(winsorized(Y[:3]), Y[:3])  # too few values to call anything an outlier


def test_winsorizing_a_constraint_never_makes_an_infeasible_value_feasible() -> None:
    values = column(0.1, 0.2, 0.3, 0.25, 0.15, 40.0, -1e6)
    upper = winsorized_constraint(values, bound=0.5, upper=True)  # metric <= 0.5
    assert upper[5, 0] < 40.0 and upper[5, 0] > 0.5 and upper[6, 0] == -1e6  # only the infeasible side moves
    lower = winsorized_constraint(values, bound=0.05, upper=False)  # metric >= 0.05
    assert lower[6, 0] > -1e6 and lower[6, 0] < 0.05 and lower[5, 0] == 40.0


def test_bilog_keeps_the_bound_and_the_order_and_compresses_far_values() -> None:
    values = column(-6e9, -3.0, -0.1, 0.0, 0.1, 3.0, 1e4)
    mapped = bilog(values, bound=0.0)
    assert mapped[3, 0] == 0.0 and bool((mapped.diff(dim=0) > 0).all())
    assert abs(mapped[0, 0]) < 25 and mapped[-1, 0] < 10
    shifted = bilog(column(2.0, 2.5), bound=2.0)
    assert shifted[0, 0] == 2.0 and shifted[1, 0] > 2.0


def _skewness(values: torch.Tensor) -> float:
    centred = values - values.mean()
    return float((centred**3).mean() / centred.pow(2).mean() ** 1.5)


def test_the_power_transform_keeps_the_order_and_pulls_in_a_long_bad_tail() -> None:
    losses = column(0.30, 0.31, 0.33, 0.35, 0.40, 0.52, 0.90, 2.5, 9.0)  # a loss with a few diverged runs
    Y = -losses  # engines maximize
    transformed = power_transformed(Y)
    assert torch.equal(torch.argsort(transformed[:, 0]), torch.argsort(Y[:, 0]))  # monotone: the best stays best
    assert abs(_skewness(transformed)) < 0.5 * abs(_skewness(Y))
    assert torch.equal(power_transformed(Y[:3]), Y[:3])  # too few values to fit an exponent
    constant = column(1.0, 1.0, 1.0, 1.0, 1.0)
    assert torch.equal(power_transformed(constant), constant)
