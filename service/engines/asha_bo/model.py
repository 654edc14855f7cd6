"""The torch half of engine `asha_bo`: fit the GP on rung values, score a Sobol pool, believe pending runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from botorch.acquisition.analytic import LogExpectedImprovement
from botorch.models.gpytorch import GPyTorchModel
from botorch.models.model import Model
from torch import Tensor

from service.domain.spec import Choice, StudySpec
from service.engines.asha import rungs
from service.engines.asha_bo.engine import AshaBOOptions, Observation
from service.engines.base import Suggestions, SuggestRequest
from service.engines.shared.modeling import DTYPE, Features, build_gp, fit_with_ladder, load_hyperparameters
from service.engines.shared.optimizing import kriging_believer, mean_and_std, model_session, separated, space_pool
from service.engines.shared.outcome_transforms import winsorized
from service.engines.shared.sampling import covariance_root

MEMORY_KEY = "asha_bo"
REFIT_GROWTH = 1.1  # refit once the observations grew by a tenth: a few more points barely move a MAP fit


def step_column(spec: StudySpec, options: AshaBOOptions, steps: Sequence[float], device: torch.device) -> Tensor:
    """Steps as the model's extra input: log(step / r_0) / log(max / r_0), so the first rung is 0 and the max 1."""
    assert spec.fidelity is not None
    first, top = rungs(spec, options)[0], spec.fidelity.max
    span = math.log(top / first) if top > first > 0 else 1.0
    scaled = [math.log(max(s, 1e-12) / first) / span if top > first > 0 else 1.0 for s in steps]
    return torch.tensor(scaled, dtype=DTYPE, device=device)[:, None]


def suggest(
    request: SuggestRequest[AshaBOOptions],
    options: AshaBOOptions,
    observed: list[Observation],
    pending: list[dict[str, Choice]],
    rung: float,
) -> Suggestions:
    """`request.count` new configurations; `rung` is the step `top_rung` modelled (NaN for `all_rungs`)."""
    with model_session(request):
        return _suggestions(request, options, observed, pending, rung)


def _inputs(
    spec: StudySpec,
    options: AshaBOOptions,
    features: Features,
    params: Sequence[dict[str, Any]],
    steps: Sequence[float] | None,
    device: torch.device,
) -> Tensor:
    """Encoded configurations (n x d), with the step column appended under `all_rungs` (n x (d + 1))."""
    X = features.encode(params, device)
    if options.model == "top_rung":
        return X
    assert spec.fidelity is not None
    at = steps if steps is not None else [spec.fidelity.max] * len(params)
    return torch.cat([X, step_column(spec, options, at, device)], dim=-1)


def _suggestions(
    request: SuggestRequest[AshaBOOptions],
    options: AshaBOOptions,
    observed: list[Observation],
    pending: list[dict[str, Choice]],
    rung: float,
) -> Suggestions:
    spec, device = request.spec, torch.device(request.device)
    features = Features.of(spec)
    X = _inputs(spec, options, features, [o.params for o in observed], [o.step for o in observed], device)
    Y = -torch.tensor([[o.loss] for o in observed], dtype=DTYPE, device=device)  # the GP maximizes
    if options.winsorize:
        Y = winsorized(Y)
    fitted = _fitted(request, options, features, X, Y, "all_rungs" if options.model == "all_rungs" else f"top:{rung}")
    model = fitted.model

    pool_seed = (request.seed * 7919 + request.sequence_start) % 2**32
    pool_params = space_pool(features, options.candidate_pool, pool_seed, device)
    pool = (
        pool_params
        if options.model == "top_rung"
        else torch.cat([pool_params, torch.ones(len(pool_params), 1, dtype=DTYPE, device=device)], dim=-1)
    )  # at the max step
    unique = list({tuple(sorted((k, repr(v)) for k, v in o.params.items())): o.params for o in observed}.values())
    at_max = _inputs(spec, options, features, unique, None, device)  # observed configurations, predicted at the max
    busy = _inputs(spec, options, features, pending, None, device) if pending else pool[:0]
    chosen: list[int] = []
    for _ in range(request.count):
        believed = kriging_believer(model, busy) if busy.shape[0] else model
        scores = _scores(options, believed, pool, at_max)
        if chosen:
            scores[chosen] = -math.inf
        k = int(torch.argmax(scores))
        chosen.append(k)
        busy = torch.cat([busy, pool[k : k + 1]])
    picked = pool_params[chosen]
    taken = features.encode([*unique, *pending], device) if unique or pending else picked[:0]
    infos = [{"model": options.model, "acquisition": options.acquisition}] * len(chosen)
    return Suggestions(
        features.decode(separated(picked, taken, features, request)), info=infos, memory=fitted.memory, rung=fitted.rung
    )


def _scores(options: AshaBOOptions, model: Model, pool: Tensor, observed: Tensor) -> Tensor:
    """Higher is better, one per pool row: a joint posterior draw, or log EI over the best predicted value."""
    if options.acquisition == "thompson":
        with torch.no_grad():
            posterior: Any = model.posterior(pool)
            mean: Tensor = posterior.mean.squeeze(-1)
            covariance: Tensor = posterior.distribution.covariance_matrix
        draw: Tensor = mean + covariance_root(covariance) @ torch.randn(len(mean), dtype=DTYPE, device=mean.device)
        return draw
    predicted, _ = mean_and_std(model, observed)
    acquisition = LogExpectedImprovement(model, best_f=float(predicted.max()))
    with torch.no_grad():
        scores: Tensor = torch.cat([acquisition(chunk[:, None, :]) for chunk in torch.split(pool, 1024)])
    return scores


@dataclass(frozen=True)
class _Fitted:
    model: GPyTorchModel
    memory: dict[str, Any] | None  # None: the saved hyperparameters served as they were
    rung: str


def _fitted(
    request: SuggestRequest[AshaBOOptions], options: AshaBOOptions, features: Features, X: Tensor, Y: Tensor, key: str
) -> _Fitted:
    """The GP on (X, Y): the last fit's hyperparameters while the data grew by less than a tenth since that fit
    (and it modelled the same thing), else a fit down the failure ladder warm-started from them."""
    saved = request.memory.get(MEMORY_KEY)
    same = isinstance(saved, dict) and saved.get("key") == key
    last = saved.get("hyperparameters") if same and isinstance(saved, dict) else None
    if same and isinstance(saved, dict) and X.shape[0] < REFIT_GROWTH * int(saved.get("fitted_at", 0)):
        model = build_gp(X, Y, features.categories, one_hot=True)
        if load_hyperparameters(model, last):
            model.eval()
            return _Fitted(model, None, "reused")
    fit = fit_with_ladder(
        X,
        Y,
        features.categories,
        one_hot=True,
        warm_start=last,
        timeout_seconds=options.fit_timeout_seconds,
        max_fit_points=options.max_fit_points,
        seed=request.seed,
    )
    memory = {
        **request.memory,
        MEMORY_KEY: {"key": key, "hyperparameters": fit.hyperparameters, "fitted_at": X.shape[0]},
    }
    return _Fitted(fit.model, memory, fit.rung)
