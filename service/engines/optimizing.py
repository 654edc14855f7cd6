"""Shared torch plumbing of the model engines: optimizing an acquisition over the study's space,
keeping proposals apart from known points, and the success model for failed trials (D2)."""

from __future__ import annotations

from typing import Any

import torch
from botorch.acquisition.acquisition import AcquisitionFunction
from botorch.optim.optimize import optimize_acqf
from botorch.optim.optimize_mixed import optimize_acqf_mixed_alternating

from service.domain.trial import TrialState, TrialView
from service.engines.base import SuggestRequest
from service.engines.encoding import MIN_SEPARATION
from service.engines.modeling import DTYPE, Features, FitOutcome, fit_with_ladder, min_linf_distance

PENDING_STATES = (TrialState.ACTIVE, TrialState.PAUSED)
FAILURE_STATES = (TrialState.FAILED, TrialState.INFEASIBLE)


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
