"""The freeze-thaw model's block inference checked against dense Gaussian algebra on small cases: the joint
covariance K_t + O K_x Oᵀ is formed explicitly and conditioned the slow way."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from service.engines.freeze_thaw.model import (
    JITTER,
    Curves,
    FreezeThawPosterior,
    Hyperparameters,
    decay_kernel,
    fit,
    inside_bounds,
    matern52,
    negative_log_posterior,
    trend,
)


@pytest.fixture(autouse=True)
def float64_by_default() -> Iterator[None]:
    """These tests build tensors in float64 like the model does; the default goes back afterwards, so tests that
    train float32 networks in the same process (the framework integrations) are not affected."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _random_case(
    seed: int, lengths: tuple[int, ...] = (1, 3, 5, 2), dimension: int = 2
) -> tuple[Curves, Hyperparameters]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(len(lengths), dimension, generator=generator)
    t = [torch.sort(torch.rand(n, generator=generator))[0] + 0.05 for n in lengths]
    y = [torch.randn(n, generator=generator) for n in lengths]
    hyper = Hyperparameters.initial(dimension)
    hyper.mean = torch.tensor(0.3)
    hyper.log_lengthscales = torch.log(torch.rand(dimension, generator=generator) + 0.2)
    hyper.log_noise = torch.tensor(math.log(0.05))
    hyper.log_alpha, hyper.log_beta = torch.tensor(math.log(1.7)), torch.tensor(math.log(0.3))
    hyper.trend, hyper.log_trend_alpha = torch.tensor(0.8), torch.tensor(math.log(1.3))
    return Curves(x, t, y), hyper


def _dense(curves: Curves, hyper: Hyperparameters) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The joint covariance of all observations, the stacked observations less their prior mean (m + g(t)), and
    O (observation -> curve)."""
    noise = hyper.log_noise.exp() + JITTER  # the same jitter as the block code, so the two agree to rounding
    blocks = [decay_kernel(t, t, hyper) + noise * torch.eye(len(t)) for t in curves.t]
    k_t = torch.block_diag(*blocks)
    owner = torch.cat([torch.full((len(t),), n) for n, t in enumerate(curves.t)])
    o = torch.nn.functional.one_hot(owner, curves.count).double()
    k_x = matern52(curves.x, curves.x, hyper) + JITTER * torch.eye(curves.count)
    prior_mean = hyper.mean + trend(torch.cat(curves.t), hyper)
    return k_t + o @ k_x @ o.T, torch.cat(curves.y) - prior_mean, o


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_marginal_likelihood_matches_the_dense_gaussian(seed: int) -> None:
    curves, hyper = _random_case(seed)
    sigma, residual, _ = _dense(curves, hyper)
    dense = torch.distributions.MultivariateNormal(torch.zeros(len(residual)), sigma).log_prob(residual)
    assert float(FreezeThawPosterior(curves, hyper).log_marginal_likelihood()) == pytest.approx(float(dense), rel=1e-8)


@pytest.mark.parametrize("seed", [0, 3])
def test_asymptotes_and_curve_predictions_match_dense_conditioning(seed: int) -> None:
    curves, hyper = _random_case(seed)
    sigma, residual, o = _dense(curves, hyper)
    posterior = FreezeThawPosterior(curves, hyper)
    k_x = matern52(curves.x, curves.x, hyper) + JITTER * torch.eye(curves.count)
    # Asymptotes f given y: cov(f, y) = K_x Oᵀ.
    cross = k_x @ o.T
    dense_mean = hyper.mean + cross @ torch.linalg.solve(sigma, residual)
    dense_cov = k_x - cross @ torch.linalg.solve(sigma, cross.T)
    torch.testing.assert_close(posterior.mu, dense_mean, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(posterior.cov, dense_cov, rtol=1e-6, atol=1e-9)

    # Curve 2 at two future steps: cov(y_2(s), y) = k_t(s, t_2) on curve 2's rows + k_x(2, ·) Oᵀ.
    steps = torch.tensor([0.9, 1.4])
    n = 2
    start = sum(len(t) for t in curves.t[:n])
    cov_sy = (k_x[n] @ o.T).expand(len(steps), -1).clone()
    cov_sy[:, start : start + len(curves.t[n])] += decay_kernel(steps, curves.t[n], hyper)
    prior = decay_kernel(steps, steps, hyper).diagonal() + k_x[n, n]
    mean, variance = posterior.curve(n, steps)
    expected_mean = hyper.mean + trend(steps, hyper) + cov_sy @ torch.linalg.solve(sigma, residual)
    torch.testing.assert_close(mean, expected_mean, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(
        variance, prior - (cov_sy * torch.linalg.solve(sigma, cov_sy.T).T).sum(-1), rtol=1e-6, atol=1e-9
    )

    # A new configuration's asymptote: cov(f*, y) = k_x(x*, X) Oᵀ.
    fresh = torch.tensor([[0.5, 0.5], [0.1, 0.9]])
    k_star = matern52(fresh, curves.x, hyper) @ o.T
    mean, variance = posterior.asymptote(fresh)
    torch.testing.assert_close(mean, hyper.mean + k_star @ torch.linalg.solve(sigma, residual), rtol=1e-7, atol=1e-9)
    expected = hyper.log_scale_x.exp() - (k_star * torch.linalg.solve(sigma, k_star.T).T).sum(-1)
    torch.testing.assert_close(variance, expected, rtol=1e-6, atol=1e-9)
    # Jointly (what a Thompson draw over a pool uses): cov(f*, f*') = k_x(x*, x*') - k* Σ⁻¹ k*'ᵀ.
    joint_mean, joint_cov = posterior.asymptote_joint(fresh)
    torch.testing.assert_close(joint_mean, mean)
    torch.testing.assert_close(
        joint_cov, matern52(fresh, fresh, hyper) - k_star @ torch.linalg.solve(sigma, k_star.T), rtol=1e-6, atol=1e-9
    )


def test_fitting_learns_asymptotes_from_partial_curves() -> None:
    """Curves that decay to a configuration-dependent asymptote: after a MAP fit, a curve seen for a few early
    steps is predicted near its true asymptote, closer than its last observed value."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, generator=generator)
    asymptote = (x[:, 0] - 0.4) ** 2 * 4
    steps = torch.linspace(0.05, 1.0, 20)
    t, y = [], []
    for n in range(8):
        seen = 20 if n < 6 else 4  # two curves stopped early
        curve = asymptote[n] + 1.5 * torch.exp(-6 * steps[:seen]) + 0.01 * torch.randn(seen, generator=generator)
        t.append(steps[:seen])
        y.append(curve)
    curves = Curves(x, t, y)
    start = Hyperparameters.initial(1)
    hyper = fit(curves, start)
    assert float(FreezeThawPosterior(curves, hyper).log_marginal_likelihood()) > float(
        FreezeThawPosterior(curves, start).log_marginal_likelihood()
    )
    posterior = FreezeThawPosterior(curves, hyper)
    for n in (6, 7):
        predicted = float(posterior.curve(n, torch.tensor([1.0]))[0][0])
        assert abs(predicted - float(asymptote[n])) < abs(float(y[n][-1]) - float(asymptote[n]))


def test_a_fit_stays_inside_its_bounds_and_recovers_from_a_degenerate_warm_start() -> None:
    """A warm start far outside any useful model (the kind an unconstrained L-BFGS step once reached, after which
    every warm start stayed there) is clamped and refitted cold: the result is inside the bounds and at least as
    good, by the MAP objective, as the default starting point."""
    curves, _ = _random_case(4, lengths=(6, 3, 9, 2, 5, 1), dimension=3)
    degenerate = Hyperparameters.initial(3)
    degenerate.log_lengthscales = torch.tensor([-51.7, -175.2, -272.3])
    degenerate.log_scale_x, degenerate.trend, degenerate.log_alpha = (
        torch.tensor(72.1),
        torch.tensor(-19.8),
        torch.tensor(9.0),
    )
    fitted = fit(curves, degenerate)
    assert inside_bounds(fitted)
    loss = negative_log_posterior(curves, fitted)
    assert loss <= negative_log_posterior(curves, Hyperparameters.initial(3)) + 1e-9
    assert loss <= negative_log_posterior(curves, fit(curves)) + 1.0  # as good as a cold fit, give or take
    assert float(fitted.trend) >= 0  # curves decay from above
