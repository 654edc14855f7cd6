"""Shared torch plumbing of the model engines: optimizing an acquisition over the study's space,
keeping proposals apart from known points, the success model for failed trials (D2), per-outcome fits,
pools of points, marginal posteriors and Kriging-believer conditioning."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import gpytorch
import numpy as np
import torch
from botorch.acquisition.acquisition import AcquisitionFunction
from botorch.models.model import Model
from botorch.optim.optimize import optimize_acqf
from botorch.optim.optimize_mixed import optimize_acqf_mixed_alternating
from botorch.utils.sampling import manual_seed
from scipy.stats import qmc

from service.domain.spec import Goal, StudySpec
from service.domain.trial import TrialState, TrialView
from service.engines.base import SuggestRequest
from service.engines.encoding import MIN_SEPARATION, from_unit
from service.engines.modeling import DTYPE, Features, FitOutcome, fit_with_ladder, min_linf_distance

PENDING_STATES = (TrialState.ACTIVE, TrialState.PAUSED)
FAILURE_STATES = (TrialState.FAILED, TrialState.INFEASIBLE)
POSTERIOR_CHUNK = 4096
# Exact Cholesky up to this many points instead of GPyTorch's default switch to iterative solvers above
# 800: measured here as fast or faster at n = 1000 and 2000 (fits use a subset of at most max_fit_points
# anyway), and the acquisition sees an exact posterior.
EXACT_POSTERIOR_LIMIT = 4000
RUNG_ORDER = ("fit", "fit-warm", "last-good", "prior-modes")  # from best to worst


@contextmanager
def model_session(request: SuggestRequest) -> Iterator[None]:
    """The settings of one model computation: torch seeded from the study's seed and trial number (so any
    worker computes the same suggestion), exact posteriors."""
    with manual_seed(int((request.seed + request.sequence_start) % 2**31)), \
            gpytorch.settings.max_cholesky_size(EXACT_POSTERIOR_LIMIT):
        yield


def objective_targets(spec: StudySpec, completed: list[TrialView], device: torch.device) -> torch.Tensor:
    """The single objective of the completed trials as the model sees it: one column, maximized."""
    objective = spec.objectives[0]
    sign = 1.0 if objective.goal is Goal.MAXIMIZE else -1.0  # engines maximize internally
    return torch.tensor([[sign * (t.values or {})[objective.name]] for t in completed], dtype=DTYPE, device=device)


def pending_inputs(request: SuggestRequest, features: Features, device: torch.device) -> torch.Tensor | None:
    """Encoded params of the trials being evaluated right now (X_pending), or None when there are none."""
    pending = [t.params for t in request.trials if t.state in PENDING_STATES]
    return features.encode(pending, device) if pending else None


def optimize(acquisition: AcquisitionFunction, features: Features, count: int, *, num_restarts: int,
             raw_samples: int, timeout_seconds: float, device: torch.device) -> torch.Tensor:
    """`count` jointly chosen maximizers: gradient multistart in a box, alternating search with
    categorical or discrete integer dimensions (ALGORITHMS.md §0.1)."""
    bounds = features.bounds(device)
    if not features.cat_dims and not features.discrete_dims:
        candidates, _ = optimize_acqf(acquisition, bounds, q=count, num_restarts=num_restarts,
                                      raw_samples=raw_samples, sequential=count > 1, timeout_sec=timeout_seconds)
    else:
        # optimize_acqf_mixed_alternating takes no time bound in BoTorch 0.18; its iterations are bounded.
        candidates, _ = optimize_acqf_mixed_alternating(
            acquisition, bounds, discrete_dims=features.discrete_dims or None,
            cat_dims=features.cat_dims or None, q=count, num_restarts=num_restarts,
            raw_samples=raw_samples, options={"maxiter_alternating": 32})
    return candidates.detach()


def space_pool(features: Features, size: int, seed: int, device: torch.device) -> torch.Tensor:
    """`size` encoded points of the study's space (valid categories and integers): a scrambled Sobol sequence,
    or one uniform point when `size` is 1."""
    if size == 1:
        points = np.random.default_rng(seed).random((1, features.dim))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # balance warning: sizes are not powers of 2
            points = qmc.Sobol(d=features.dim, scramble=True, seed=seed).random(size)
    return features.encode(from_unit(features.spec, points), device)


def first_output(samples: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
    """The MC objective of a single-objective model list: its first output (the objective's GP)."""
    return samples[..., 0]


def mean_and_std(model: Model, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and standard deviation at the rows of X (n x outputs each), in chunks, without gradients.

    Each row is its own batch (n x 1 x d): only marginal variances are computed, never the n x n joint
    covariance, which made scoring a pool of thousands of points cost seconds.
    """
    means, stds = [], []
    with torch.no_grad():
        for chunk in torch.split(X, POSTERIOR_CHUNK):
            posterior: Any = model.posterior(chunk.unsqueeze(-2))
            means.append(posterior.mean.squeeze(-2))
            stds.append(posterior.variance.clamp_min(0).sqrt().squeeze(-2))
    return torch.cat(means), torch.cat(stds)


def kriging_believer(model: Model, busy: torch.Tensor | None) -> Model:
    """The model conditioned on its own posterior mean at the busy points: the mean stays, the std shrinks there."""
    if busy is None or busy.shape[0] == 0:
        return model
    believed, _ = mean_and_std(model, busy)
    conditioned = model.condition_on_observations(busy, believed)
    conditioned.eval()
    return conditioned


def separated(candidates: torch.Tensor, taken: torch.Tensor, features: Features,
              request: SuggestRequest) -> torch.Tensor:
    """Last safeguard (§0.3): a proposal on top of an observed, pending or earlier one is re-drawn at random."""
    generator = torch.Generator().manual_seed(int((request.seed + request.sequence_start) % 2**31))
    bounds = features.bounds(candidates.device)
    kept = []
    others = features.unit(taken)
    for row in candidates:
        candidate = row
        for _ in range(100):
            if min_linf_distance(features.unit(candidate[None]), others)[0] >= MIN_SEPARATION:
                break
            draw = torch.rand(features.dim, generator=generator, dtype=DTYPE).to(candidate.device)
            candidate = bounds[0] + draw * (bounds[1] - bounds[0])
            for i in features.cat_dims:
                candidate[i] = candidate[i].round()
        kept.append(candidate)
        others = torch.cat([others, features.unit(candidate[None])])
    return torch.stack(kept)


def fit_success_model(request: SuggestRequest, features: Features, X_completed: torch.Tensor,
                      failure_model_after: int, fit_args: dict[str, Any]) -> FitOutcome | None:
    """A GP on success (1) vs failure (0) over completed and failed trials, once there are enough failures
    (D2); None before that, when failed trials are simply left out of the model."""
    failures: list[TrialView] = [t for t in request.trials if t.state in FAILURE_STATES]
    if len(failures) < failure_model_after:
        return None
    device = X_completed.device
    X_all = torch.cat([X_completed, features.encode([t.params for t in failures], device)])
    success = torch.cat([torch.ones(X_completed.shape[0], 1), torch.zeros(len(failures), 1)]).to(X_completed)
    return fit_with_ladder(X_all, success, sorted(features.cat_dims), warm_start=request.notes.memory.get("success"),
                           **fit_args)


def fit_outcomes(X: torch.Tensor, outputs: list[tuple[str, torch.Tensor]], features: Features,
                 memory: dict[str, Any], fit_args: dict[str, Any]) -> tuple[list[FitOutcome], dict[str, Any]]:
    """One GP per named outcome column, each warm-started from its last hyperparameters; returns the fits
    and the memory to keep for next time."""
    warm = memory.get("outcomes", {})
    fits = [fit_with_ladder(X, Y, sorted(features.cat_dims), warm_start=warm.get(name), **fit_args)
            for name, Y in outputs]
    return fits, {"outcomes": {name: f.hyperparameters for (name, _), f in zip(outputs, fits, strict=True)}}


def worst_rung(fits: list[FitOutcome]) -> str:
    """The ladder step to report for several models: the worst one used."""
    return max((f.rung for f in fits), key=RUNG_ORDER.index)


def outcome_constraints(spec: StudySpec, first_output: int) -> tuple[list[str], list[OutcomeBound]]:
    """The constrained metrics (one model output each, after the objectives) and BoTorch constraint callables
    (feasible where <= 0)."""
    metrics: list[str] = []
    for c in spec.constraints:
        if c.name not in metrics:
            metrics.append(c.name)
    callables = [
        OutcomeBound(first_output + metrics.index(c.name), c.bound, upper=c.op == "<=") for c in spec.constraints]
    return metrics, callables


@dataclass(frozen=True)
class OutcomeBound:
    """Constraint `output <= bound` (upper) or `output >= bound` on model samples, feasible where <= 0."""

    output: int
    bound: float
    upper: bool

    def __call__(self, samples: torch.Tensor) -> torch.Tensor:
        value = samples[..., self.output]
        return value - self.bound if self.upper else self.bound - value
