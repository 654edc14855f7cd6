"""The torch half of engine `constrained`: one GP per outcome, then CONFIG's optimistic auxiliary problem or
constrained qLogNEI."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import torch
from botorch.acquisition.acquisition import AcquisitionFunction
from botorch.acquisition.logei import qLogNoisyExpectedImprovement, qLogProbabilityOfFeasibility
from botorch.acquisition.objective import GenericMCObjective
from botorch.models.model import Model

from service.domain.ranking import is_feasible
from service.domain.spec import StudySpec
from service.domain.trial import TrialState, TrialView
from service.engines.base import Suggestions, SuggestRequest
from service.engines.constrained.engine import ConstrainedOptions
from service.engines.encoding import MIN_SEPARATION
from service.engines.shared.modeling import DTYPE, EngineFailure, Features, min_linf_distance
from service.engines.shared.optimizing import (
    FAILURE_STATES,
    OutcomeBound,
    constraint_targets,
    first_output,
    fit_arguments,
    fit_outcomes,
    fit_success_model,
    joint_model,
    kriging_believer,
    mean_and_std,
    model_session,
    objective_targets,
    optimize,
    outcome_constraints,
    pending_inputs,
    separated,
    space_pool,
    taken_inputs,
)

__all__ = ["EngineFailure", "OptimisticProblem", "suggest"]

MAX_POOL = 20_000
LOCAL_STEPS = (0.05, 0.01, 0.002)  # std of the local search around the pool's best point, per round (unit cube)
LOCAL_SAMPLES = 256


def suggest(
    request: SuggestRequest[ConstrainedOptions], options: ConstrainedOptions, completed: list[TrialView]
) -> Suggestions:
    with model_session(request):
        return _suggestions(request, options, completed)


@dataclass
class OptimisticProblem:
    """CONFIG's auxiliary problem over one model whose outputs are the objective, one per constrained metric and
    maybe P(success): maximize UCB of the objective where every constraint's optimistic violation is <= 0."""

    model: Model
    bounds: list[OutcomeBound]
    sqrt_beta: float

    def score(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Optimistic objective (n,) and the largest optimistic violation (n,) at the rows of X."""
        means, stds = mean_and_std(self.model, X)
        ucb = means[:, 0] + self.sqrt_beta * stds[:, 0]
        violations = [torch.full_like(ucb, -math.inf)]
        for bound in self.bounds:
            mean, std = means[:, bound.output], stds[:, bound.output]
            # The most favourable value within the band: low for an upper bound, high for a lower one.
            optimistic = mean - self.sqrt_beta * std if bound.upper else mean + self.sqrt_beta * std
            violations.append(optimistic - bound.bound if bound.upper else bound.bound - optimistic)
        return ucb, torch.stack(violations).amax(dim=0)

    def best(self, X: torch.Tensor, allowed: torch.Tensor | None = None) -> tuple[int, bool, float]:
        """Index of the best row of X (among the `allowed` ones, when some are): the highest optimistic objective
        among optimistically feasible rows, else the least optimistic violation; whether it is feasible; its
        violation."""
        ucb, violation = self.score(X)
        if allowed is not None and bool(allowed.any()):
            ucb = torch.where(allowed, ucb, torch.full_like(ucb, -math.inf))
            violation = torch.where(allowed, violation, torch.full_like(violation, math.inf))
        feasible = violation <= 0
        if bool(feasible.any()):
            index = int(torch.where(feasible, ucb, torch.full_like(ucb, -math.inf)).argmax())
        else:
            index = int(violation.argmin())
        return index, bool(feasible[index]), float(violation[index])


def _suggestions(
    request: SuggestRequest[ConstrainedOptions], options: ConstrainedOptions, completed: list[TrialView]
) -> Suggestions:
    spec, device = request.spec, torch.device(request.device)
    features = Features.of(spec, options.discrete_int_limit)
    X = features.encode([t.params for t in completed], device)
    X_pending = pending_inputs(request, features, device)
    metrics, bounds = outcome_constraints(spec, first_output=1)
    outputs = [
        (
            spec.objectives[0].name,
            objective_targets(spec, completed, device, options.winsorize, options.power_transform),
        )
    ]
    outputs += constraint_targets(spec, completed, metrics, device, options.winsorize)
    fit_args = fit_arguments(options, request.seed)
    fit, memory = fit_outcomes(X, outputs, features, request.memory, fit_args)
    models: list[Model] = [fit.model]
    success_fit = fit_success_model(request, features, X, options.failure_model_after, fit_args)
    if success_fit is not None:
        memory["success"] = success_fit.hyperparameters
        models.append(success_fit.model)
        bounds.append(OutcomeBound(len(outputs), 0.5, upper=False))  # P(success) above an even chance
    taken = taken_inputs(request, features, X, X_pending)

    rng = random.Random(request.seed * 1_000_003 + request.sequence_start)
    pool = space_pool(features, min(options.pool_points * features.dim, MAX_POOL), rng.randrange(2**32), device)
    # The infeasibility test (D5), whatever the method: the models as fitted (pending trials say nothing about
    # feasibility), with the wide sqrt(beta) of the test.
    test = OptimisticProblem(joint_model(models), bounds, options.infeasibility_sqrt_beta)
    _, feasible, violation = _solve(test, pool, features, rng)
    status = _infeasibility_status(request, options, completed, feasible, violation)
    memory["infeasible"] = {"rounds": status["rounds"], "data": _data_version(request, completed)}

    if options.method == "cei":
        # Feasibility first (D17): until a completed trial is feasible, the probability of feasibility alone.
        searching = options.feasibility_first and not any(
            t.state is TrialState.COMPLETED and is_feasible(spec, t.values or {}) for t in completed
        )
        acquisition: AcquisitionFunction = (
            qLogProbabilityOfFeasibility(joint_model(models), constraints=list(bounds), X_pending=X_pending)
            if searching
            else qLogNoisyExpectedImprovement(
                joint_model(models),
                X_baseline=X,
                X_pending=X_pending,
                prune_baseline=True,
                objective=GenericMCObjective(first_output),
                constraints=list(bounds),
            )
        )
        candidates = optimize(acquisition, features, request.count, options, device, observed=taken)
        info: dict[str, Any] = {"method": "cei", **({"searching": "feasibility"} if searching else {})}
        return Suggestions(
            features.decode(separated(candidates, taken, features, request)),
            info=[info] * request.count,
            memory=memory,
            rung=fit.rung,
            status=status,
        )

    chosen: list[torch.Tensor] = []
    infos: list[dict[str, Any]] = []
    for _ in range(request.count):
        busy_parts = [p for p in (X_pending, *chosen) if p is not None]
        busy = torch.cat(busy_parts) if busy_parts else None
        problem = OptimisticProblem(joint_model([kriging_believer(m, busy) for m in models]), bounds, options.sqrt_beta)
        point, feasible, violation = _solve(problem, pool, features, rng, torch.cat([taken, *chosen]))
        chosen.append(point)
        infos.append(
            {
                "method": "config",
                "optimistically_feasible": feasible,
                **({} if feasible else {"optimistic_violation": violation}),
            }
        )
    return Suggestions(
        features.decode(separated(torch.cat(chosen), taken, features, request)),
        info=infos,
        memory=memory,
        rung=fit.rung,
        status=status,
    )


def _solve(
    problem: OptimisticProblem,
    pool: torch.Tensor,
    features: Features,
    rng: random.Random,
    taken: torch.Tensor | None = None,
) -> tuple[torch.Tensor, bool, float]:
    """The auxiliary problem's solution over the pool, refined by a shrinking Gaussian search around it in the
    continuous dimensions (categorical and discrete ones stay as the pool point has them).

    Points within MIN_SEPARATION of a `taken` one (observed, pending or already chosen) are left out: the
    least-violation point of an infeasible study, say, would otherwise be the same corner every round.
    """

    def apart(candidates: torch.Tensor) -> torch.Tensor | None:
        if taken is None or taken.shape[0] == 0:
            return None
        return min_linf_distance(features.unit(candidates), features.unit(taken)) >= MIN_SEPARATION

    index, feasible, violation = problem.best(pool, apart(pool))
    point = pool[index][None]
    continuous = [i for i in range(features.dim) if i not in features.cat_dims and i not in features.discrete_dims]
    if not continuous:
        return point, feasible, violation
    generator = torch.Generator().manual_seed(rng.randrange(2**31))
    for step in LOCAL_STEPS:
        around = point.repeat(LOCAL_SAMPLES, 1)
        noise = torch.randn(LOCAL_SAMPLES, len(continuous), generator=generator, dtype=DTYPE).to(point.device)
        around[:, continuous] = (around[:, continuous] + step * noise).clamp(0.0, 1.0)
        candidates = torch.cat([point, around])
        index, feasible, violation = problem.best(candidates, apart(candidates))
        point = candidates[index][None]
    return point, feasible, violation


def _data_version(request: SuggestRequest[ConstrainedOptions], completed: list[TrialView]) -> int:
    return len(completed) + sum(t.state in FAILURE_STATES for t in request.trials)


def _infeasibility_status(
    request: SuggestRequest[ConstrainedOptions],
    options: ConstrainedOptions,
    completed: list[TrialView],
    feasible: bool,
    violation: float,
) -> dict[str, Any]:
    """Count consecutive rounds (model fits on new data) whose auxiliary problem had no feasible point (D5)."""
    last = request.memory.get("infeasible") or {}
    rounds = int(last.get("rounds", 0))
    if feasible:
        rounds = 0
    elif last.get("data") != _data_version(request, completed):
        rounds += 1
    likely = rounds >= options.infeasible_rounds
    evidence = None
    if rounds:
        evidence = {
            "rounds": rounds,
            "rounds_needed": options.infeasible_rounds,
            "least_optimistic_violation": violation,
            **_least_violating(request.spec, completed),
        }
    return {"likely_infeasible": likely, "rounds": rounds, "infeasibility": evidence}


def _least_violating(spec: StudySpec, completed: list[TrialView]) -> dict[str, Any]:
    """The completed trial closest to feasibility (smallest largest violation) and its violations."""
    best: tuple[float, TrialView, dict[str, float]] | None = None
    for trial in completed:
        values = trial.values or {}
        violations = {
            f"{c.name} {c.op} {c.bound:g}": max(
                0.0, values[c.name] - c.bound if c.op == "<=" else c.bound - values[c.name]
            )
            for c in spec.constraints
        }
        worst = max(violations.values())
        if best is None or worst < best[0]:
            best = (worst, trial, violations)
    if best is None:
        return {}
    return {"least_violating_trial": best[1].number, "violations": best[2]}
