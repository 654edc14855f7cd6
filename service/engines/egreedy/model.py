"""The torch half of engine `egreedy`: one GP, then per suggestion a branch (exploit, Thompson, Pareto, random)."""

from __future__ import annotations

import random
from typing import Any

import torch
from botorch.acquisition.analytic import PosteriorMean
from botorch.acquisition.thompson_sampling import PathwiseThompsonSampling
from botorch.models.model import Model
from botorch.utils.multi_objective.pareto import is_non_dominated

from service.domain.trial import TrialView
from service.engines.base import Suggestions, SuggestRequest
from service.engines.egreedy.engine import EXPLOIT_TOLERANCE, Branch, EGreedyOptions, choose_branch, default_epsilon
from service.engines.shared.modeling import EngineFailure, Features, fit_with_ladder, min_linf_distance
from service.engines.shared.optimizing import (
    fit_arguments,
    kriging_believer,
    mean_and_std,
    model_session,
    objective_targets,
    optimize,
    pending_inputs,
    separated,
    space_pool,
    taken_inputs,
)

__all__ = ["EngineFailure", "suggest"]

MAX_PARETO_POOL = 20_000
THOMPSON_POOL = 1024  # mixed spaces: Thompson sampling jointly over this many Sobol points


def suggest(
    request: SuggestRequest[EGreedyOptions], options: EGreedyOptions, completed: list[TrialView]
) -> Suggestions:
    with model_session(request):
        return _suggestions(request, options, completed)


def _suggestions(
    request: SuggestRequest[EGreedyOptions], options: EGreedyOptions, completed: list[TrialView]
) -> Suggestions:
    spec, device = request.spec, torch.device(request.device)
    features = Features.of(spec, options.discrete_int_limit)
    X = features.encode([t.params for t in completed], device)
    Y = objective_targets(spec, completed, device, options.winsorize, options.power_transform)
    fit = fit_with_ladder(
        X, Y, features.categories, warm_start=request.memory.get("objective"), **fit_arguments(options, request.seed)
    )
    X_pending = pending_inputs(request, features, device)
    selections = int(request.memory.get("selections", 0))
    epsilon = options.epsilon if options.epsilon is not None else default_epsilon(options.variant, features.dim)
    workers = options.workers or (0 if X_pending is None else X_pending.shape[0]) + request.count
    rng = random.Random(request.seed * 1_000_003 + request.sequence_start)
    branches = _Branches(request, options, features, device, rng)

    taken = taken_inputs(request, features, X, X_pending)
    chosen: list[torch.Tensor] = []
    infos: list[dict[str, Any]] = []
    for i in range(request.count):
        busy_parts = [p for p in (X_pending, *chosen) if p is not None]
        busy = torch.cat(busy_parts) if busy_parts else None
        model = kriging_believer(fit.model, busy)
        branch: Branch = choose_branch(options.variant, epsilon, options.eta, selections + i, workers, rng)
        info: dict[str, Any] = {"branch": branch}
        observed = torch.cat([taken, *chosen])
        candidate = branches.run(branch, model, observed)
        if (
            branch == "exploit"
            and busy is not None
            and float(min_linf_distance(features.unit(candidate), features.unit(busy))[0]) < EXPLOIT_TOLERANCE
        ):
            info = {"branch": "thompson", "rerolled": "exploit"}  # D4: a pending trial already exploits there
            candidate = branches.run("thompson", model, observed)
        chosen.append(candidate)
        infos.append(info)

    proposed = torch.cat(chosen)
    kept = separated(proposed, taken, features, request)
    for info, before, after in zip(infos, proposed, kept, strict=True):
        if not torch.equal(before, after):
            info["redrawn"] = "random"  # it sat on an observed or pending point (§0.3 safeguard)
    memory = {"objective": fit.hyperparameters, "selections": selections + request.count}
    return Suggestions(features.decode(kept), info=infos, memory=memory, rung=fit.rung)


class _Branches:
    """The four ways to pick one point, over one study's space."""

    def __init__(
        self,
        request: SuggestRequest[EGreedyOptions],
        options: EGreedyOptions,
        features: Features,
        device: torch.device,
        rng: random.Random,
    ) -> None:
        self.request, self.options, self.features, self.device, self.rng = request, options, features, device, rng

    def run(self, branch: Branch, model: Model, observed: torch.Tensor) -> torch.Tensor:
        """One point by `branch`; `observed` (observed, pending, failed and already chosen points) is what an
        exact search over a small discrete space skips."""
        if branch == "exploit":
            return self._maximize(PosteriorMean(model), observed)
        if branch == "thompson":
            return self._thompson(model, observed)
        if branch == "pareto":
            return self._pareto(model)
        return self._pool(1)

    def _maximize(self, acquisition: Any, observed: torch.Tensor) -> torch.Tensor:
        return optimize(acquisition, self.features, 1, self.options, self.device, observed=observed)

    def _thompson(self, model: Model, observed: torch.Tensor) -> torch.Tensor:
        """The maximizer of one posterior sample path: pathwise (Matheron) sampling in continuous spaces; over
        a Sobol pool, jointly sampled, where the kernel has categorical parts that pathwise sampling lacks."""
        if not self.features.cat_dims:
            return self._maximize(PathwiseThompsonSampling(model), observed)
        pool = self._pool(THOMPSON_POOL)
        with torch.no_grad():
            path = model.posterior(pool).rsample().reshape(-1)
        return pool[int(path.argmax())][None]

    def _pareto(self, model: Model) -> torch.Tensor:
        """A uniform draw from the non-dominated set of (posterior mean, posterior std) over a Sobol pool."""
        pool = self._pool(min(self.options.pareto_points * self.features.dim, MAX_PARETO_POOL))
        means, stds = mean_and_std(model, pool)
        front = torch.nonzero(is_non_dominated(torch.cat([means, stds], dim=-1)))
        index = int(front[self.rng.randrange(front.shape[0])])
        return pool[index][None]

    def _pool(self, size: int) -> torch.Tensor:
        return space_pool(self.features, size, self.rng.randrange(2**32), self.device)
