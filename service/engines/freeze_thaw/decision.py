"""The freeze-thaw decision: which paused run to thaw, or which new configuration to start ("Freeze-Thaw Bayesian
Optimization", Swersky, Snoek and Adams, 2014; labels D7-D9 and D14 refer to docs/decisions.md). The torch half of
engine `freeze_thaw`, run by workers.

1. Fit the curve model to every run that reported the objective (MAP, warm-started from the last fit; refitted
   once the observations grew by a tenth).
2. `promote`: rank each rung's runs by predicted final value and promote the top 1/eta (as asha ranks by the value
   at the rung); else start a Thompson-sampled configuration at the lowest rung whose values rank the finished
   runs' final values.
3. `entropy` and `ei`: the basket, the `old_candidates` paused runs and the `new_candidates` fresh Sobol points with
   the highest expected improvement of their final value. The target is each member's value at the end of
   training (the fidelity's max): the paper's asymptote when training runs to convergence, and what a study with a
   bounded budget is judged by (D14). An old run's final value is its asymptote weighted by Omega(max) plus its own
   curve's residual; a new run's is its asymptote plus the shared mean decay plus a fresh residual. So the
   basket's final values, and each member's next observation, are one joint Gaussian.
   `entropy`: P_min, the probability that each member ends lowest, by Monte Carlo; for each member, fantasize its
   next increment (a rank-one update of that Gaussian) and measure the expected drop of P_min's entropy under
   common random numbers; the largest information gain wins. `ei`: the largest expected improvement per step.
4. Several runs at once (other workers' runs, or count > 1): Kriging believer, the chosen or running member's next
   observation is fantasized at its mean, which shrinks the covariances, and the choice is made again (D9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from service.domain.spec import Choice, Goal, StudySpec
from service.domain.trial import TrialState, TrialView
from service.engines.asha import promotions, rungs
from service.engines.base import NewRun, Plan, Resume, SuggestRequest
from service.engines.encoding import from_unit, to_unit
from service.engines.freeze_thaw.engine import PROMOTE_RULES, FreezeThawOptions, next_budget, warmup_budget
from service.engines.freeze_thaw.model import (
    Curves,
    FreezeThawPosterior,
    Hyperparameters,
    decay_kernel,
    fit,
    matern52,
    trend,
)
from service.engines.shared.sampling import covariance_root
from service.engines.sobol import initial_design, sobol_points

MEMORY_KEY = "freeze_thaw_hyperparameters"
FITTED_AT_KEY = "freeze_thaw_fitted_at"  # how many observations the stored hyperparameters were fitted to
REFIT_GROWTH = 1.1  # refit once the observations grew by a tenth since the last fit


@dataclass
class Basket:
    """The basket as one Gaussian: members' final values, and each member's next observation.

    `values_cov` is cov(final values), `gains[:, b]` = cov(final values, y_b) and `observations` = cov(y_b, y_b'),
    where y_b is member b's next observation (its next increment, or a new run's first).
    """

    mean: Tensor  # B
    values_cov: Tensor  # B x B
    gains: Tensor  # B x B
    observations: Tensor  # B x B
    labels: list[int | np.ndarray]  # a trial number (paused run) or a unit-cube point (new configuration)

    def condition(self, gain: Tensor, cross: Tensor, variance: Tensor) -> None:
        """Kriging believer: an observation with cov(final values) = `gain`, cov(members' observations) = `cross`
        and `variance`, fantasized at its mean, leaves the means alone and shrinks every covariance."""
        self.values_cov = self.values_cov - torch.outer(gain, gain) / variance
        self.gains = self.gains - torch.outer(gain, cross) / variance
        self.observations = self.observations - torch.outer(cross, cross) / variance


def _ei(mean: Tensor, variance: Tensor, best: float) -> Tensor:
    """Expected improvement below `best` (losses: lower is better)."""
    sd = variance.clamp_min(1e-12).sqrt()
    z = (best - mean) / sd
    improvement: Tensor = (best - mean) * torch.special.ndtr(z) + sd * torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return improvement


def _entropy_of_pmin(mean: Tensor, cov: Tensor, draws: Tensor) -> Tensor:
    samples = mean + draws @ covariance_root(cov).T
    counts = torch.bincount(samples.argmin(dim=1), minlength=len(mean)).to(mean.dtype)
    p = counts / counts.sum()
    return -(p[p > 0] * p[p > 0].log()).sum()


def _information_gains(basket: Basket, draws: Tensor, fantasies: Tensor) -> Tensor:
    """H(P_min) minus its expectation after fantasizing each member's next observation."""
    now = _entropy_of_pmin(basket.mean, basket.values_cov, draws)
    gains = []
    for b in range(len(basket.mean)):
        c, v = basket.gains[:, b], basket.observations[b, b].clamp_min(1e-12)
        cov = basket.values_cov - torch.outer(c, c) / v
        after = [_entropy_of_pmin(basket.mean + c / v.sqrt() * z, cov, draws) for z in fantasies]
        gains.append(now - torch.stack(after).mean())
    return torch.stack(gains)


def plan(request: SuggestRequest[FreezeThawOptions]) -> Plan:
    spec, options = request.spec, request.options
    assert spec.fidelity is not None
    objective = spec.objectives[0]
    sign = 1.0 if objective.goal is Goal.MINIMIZE else -1.0
    started = [
        t
        for t in request.trials
        if any(objective.name in m.values for m in t.measurements) and t.state is not TrialState.FAILED
    ]
    if len(started) < 2:
        return Plan(_sobol_runs(request, request.count), rung="warm-up")
    curves, progress = _curves(request, started, sign)
    start = request.memory.get(MEMORY_KEY)
    warm = Hyperparameters.from_dict(start) if start and Hyperparameters.fits(start, len(spec.params)) else None
    observations = sum(len(t) for t in curves.t)
    memory: dict[str, Any] | None = None  # None: the saved fit serves as it was
    if warm is not None and observations < REFIT_GROWTH * request.memory.get(FITTED_AT_KEY, 0):
        hyper = warm  # a few more points barely move a MAP fit; refitting on every decision was most of its time
    else:
        hyper = fit(curves, warm)
        memory = {**request.memory, MEMORY_KEY: hyper.to_dict(), FITTED_AT_KEY: observations}
    posterior = FreezeThawPosterior(curves, hyper)
    return Plan(_runs(request, options, started, progress, posterior), memory=memory, rung="freeze-thaw")


def _runs(
    request: SuggestRequest[FreezeThawOptions],
    options: FreezeThawOptions,
    started: list[TrialView],
    progress: dict[int, float],
    posterior: FreezeThawPosterior,
) -> list[Resume | NewRun]:
    """Up to `request.count` runs by the study's rule, best first; Sobol runs fill what the basket cannot."""
    spec = request.spec
    assert spec.fidelity is not None
    if options.rule in PROMOTE_RULES:
        return _promote(request, options, started, progress, posterior)
    basket, links = _basket(request, options, started, progress, posterior)
    _believe_running(request, options, started, progress, posterior, basket, links)
    generator = torch.Generator().manual_seed(request.seed % 2**31 + request.sequence_start)
    draws = torch.randn(options.pmin_samples, len(basket.mean), generator=generator, dtype=torch.float64)
    quantiles = torch.special.ndtri((torch.arange(options.fantasies, dtype=torch.float64) + 0.5) / options.fantasies)
    best = _best_final(posterior)
    top = spec.fidelity.max
    remaining = torch.tensor(
        [top - progress[label] if isinstance(label, int) else top - spec.fidelity.min + 1 for label in basket.labels],
        dtype=torch.float64,
    ).clamp_min(1e-9)
    chosen: list[Resume | NewRun] = []
    available = list(range(len(basket.mean)))
    while len(chosen) < request.count and available:
        if options.rule == "entropy":
            scores = _information_gains(basket, draws, quantiles)
        else:  # per step of training still needed to reach that final value (D8: a run near the end costs less)
            scores = _ei(basket.mean, basket.values_cov.diagonal(), best) / remaining
        b = max(available, key=lambda i: float(scores[i]))
        available.remove(b)
        label = basket.labels[b]
        info = {"rule": options.rule, "score": float(scores[b])}
        if isinstance(label, int):
            chosen.append(Resume(label, next_budget(spec, options, progress[label]), f"freeze-thaw {options.rule}"))
        else:
            (params,) = from_unit(spec, label[None, :])
            chosen.append(NewRun(params, next_budget(spec, options, None), info))
        basket.condition(
            basket.gains[:, b].clone(), basket.observations[:, b].clone(), basket.observations[b, b].clamp_min(1e-12)
        )
    if len(chosen) < request.count:
        chosen += _sobol_runs(request, request.count - len(chosen))
    return chosen


def _promote(
    request: SuggestRequest[FreezeThawOptions],
    options: FreezeThawOptions,
    started: list[TrialView],
    progress: dict[int, float],
    posterior: FreezeThawPosterior,
) -> list[Resume | NewRun]:
    """`rule: promote`: asynchronous successive halving (as engine `asha`) driven by the curve model.
    `promote_capped` keeps only the Thompson sample: promotions are asha's (the top 1/eta by the value at the rung)
    and new runs start at the first rung.

    - A paused run goes on to the next rung when its *predicted final value* is in the top 1/eta of the runs that
      reached its rung, so a run that starts slowly but is heading lower is kept, and one that starts fast but
      flattens early is not.
    - With nothing to promote, a new configuration is a Thompson sample: the minimum of one joint draw of the
      asymptotes over a Sobol pool. Unlike the pool's expected-improvement maximum, which sits next to the best run
      decision after decision, draws spread over the region the model finds promising. Configurations started
      elsewhere and not reported yet are believed at their predicted first value (D9), so concurrent asks differ.
    - New runs start at the lowest rung whose values rank the finished runs' final values (`_first_rung`): where
      early values mislead (curves that cross), judging runs there would keep the wrong ones.
    """
    spec = request.spec
    assert spec.fidelity is not None
    steps = rungs(spec, options)
    if options.rule == "promote_capped":
        promoted = promotions(
            steps,
            options.eta,
            started,
            lambda t: progress[t.number],
            lambda t, rung: _loss_at(spec, t, rung),
            request.count,
            "freeze-thaw, as asha:",
        )
        first = steps[0]
    else:
        end = torch.ones(1, dtype=torch.float64)
        final = {t.number: float(posterior.curve(i, end)[0][0]) for i, t in enumerate(started)}
        promoted = promotions(
            steps,
            options.eta,
            started,
            lambda t: progress[t.number],
            lambda t, _: final[t.number],
            request.count,
            "freeze-thaw, by predicted final value:",
        )
        first = _first_rung(options, started, progress, posterior, steps)
    pending = [t.params for t in request.trials if t.state is TrialState.ACTIVE and not t.measurements]
    believed = _believe_pending(spec, options, posterior, pending)
    pool = sobol_points(
        SuggestRequest(
            spec, options, options.candidate_pool, request.seed + 7919, request.sequence_start * options.candidate_pool
        )
    )
    units = torch.as_tensor(to_unit(spec, pool), dtype=torch.float64)
    generator = torch.Generator().manual_seed((request.seed * 1_000_003 + request.sequence_start) % 2**31)
    taken: list[int] = []  # pool points this plan already starts: believing one shrinks its variance, not its mean
    unbelieved: list[dict[str, Choice]] = []  # started by this plan, believed before the next draw only

    def thompson_run(info: dict[str, Any]) -> NewRun:
        nonlocal believed
        if unbelieved:
            believed = _believe_pending(spec, options, believed, unbelieved)
            unbelieved.clear()
        mean, covariance = believed.asymptote_joint(units)
        draw = mean + covariance_root(covariance) @ torch.randn(len(units), generator=generator, dtype=torch.float64)
        draw[taken] = math.inf
        k = int(torch.argmin(draw))
        taken.append(k)
        (params,) = from_unit(spec, units[k][None, :].numpy())
        unbelieved.append(params)
        return NewRun(params, first, {"rule": options.rule, "first_rung": first, **info})

    fresh = [thompson_run({}) for _ in range(request.count - len(promoted))]
    # Each promotion's spare, for when another ask resumed that run first: sampled after the fresh runs, so a plan
    # without promotions draws exactly what it drew before spares existed.
    return [*[replace(resume, instead=thompson_run({"instead_of": resume.number})) for resume in promoted], *fresh]


def _loss_at(spec: StudySpec, trial: TrialView, step: float) -> float | None:
    """The objective as last reported at or before `step`, as a loss (None if never): what asha ranks a rung by."""
    objective = spec.objectives[0]
    seen = [m for m in trial.measurements if m.step <= step + 1e-9 and objective.name in m.values]
    if not seen:
        return None
    value = max(seen, key=lambda m: m.step).values[objective.name]
    return value if objective.goal is Goal.MINIMIZE else -value


def kendall_tau(said: list[float], seen: list[float]) -> float:
    """Kendall's rank agreement of early values (`said`) with final ones: +1 same order, -1 reversed, 0 unrelated.
    Pairs whose final values are equal are left out (a validation error counts samples, so final values tie
    often, and a tie says nothing of the early ranking); a pair equal early counts as neither."""
    signs = [
        math.copysign(1.0, (said[i] - said[j]) * (seen[i] - seen[j])) if said[i] != said[j] else 0.0
        for i in range(len(said))
        for j in range(i + 1, len(said))
        if seen[i] != seen[j]
    ]
    return sum(signs) / len(signs) if signs else 0.0


def _first_rung(
    options: FreezeThawOptions,
    started: list[TrialView],
    progress: dict[int, float],
    posterior: FreezeThawPosterior,
    steps: list[float],
) -> float:
    """The rung new runs train to first: the lowest at which the finished runs' values rank their final values
    with Kendall's tau of at least `rank_agreement` (with `warmup_to_max`, the warm-up runs, trained to the end
    unjudged, are the first finished runs it sees); the first rung until `agreement_runs` runs have finished, and
    the max when no rung agrees (then new runs train to the end, and the model learns from final values). Where
    early values mislead (curves that cross), a run judged there would be kept or dropped for the wrong reason;
    the check is the kind Hyper-Tune makes of its fidelities, on the study's own runs."""
    top = steps[-1]
    done = [i for i, t in enumerate(started) if progress[t.number] >= top - 1e-9]
    if len(done) < options.agreement_runs:
        return steps[0]
    curves = posterior.curves
    for rung in steps[:-1]:
        seen = {i: int((curves.t[i] <= rung / top + 1e-9).sum()) for i in done}
        judged = [i for i in done if seen[i] > 0]  # a run whose first report came after the rung says nothing
        if len(judged) < options.agreement_runs:
            continue
        at_rung = [float(curves.y[i][seen[i] - 1]) for i in judged]
        if kendall_tau(at_rung, [float(curves.y[i][-1]) for i in judged]) >= options.rank_agreement:
            return rung
    return top


def _believe_pending(
    spec: StudySpec, options: FreezeThawOptions, posterior: FreezeThawPosterior, pending: list[dict[str, Choice]]
) -> FreezeThawPosterior:
    """The posterior with each pending new run's first observation fantasized at its predicted mean (Kriging
    believer): the means stay, the variance near those configurations shrinks."""
    if not pending:
        return posterior
    assert spec.fidelity is not None
    curves = posterior.curves
    x = torch.as_tensor(to_unit(spec, pending), dtype=torch.float64)
    first = torch.tensor([next_budget(spec, options, None) / spec.fidelity.max], dtype=torch.float64)
    mean, _ = posterior.asymptote(x)
    values = mean + trend(first, posterior.hyper)
    extended = Curves(
        torch.cat([curves.x, x]), [*curves.t, *[first] * len(pending)], [*curves.y, *[value[None] for value in values]]
    )
    return FreezeThawPosterior(extended, posterior.hyper)


def _sobol_runs(request: SuggestRequest[FreezeThawOptions], count: int) -> list[Resume | NewRun]:
    """New runs from the study's initial design (its Sobol sequence, after the centre with `center_point`): the
    warm-up when a worker plans it, and the fill when the model chose fewer runs than asked."""
    options = request.options
    design = SuggestRequest(request.spec, options, count, request.seed, request.sequence_start)
    fresh = initial_design(design, options.center_point)
    return [NewRun(p, warmup_budget(request.spec, options)) for p in fresh]


def _curves(
    request: SuggestRequest[FreezeThawOptions], started: list[TrialView], sign: float
) -> tuple[Curves, dict[int, float]]:
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


def _best_final(posterior: FreezeThawPosterior) -> float:
    """What a final value must improve on: the best final value observed (a run trained to the end), or before
    any run has finished, the lowest predicted final value among the runs seen so far."""
    curves = posterior.curves
    finished = [float(y[-1]) for t, y in zip(curves.t, curves.y, strict=True) if float(t[-1]) >= 1 - 1e-9]
    if finished:
        return min(finished)
    end = torch.ones(1, dtype=torch.float64)
    return min(float(posterior.curve(n, end)[0][0]) for n in range(curves.count))


@dataclass(frozen=True)
class _Weights:
    """How one run's final value (at t = 1) and next observation (at t_next) depend on its asymptote (weights) and
    on its own curve's residual process (variances and covariance), given its observed points."""

    at_end: Tensor
    at_next: Tensor
    residual_end: Tensor
    residual_cross: Tensor
    residual_next: Tensor
    mean_end: Tensor


@dataclass(frozen=True)
class _Links:
    """How the basket's members relate to every run's asymptote: old members are runs `rows`, new members covary
    with the runs' asymptotes by `across`; `w_end`, `w_next` weigh each member's asymptote in its final value and
    in its next observation."""

    rows: list[int]
    across: Tensor
    w_end: Tensor
    w_next: Tensor


def _old_weights(posterior: FreezeThawPosterior, n: int, t_next: float) -> _Weights:
    points = torch.tensor([1.0, t_next], dtype=torch.float64)
    seen = posterior.curves.t[n]
    cross = decay_kernel(points, seen, posterior.hyper)
    solved = torch.cholesky_solve(cross.T, posterior.chol[n])  # K_n⁻¹ k(t_n, points)
    omega = 1 - solved.sum(0)
    residual = decay_kernel(points, points, posterior.hyper) - cross @ solved
    mean_end = (
        trend(points[:1], posterior.hyper)[0] + (solved[:, 0] * posterior.centred[n]).sum() + omega[0] * posterior.mu[n]
    )
    return _Weights(omega[0], omega[1], residual[0, 0], residual[0, 1], residual[1, 1], mean_end)


def _basket(
    request: SuggestRequest[FreezeThawOptions],
    options: FreezeThawOptions,
    started: list[TrialView],
    progress: dict[int, float],
    posterior: FreezeThawPosterior,
) -> tuple[Basket, _Links]:
    spec = request.spec
    assert spec.fidelity is not None
    top = spec.fidelity.max
    index = {t.number: i for i, t in enumerate(started)}
    paused = [t.number for t in started if t.state is TrialState.PAUSED and progress[t.number] < top]
    weights = {n: _old_weights(posterior, index[n], next_budget(spec, options, progress[n]) / top) for n in paused}
    best = _best_final(posterior)
    if paused:
        final_var = torch.stack(
            [weights[n].at_end ** 2 * posterior.cov[index[n], index[n]] + weights[n].residual_end for n in paused]
        )
        old_scores = _ei(torch.stack([weights[n].mean_end for n in paused]), final_var, best)
        old = [paused[i] for i in torch.argsort(old_scores, descending=True)[: options.old_candidates].tolist()]
    else:
        old = []
    pool = sobol_points(
        SuggestRequest(
            spec, options, options.candidate_pool, request.seed + 7919, request.sequence_start * options.candidate_pool
        )
    )
    units = torch.as_tensor(to_unit(spec, pool), dtype=torch.float64)
    first = torch.tensor([next_budget(spec, options, None) / top, 1.0], dtype=torch.float64)
    fresh_residual = decay_kernel(first, first, posterior.hyper)  # a new run's own curve, at t_first and t = 1
    new_mean, new_var = posterior.asymptote(units)
    new_mean = new_mean + trend(first[1:], posterior.hyper)  # a new run's final value: asymptote + mean decay
    top_new = torch.argsort(_ei(new_mean, new_var + fresh_residual[1, 1], best), descending=True)[
        : options.new_candidates
    ]
    fresh = units[top_new]

    # Asymptotes of [old, new]: C for old ones; cov(f*, f) = k*ᵀ(I - A K_x), cov(f*, f*') = k - k*ᵀ A k*'.
    rows = [index[n] for n in old]
    k_new = matern52(fresh, posterior.curves.x, posterior.hyper)
    across = k_new - (posterior._apply_a(k_new.T).T @ posterior.kx)
    new_cov = matern52(fresh, fresh, posterior.hyper) - k_new @ posterior._apply_a(k_new.T)
    asymptotes = torch.cat(
        [
            torch.cat([posterior.cov[rows][:, rows], across[:, rows].T], dim=1),
            torch.cat([across[:, rows], new_cov], dim=1),
        ],
        dim=0,
    )
    one = torch.ones(len(fresh), dtype=torch.float64)
    w_end = torch.cat([torch.stack([weights[n].at_end for n in old]) if old else one[:0], one])
    w_next = torch.cat([torch.stack([weights[n].at_next for n in old]) if old else one[:0], one])
    r_end = torch.cat(
        [torch.stack([weights[n].residual_end for n in old]) if old else one[:0], fresh_residual[1, 1] * one]
    )
    r_cross = torch.cat(
        [torch.stack([weights[n].residual_cross for n in old]) if old else one[:0], fresh_residual[0, 1] * one]
    )
    r_next = torch.cat(
        [torch.stack([weights[n].residual_next for n in old]) if old else one[:0], fresh_residual[0, 0] * one]
    )
    noise = posterior.hyper.log_noise.exp()
    mean = torch.cat([torch.stack([weights[n].mean_end for n in old]) if old else one[:0], new_mean[top_new]])
    labels: list[int | np.ndarray] = [*old, *[row.numpy() for row in fresh]]
    basket = Basket(
        mean=mean,
        values_cov=w_end[:, None] * asymptotes * w_end[None, :] + torch.diag(r_end),
        gains=w_end[:, None] * asymptotes * w_next[None, :] + torch.diag(r_cross),
        observations=w_next[:, None] * asymptotes * w_next[None, :] + torch.diag(r_next + noise),
        labels=labels,
    )
    return basket, _Links(rows, across, w_end, w_next)


def _believe_running(
    request: SuggestRequest[FreezeThawOptions],
    options: FreezeThawOptions,
    started: list[TrialView],
    progress: dict[int, float],
    posterior: FreezeThawPosterior,
    basket: Basket,
    links: _Links,
) -> None:
    """Runs other workers are training: their next increment is fantasized at its mean (D9)."""
    spec = request.spec
    assert spec.fidelity is not None
    index = {t.number: i for i, t in enumerate(started)}
    for trial in started:
        if trial.state is not TrialState.ACTIVE or progress[trial.number] >= spec.fidelity.max:
            continue
        n = index[trial.number]
        t_next = next_budget(spec, options, progress[trial.number]) / spec.fidelity.max
        link = _old_weights(posterior, n, t_next)
        variance = link.at_next**2 * posterior.cov[n, n] + link.residual_next + posterior.hyper.log_noise.exp()
        # cov(member asymptotes, f_n): C for old members, k*ᵀ(I - A K_x) for new ones; curves are independent
        # given the asymptotes, so the running curve's residual adds nothing.
        shared = torch.cat([posterior.cov[links.rows, n], links.across[:, n]]) * link.at_next
        basket.condition(links.w_end * shared, links.w_next * shared, variance)
    if not math.isfinite(float(basket.values_cov.sum())):
        raise ValueError("the basket covariance is not finite")
