"""The torch half of engine `gp`: fit, qLogNEI with pending points, mixed optimization."""

from __future__ import annotations

from typing import Any

import torch
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.acquisition.objective import GenericMCObjective
from botorch.models.model import Model
from botorch.models.model_list_gp_regression import ModelListGP

from service.domain.trial import TrialView
from service.engines.base import Suggestions, SuggestRequest
from service.engines.gp.engine import GPOptions
from service.engines.shared.modeling import EngineFailure, Features, fit_with_ladder
from service.engines.shared.optimizing import (
    first_output,
    fit_arguments,
    fit_success_model,
    model_session,
    objective_targets,
    optimize,
    pending_inputs,
    separated,
    taken_inputs,
)

__all__ = ["EngineFailure", "suggest"]


def _success_constraint(samples: torch.Tensor) -> torch.Tensor:
    """Feasible (<= 0) where the success model predicts more than an even chance."""
    return 0.5 - samples[..., 1]


def suggest(request: SuggestRequest[GPOptions], options: GPOptions, completed: list[TrialView]) -> Suggestions:
    with model_session(request):
        return _model_suggestions(request, options, completed)


def _model_suggestions(
    request: SuggestRequest[GPOptions], options: GPOptions, completed: list[TrialView]
) -> Suggestions:
    spec, device = request.spec, torch.device(request.device)
    features = Features.of(spec, options.discrete_int_limit)
    X = features.encode([t.params for t in completed], device)
    Y = objective_targets(spec, completed, device, options.winsorize, options.power_transform)
    X_pending = pending_inputs(request, features, device)
    fit_args = fit_arguments(options, request.seed)

    fit = fit_with_ladder(X, Y, features.categories, warm_start=request.memory.get("objective"), **fit_args)
    memory: dict[str, Any] = {"objective": fit.hyperparameters}
    model: Model = fit.model
    acquisition_args: dict[str, Any] = {}
    success_fit = fit_success_model(request, features, X, options.failure_model_after, fit_args)
    if success_fit is not None:
        memory["success"] = success_fit.hyperparameters
        model = ModelListGP(fit.model, success_fit.model)
        acquisition_args = dict(objective=GenericMCObjective(first_output), constraints=[_success_constraint])

    acquisition = qLogNoisyExpectedImprovement(
        model, X_baseline=X, X_pending=X_pending, prune_baseline=True, **acquisition_args
    )
    taken = taken_inputs(request, features, X, X_pending)
    candidates = optimize(acquisition, features, request.count, options, device, observed=taken)
    return Suggestions(features.decode(separated(candidates, taken, features, request)), memory=memory, rung=fit.rung)
