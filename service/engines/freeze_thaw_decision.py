"""The freeze-thaw decision (ALGORITHMS.md §4.2): which paused run to thaw for one more increment, or which new
configuration to start. The torch half of engine `freeze_thaw`, run by workers.

1. Fit the curve model to every run that reported the objective (MAP, warm-started from the last fit).
2. Basket: the `old_candidates` paused runs and the `new_candidates` fresh Sobol points whose asymptotes have the
   highest expected improvement over the best asymptote mean so far.
3. `entropy`: P_min, the probability that each basket member has the lowest asymptote, by Monte Carlo over their
   joint Gaussian posterior; for each member, fantasize its next increment (a rank-one update of that Gaussian:
   the observation is linear in the asymptotes) and measure the expected drop of P_min's entropy, under common
   random numbers. The member with the largest information gain is chosen. `ei`: the largest asymptote EI.
4. Several runs at once (other workers' runs, or count > 1): Kriging believer, the chosen or running member's next
   observation is fantasized at its mean, which shrinks the basket's covariance, and the choice is made again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from service.domain.spec import Goal
from service.domain.trial import TrialState, TrialView
from service.engines.base import NewRun, Resume, SuggestRequest
from service.engines.encoding import from_unit, to_unit
from service.engines.freeze_thaw import FreezeThawOptions, next_budget
from service.engines.freeze_thaw_model import (
    Curves,
    FreezeThawPosterior,
    Hyperparameters,
    decay_kernel,
    fit,
    matern52,
)
from service.engines.sobol import SobolEngine

MEMORY_KEY = "freeze_thaw_hyperparameters"
JITTER = 1e-9


@dataclass
class Basket:
    """The basket's asymptotes as one Gaussian, and how each member's next observation relates to them."""

    mean: Tensor  # B
    cov: Tensor  # B x B
    labels: list[int | np.ndarray]  # a trial number (paused run) or a unit-cube point (new configuration)
    gain_of_observing: list[Tensor]  # per member: cov(basket asymptotes, its next observation), B
    observation_variance: list[Tensor]  # per member: the variance of that observation
    omega: list[Tensor]  # per member: the weight of its asymptote in its next observation (1 for a new run)


def _ei(mean: Tensor, variance: Tensor, best: float) -> Tensor:
    """Expected improvement below `best` (losses: lower is better)."""
    sd = variance.clamp_min(1e-12).sqrt()
    z = (best - mean) / sd
    improvement: Tensor = (best - mean) * torch.special.ndtr(z) + sd * torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return improvement


def _factor(cov: Tensor) -> Tensor:
    """A square root of a covariance that rounding may have left barely indefinite."""
    symmetric = (cov + cov.T) / 2
    values, vectors = torch.linalg.eigh(symmetric)
    root: Tensor = vectors * values.clamp_min(JITTER).sqrt()
    return root


def _entropy_of_pmin(mean: Tensor, cov: Tensor, draws: Tensor) -> Tensor:
    samples = mean + draws @ _factor(cov).T
    counts = torch.bincount(samples.argmin(dim=1), minlength=len(mean)).to(mean.dtype)
    p = counts / counts.sum()
    return -(p[p > 0] * p[p > 0].log()).sum()


def _information_gains(basket: Basket, draws: Tensor, fantasies: Tensor) -> Tensor:
    """H(P_min) minus its expectation after fantasizing each member's next observation."""
    now = _entropy_of_pmin(basket.mean, basket.cov, draws)
    gains = []
    for b in range(len(basket.mean)):
        c, v = basket.gain_of_observing[b], basket.observation_variance[b]
        cov = basket.cov - torch.outer(c, c) / v
        after = [_entropy_of_pmin(basket.mean + c / v.sqrt() * z, cov, draws) for z in fantasies]
        gains.append(now - torch.stack(after).mean())
    return torch.stack(gains)


def _believe(basket: Basket, c: Tensor, v: Tensor) -> None:
    """Kriging believer: an observation fantasized at its mean leaves means alone and shrinks the covariance.

    `c` is cov(basket asymptotes, the observation). Member b's own next observation covaries with it through its
    asymptote only (curves are independent given the asymptotes): cov = omega_b * c_b.
    """
    basket.cov = basket.cov - torch.outer(c, c) / v
    for b in range(len(basket.mean)):
        shared = basket.omega[b] * c[b]
        basket.gain_of_observing[b] = basket.gain_of_observing[b] - c * (shared / v)
        basket.observation_variance[b] = (basket.observation_variance[b] - shared**2 / v).clamp_min(1e-9)


def plan(request: SuggestRequest) -> list[Resume | NewRun]:
    spec, options = request.spec, request.options
    assert isinstance(options, FreezeThawOptions) and spec.fidelity is not None
    objective = spec.objectives[0]
    sign = 1.0 if objective.goal is Goal.MINIMIZE else -1.0
    started = [t for t in request.trials if any(objective.name in m.values for m in t.measurements)
               and t.state is not TrialState.FAILED]
    if len(started) < 2:
        request.notes.rung = "warm-up"
        return _sobol_runs(request, request.count)
    torch.manual_seed(request.seed % 2**31 + request.sequence_start)
    curves, progress = _curves(request, started, sign)
    start = request.notes.memory.get(MEMORY_KEY)
    warm = Hyperparameters.from_dict(start) if start and len(start["log_lengthscales"]) == len(spec.params) else None
    hyper = fit(curves, warm)
    request.notes.memory[MEMORY_KEY] = hyper.to_dict()
    request.notes.rung = "freeze-thaw"
    posterior = FreezeThawPosterior(curves, hyper)
    basket = _basket(request, options, started, progress, posterior)
    _believe_running(request, options, started, progress, posterior, basket)
    generator = torch.Generator().manual_seed(request.seed % 2**31 + request.sequence_start)
    draws = torch.randn(options.pmin_samples, len(basket.mean), generator=generator, dtype=torch.float64)
    quantiles = torch.special.ndtri((torch.arange(options.fantasies, dtype=torch.float64) + 0.5) / options.fantasies)
    best = float(posterior.mu.min())
    chosen: list[Resume | NewRun] = []
    available = list(range(len(basket.mean)))
    while len(chosen) < request.count and available:
        if options.rule == "entropy":
            scores = _information_gains(basket, draws, quantiles)
        else:
            scores = _ei(basket.mean, basket.cov.diagonal(), best)
        b = max(available, key=lambda i: float(scores[i]))
        available.remove(b)
        label = basket.labels[b]
        info = {"rule": options.rule, "score": float(scores[b])}
        if isinstance(label, int):
            chosen.append(Resume(label, next_budget(spec, options, progress[label]), f"freeze-thaw {options.rule}"))
        else:
            (params,) = from_unit(spec, label[None, :])
            chosen.append(NewRun(params, next_budget(spec, options, None), info))
        _believe(basket, basket.gain_of_observing[b], basket.observation_variance[b])
    if len(chosen) < request.count:
        chosen += _sobol_runs(request, request.count - len(chosen))
    return chosen


def _sobol_runs(request: SuggestRequest, count: int) -> list[Resume | NewRun]:
    options = request.options
    assert isinstance(options, FreezeThawOptions)
    fresh = SobolEngine().suggest(SuggestRequest(request.spec, options, count, request.seed, request.sequence_start))
    return [NewRun(p, next_budget(request.spec, options, None)) for p in fresh]


def _curves(request: SuggestRequest, started: list[TrialView], sign: float) -> tuple[Curves, dict[int, float]]:
    spec = request.spec
    assert spec.fidelity is not None
    name = spec.objectives[0].name
    top = spec.fidelity.max
    values = [sign * m.values[name] for t in started for m in t.measurements if name in m.values]
    centre, scale = float(np.mean(values)), float(np.std(values)) or 1.0
    x = torch.as_tensor(to_unit(spec, [t.params for t in started]), dtype=torch.float64)
    steps, ys, progress = [], [], {}
    for trial in started:
        seen = sorted((m.step, sign * m.values[name]) for m in trial.measurements if name in m.values)
        steps.append(torch.tensor([max(s, 1e-6) / top for s, _ in seen], dtype=torch.float64))
        ys.append(torch.tensor([(v - centre) / scale for _, v in seen], dtype=torch.float64))
        progress[trial.number] = seen[-1][0]
    return Curves(x, steps, ys), progress


def _basket(request: SuggestRequest, options: FreezeThawOptions, started: list[TrialView], progress: dict[int, float],
            posterior: FreezeThawPosterior) -> Basket:
    spec = request.spec
    assert spec.fidelity is not None
    best = float(posterior.mu.min())
    index = {t.number: i for i, t in enumerate(started)}
    paused = [t.number for t in started if t.state is TrialState.PAUSED and progress[t.number] < spec.fidelity.max]
    old_scores = _ei(posterior.mu[[index[n] for n in paused]], posterior.cov.diagonal()[[index[n] for n in paused]],
                     best) if paused else torch.zeros(0)
    old = [paused[i] for i in torch.argsort(old_scores, descending=True)[:options.old_candidates].tolist()]
    pool = SobolEngine().suggest(SuggestRequest(spec, options, options.candidate_pool, request.seed + 7919,
                                                request.sequence_start * options.candidate_pool))
    units = torch.as_tensor(to_unit(spec, pool), dtype=torch.float64)
    new_mean, new_var = posterior.asymptote(units)
    top_new = torch.argsort(_ei(new_mean, new_var, best), descending=True)[:options.new_candidates]
    fresh = units[top_new]

    # Joint covariance of [old asymptotes, new asymptotes]: cov(f*, f) = k*ᵀ(I - A K_x), cov(f*, f*') = k - k*ᵀ A k*'.
    rows = [index[n] for n in old]
    k_new = matern52(fresh, posterior.curves.x, posterior.hyper)
    across = k_new - (posterior._apply_a(k_new.T).T @ posterior.kx)  # new x all curves
    new_cov = matern52(fresh, fresh, posterior.hyper) - k_new @ posterior._apply_a(k_new.T)
    cov = torch.cat([torch.cat([posterior.cov[rows][:, rows], across[:, rows].T], dim=1),
                     torch.cat([across[:, rows], new_cov], dim=1)], dim=0)
    mean = torch.cat([posterior.mu[rows], new_mean[top_new]])
    gains, variances, omegas = [], [], []
    for b, number in enumerate(old):  # a paused run's next observation: Omega times its asymptote, plus curve noise
        step = torch.tensor([next_budget(spec, options, progress[number]) / spec.fidelity.max], dtype=torch.float64)
        _, variance = posterior.curve(index[number], step, observed=True)
        omega = _omega(posterior, index[number], step)
        gains.append(omega * cov[:, b])
        variances.append(variance[0])
        omegas.append(omega)
    first = torch.tensor([next_budget(spec, options, None) / spec.fidelity.max], dtype=torch.float64)
    curve_variance = decay_kernel(first, first, posterior.hyper)[0, 0] + posterior.hyper.log_noise.exp()
    for j in range(len(fresh)):  # a new run's first observation: its asymptote plus curve noise
        b = len(old) + j
        gains.append(cov[:, b].clone())
        variances.append(cov[b, b] + curve_variance)
        omegas.append(torch.tensor(1.0, dtype=torch.float64))
    labels: list[int | np.ndarray] = [*old, *[row.numpy() for row in fresh]]
    return Basket(mean, cov, labels, gains, variances, omegas)


def _omega(posterior: FreezeThawPosterior, n: int, step: Tensor) -> Tensor:
    """How much of curve n's value at `step` is still its asymptote: 1 - k(step, t_n) K_n⁻¹ 1."""
    cross = decay_kernel(step, posterior.curves.t[n], posterior.hyper)
    return 1 - torch.cholesky_solve(cross.T, posterior.chol[n]).sum()


def _believe_running(request: SuggestRequest, options: FreezeThawOptions, started: list[TrialView],
                     progress: dict[int, float], posterior: FreezeThawPosterior, basket: Basket) -> None:
    """Runs other workers are training: their next increment is fantasized at its mean (D9)."""
    spec = request.spec
    assert spec.fidelity is not None
    index = {t.number: i for i, t in enumerate(started)}
    old = [label for label in basket.labels if isinstance(label, int)]
    for trial in started:
        if trial.state is not TrialState.ACTIVE:
            continue
        n = index[trial.number]
        step = torch.tensor([next_budget(spec, options, progress[trial.number]) / spec.fidelity.max],
                            dtype=torch.float64)
        _, variance = posterior.curve(n, step, observed=True)
        omega = _omega(posterior, n, step)
        # cov(basket asymptotes, f_n): C for old members; k*ᵀ(I - A K_x) for new ones.
        column = torch.zeros(len(basket.mean), dtype=torch.float64)
        for b, number in enumerate(old):
            column[b] = posterior.cov[index[number], n]
        fresh = torch.as_tensor(np.array([label for label in basket.labels if not isinstance(label, int)]),
                                dtype=torch.float64).reshape(-1, posterior.curves.x.shape[1])
        if len(fresh):
            k_new = matern52(fresh, posterior.curves.x, posterior.hyper)
            across = k_new - (posterior._apply_a(k_new.T).T @ posterior.kx)
            column[len(old):] = across[:, n]
        _believe(basket, omega * column, variance[0])
    if not math.isfinite(float(basket.cov.sum())):
        raise ValueError("the basket covariance is not finite")
