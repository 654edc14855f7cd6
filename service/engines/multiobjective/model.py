"""The torch half of engine `multiobjective`: one multi-output GP over the outcomes, qLogNEHVI or qLogNParEGO."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from botorch.acquisition.acquisition import AcquisitionFunction
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.objective import IdentityMCMultiOutputObjective
from botorch.acquisition.multi_objective.parego import qLogNParEGO
from botorch.acquisition.multi_objective.utils import get_default_partitioning_alpha
from botorch.models.model import Model
from botorch.utils.sampling import sample_simplex

from service.domain.hypervolume import reference_point
from service.domain.ranking import is_feasible, maximized_objectives, pareto_mask
from service.domain.spec import Goal, StudySpec
from service.domain.trial import TrialView
from service.engines.base import Suggestions, SuggestRequest
from service.engines.multiobjective.engine import Method, MultiObjectiveOptions, method_of
from service.engines.shared.modeling import DTYPE, EngineFailure, Features
from service.engines.shared.optimizing import (
    OutcomeBound,
    constraint_targets,
    fit_arguments,
    fit_outcomes,
    fit_success_model,
    joint_model,
    model_session,
    optimize,
    outcome_constraints,
    pending_inputs,
    separated,
    taken_inputs,
)
from service.engines.shared.outcome_transforms import winsorized, winsorized_constraint

__all__ = ["EngineFailure", "model_reference_point", "suggest"]


def suggest(
    request: SuggestRequest[MultiObjectiveOptions], options: MultiObjectiveOptions, completed: list[TrialView]
) -> Suggestions:
    with model_session(request):
        return _suggestions(request, options, method_of(request.spec, options), completed)


def objective_columns(spec: StudySpec, completed: list[TrialView]) -> np.ndarray:
    """Objective values as the models see them: maximized, costs as log(cost)."""
    columns = []
    for objective in spec.objectives:
        raw = np.array([(t.values or {})[objective.name] for t in completed], dtype=np.float64)
        if objective.cost:
            raw = np.log(raw)
        columns.append(raw if objective.goal is Goal.MAXIMIZE else -raw)
    return np.stack(columns, axis=1)


def model_reference_point(spec: StudySpec, completed: list[TrialView]) -> list[float]:
    """The hypervolume reference point in model space: thresholds, else inferred from the feasible front
    (from every completed trial while none is feasible), mapped like the objective columns."""
    feasible = [t for t in completed if is_feasible(spec, t.values or {})] or completed
    points = maximized_objectives(spec, feasible)
    reference = reference_point(spec, points[pareto_mask(points)])
    mapped = []
    for objective, r in zip(spec.objectives, reference, strict=True):
        # A maximized cost is -cost: its reference -c becomes -log(c), like the column.
        mapped.append(-math.log(-r) if objective.cost else float(r))
    return mapped


def _winsorized_objectives(spec: StudySpec, objectives: torch.Tensor, reference: list[float]) -> torch.Tensor:
    """Maximized objective columns with their bad outliers clipped: below the threshold's side like a `>=`
    constraint at the threshold where the user set one (nothing above the threshold moves), else at Tukey's
    fence."""
    columns = []
    for i, objective in enumerate(spec.objectives):
        column = objectives[:, [i]]
        if objective.threshold is not None:
            columns.append(winsorized_constraint(column, reference[i], upper=False))
        else:
            columns.append(winsorized(column))
    return torch.cat(columns, dim=-1)


def _suggestions(
    request: SuggestRequest[MultiObjectiveOptions],
    options: MultiObjectiveOptions,
    method: Method,
    completed: list[TrialView],
) -> Suggestions:
    spec, device = request.spec, torch.device(request.device)
    features = Features.of(spec, options.discrete_int_limit)
    X = features.encode([t.params for t in completed], device)
    X_pending = pending_inputs(request, features, device)
    objectives = torch.tensor(objective_columns(spec, completed), dtype=DTYPE, device=device)
    if options.winsorize:
        objectives = _winsorized_objectives(spec, objectives, model_reference_point(spec, completed))
    m = len(spec.objectives)
    constrained_metrics, constraints = outcome_constraints(spec, first_output=m)
    outputs = [(o.name, objectives[:, [i]]) for i, o in enumerate(spec.objectives)]
    outputs += constraint_targets(spec, completed, constrained_metrics, device, options.winsorize)

    fit_args = fit_arguments(options, request.seed)
    fit, memory = fit_outcomes(X, outputs, features, request.memory, fit_args)
    models: list[Model] = [fit.model]
    success_fit = fit_success_model(request, features, X, options.failure_model_after, fit_args)
    if success_fit is not None:
        memory["success"] = success_fit.hyperparameters
        models.append(success_fit.model)
        constraints.append(OutcomeBound(len(outputs), 0.5, upper=False))  # P(success) above an even chance

    model = joint_model(models)
    taken = taken_inputs(request, features, X, X_pending)
    objective = IdentityMCMultiOutputObjective(outcomes=list(range(m)))
    common: dict[str, Any] = dict(objective=objective, constraints=constraints or None, prune_baseline=True)
    if method == "nehvi":
        acquisition: AcquisitionFunction = qLogNoisyExpectedHypervolumeImprovement(
            model,
            ref_point=model_reference_point(spec, completed),
            X_baseline=X,
            X_pending=X_pending,
            alpha=get_default_partitioning_alpha(m),
            **common,
        )  # approximate box partitions from 5 objectives
        candidates = optimize(acquisition, features, request.count, options, device, observed=taken)
    else:
        chosen: list[torch.Tensor] = []
        for _ in range(request.count):  # fresh weights per suggestion, earlier ones pending
            busy = [p for p in (X_pending, *chosen) if p is not None]
            weights = sample_simplex(m, dtype=DTYPE, device=device).view(-1)
            acquisition = qLogNParEGO(
                model,
                X_baseline=X,
                scalarization_weights=weights,
                X_pending=torch.cat(busy) if busy else None,
                **common,
            )
            chosen.append(optimize(acquisition, features, 1, options, device, observed=torch.cat([taken, *chosen])))
        candidates = torch.cat(chosen)
    return Suggestions(features.decode(separated(candidates, taken, features, request)), memory=memory, rung=fit.rung)
