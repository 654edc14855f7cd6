"""Shared torch plumbing of the model engines: optimizing an acquisition over the study's space,
keeping proposals apart from known points, the success model for failed trials (D2), per-outcome fits,
pools of points, marginal posteriors and Kriging-believer conditioning."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import gpytorch
import numpy as np
import torch
from botorch.acquisition.acquisition import AcquisitionFunction
from botorch.models.gpytorch import GPyTorchModel
from botorch.models.model import Model
from botorch.models.model_list_gp_regression import ModelListGP
from botorch.optim.optimize import optimize_acqf, optimize_acqf_discrete, optimize_acqf_mixed
from botorch.optim.optimize_mixed import optimize_acqf_mixed_alternating
from botorch.utils.sampling import manual_seed
from pydantic import BaseModel
from scipy.stats import qmc

from service.domain.spec import Goal, StudySpec
from service.domain.trial import TrialState, TrialView
from service.engines.base import SuggestRequest
from service.engines.encoding import MIN_SEPARATION, from_unit
from service.engines.gp.engine import GPOptions
from service.engines.shared.modeling import DTYPE, Features, FitOutcome, fit_with_ladder, min_linf_distance
from service.engines.shared.outcome_transforms import bilog, power_transformed, winsorized

PENDING_STATES = (TrialState.ACTIVE, TrialState.PAUSED)
FAILURE_STATES = (TrialState.FAILED, TrialState.INFEASIBLE)
POSTERIOR_CHUNK = 4096
ACQUISITION_ITERATIONS = 200  # L-BFGS iterations per multistart run of the acquisition optimizer, at most
# Exact Cholesky up to this many points instead of GPyTorch's default switch to iterative solvers above
# 800: measured here as fast or faster at n = 1000 and 2000 (fits use a subset of at most max_fit_points
# anyway), and the acquisition sees an exact posterior.
EXACT_POSTERIOR_LIMIT = 4000
# How the acquisition is searched over categorical and discrete integer dimensions, by their number of value
# combinations (Ax's default strategy uses the same two thresholds): a mixed space with at most
# ENUMERATED_COMBINATIONS combinations runs the continuous optimizer once per combination; a fully discrete space
# with at most EXHAUSTIVE_COMBINATIONS is scored point by point; anything larger alternates a continuous step with a
# local search over neighbouring values (D16).
ENUMERATED_COMBINATIONS = 10
EXHAUSTIVE_COMBINATIONS = 10_000


@contextmanager
def model_session(request: SuggestRequest[BaseModel]) -> Iterator[None]:
    """The settings of one model computation: torch seeded from the study's seed and trial number (so any
    worker computes the same suggestion), exact posteriors."""
    with (
        manual_seed(int((request.seed + request.sequence_start) % 2**31)),
        gpytorch.settings.max_cholesky_size(EXACT_POSTERIOR_LIMIT),
    ):
        yield


def objective_targets(
    spec: StudySpec, completed: list[TrialView], device: torch.device, winsorize: bool = False, power: bool = False
) -> torch.Tensor:
    """The single objective of the completed trials as the model sees it: one column, maximized, its bad outliers
    clipped when `winsorize`, power-transformed towards a Gaussian when `power`."""
    objective = spec.objectives[0]
    sign = 1.0 if objective.goal is Goal.MAXIMIZE else -1.0  # engines maximize internally
    Y = torch.tensor([[sign * (t.values or {})[objective.name]] for t in completed], dtype=DTYPE, device=device)
    Y = winsorized(Y) if winsorize else Y
    return power_transformed(Y) if power else Y


def constraint_targets(
    spec: StudySpec, completed: list[TrialView], metrics: list[str], device: torch.device, transform: bool
) -> list[tuple[str, torch.Tensor]]:
    """One column per constrained metric as its model sees it. With `transform`, a metric under one constraint is
    bilog-transformed around its bound (which maps to itself, so the constraint callables stay as they are).

    Constraint metrics are not winsorized (Ax clips them beyond max(q3, bound) + 1.5 IQR): once the search
    concentrates at the boundary the quartiles close in on the bound, every clearly infeasible value is clipped to
    just past it, and the model can no longer tell a far infeasible region from a near one (CONFIG then found the
    unconstrained optimum of a tiny problem optimistically feasible again). Bilog alone bounds heavy tails."""
    columns = []
    for name in metrics:
        values = torch.tensor([[(t.values or {})[name]] for t in completed], dtype=DTYPE, device=device)
        bounds = [c.bound for c in spec.constraints if c.name == name]
        if transform and len(bounds) == 1:
            values = bilog(values, bounds[0])
        columns.append((name, values))
    return columns


def pending_inputs(request: SuggestRequest[BaseModel], features: Features, device: torch.device) -> torch.Tensor | None:
    """Encoded params of the trials being evaluated right now (X_pending), or None when there are none."""
    pending = [t.params for t in request.trials if t.state in PENDING_STATES]
    return features.encode(pending, device) if pending else None


def taken_inputs(
    request: SuggestRequest[BaseModel], features: Features, X: torch.Tensor, X_pending: torch.Tensor | None
) -> torch.Tensor:
    """The points no new suggestion should repeat: observed (X), pending, and failed or infeasible-told ones.
    Before the failure model exists (D2) a failed point leaves the model unchanged, so an exact search would
    pick it again."""
    failed = [t.params for t in request.trials if t.state in FAILURE_STATES]
    parts = [X, *([X_pending] if X_pending is not None else []), features.encode(failed, X.device)]
    return torch.cat(parts)


def optimize(
    acquisition: AcquisitionFunction,
    features: Features,
    count: int,
    options: GPOptions,
    device: torch.device,
    observed: torch.Tensor | None = None,
) -> torch.Tensor:
    """`count` jointly chosen maximizers: gradient multistart in a box; with categorical or discrete integer
    dimensions, by their number of value combinations, the continuous search once per combination (few), every
    point scored (a small fully discrete space, skipping the `observed` rows), or an alternating search (many).
    Restarts, raw samples and the time bound are the study's options."""
    bounds = features.bounds(device)
    choices = {**features.cat_dims, **features.discrete_dims}
    combinations = math.prod(len(values) for values in choices.values())
    by_combinations = options.discrete_search == "auto"
    multistart: dict[str, Any] = dict(
        q=count,
        num_restarts=options.num_restarts,
        raw_samples=options.raw_samples,
        timeout_sec=options.acq_timeout_seconds,
        options={"maxiter": ACQUISITION_ITERATIONS},
    )
    if not choices:
        candidates, _ = optimize_acqf(acquisition, bounds, sequential=count > 1, **multistart)
    elif (
        by_combinations
        and len(choices) == features.dim
        and combinations <= EXHAUSTIVE_COMBINATIONS
        and (exhaustive := _every_point(acquisition, choices, features.dim, count, observed, device)) is not None
    ):
        candidates = exhaustive
    elif by_combinations and len(choices) < features.dim and combinations <= ENUMERATED_COMBINATIONS:
        combos = [dict(zip(choices, values, strict=True)) for values in itertools.product(*choices.values())]
        candidates, _ = optimize_acqf_mixed(acquisition, bounds, fixed_features_list=combos, **multistart)
    else:
        # optimize_acqf_mixed_alternating takes no time bound in BoTorch 0.18; its iterations are bounded.
        candidates, _ = optimize_acqf_mixed_alternating(
            acquisition,
            bounds,
            discrete_dims=features.discrete_dims or None,
            cat_dims=features.cat_dims or None,
            q=count,
            num_restarts=options.num_restarts,
            raw_samples=options.raw_samples,
            options={"maxiter_alternating": 32},
        )
    return candidates.detach()


def _every_point(
    acquisition: AcquisitionFunction,
    choices: dict[int, list[float]],
    dim: int,
    count: int,
    observed: torch.Tensor | None,
    device: torch.device,
) -> torch.Tensor | None:
    """The best `count` points of a fully discrete space by scoring each one not yet observed (greedily, each
    pick pending for the next); None when fewer than `count` points are left."""

    def key(point: tuple[float, ...] | list[float]) -> tuple[float, ...]:
        return tuple(round(x, 9) for x in point)

    seen = set() if observed is None else {key(row) for row in observed.tolist()}
    unseen = [p for p in itertools.product(*(choices[i] for i in range(dim))) if key(p) not in seen]
    if len(unseen) < count:
        return None
    points = torch.tensor(unseen, dtype=DTYPE, device=device)
    candidates, _ = optimize_acqf_discrete(acquisition, q=count, choices=points, unique=True)
    return candidates


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


def separated(
    candidates: torch.Tensor, taken: torch.Tensor, features: Features, request: SuggestRequest[BaseModel]
) -> torch.Tensor:
    """Last safeguard (§0.3): a proposal on top of an observed, pending or earlier one is re-drawn at random.

    The same point means the same value of every categorical and discrete integer and continuous values within
    MIN_SEPARATION: neighbouring values of a wide integer lie closer than that on the unit axis and are distinct."""
    generator = torch.Generator().manual_seed(int((request.seed + request.sequence_start) % 2**31))
    bounds = features.bounds(candidates.device)
    exact = [*features.cat_dims, *features.discrete_dims]
    kept = []
    others = features.unit(taken)
    for row in candidates:
        candidate = row
        for _ in range(100):
            if min_linf_distance(features.unit(candidate[None]), others, exact)[0] >= MIN_SEPARATION:
                break
            draw = torch.rand(features.dim, generator=generator, dtype=DTYPE).to(candidate.device)
            point = (bounds[0] + draw * (bounds[1] - bounds[0]))[None]
            # Decoded and encoded again: categoricals and integers land on values they can take.
            candidate = features.encode(features.decode(point), candidate.device)[0]
        kept.append(candidate)
        others = torch.cat([others, features.unit(candidate[None])])
    return torch.stack(kept)


def fit_arguments(options: GPOptions, seed: int) -> dict[str, Any]:
    """The options of `fit_with_ladder` a model engine's options set."""
    return dict(
        timeout_seconds=options.fit_timeout_seconds,
        max_fit_points=options.max_fit_points,
        seed=seed,
        one_hot=options.categorical_model == "onehot",
        warp=options.input_warping,
        start_from_last=options.warm_start_fit,
        also_from_initial=options.fit_from_both,
        tolerance=options.fit_tolerance,
    )


def fit_success_model(
    request: SuggestRequest[BaseModel],
    features: Features,
    X_completed: torch.Tensor,
    failure_model_after: int,
    fit_args: dict[str, Any],
) -> FitOutcome | None:
    """A GP on success (1) vs failure (0) over completed and failed trials, once there are enough failures
    (D2); None before that, when failed trials are simply left out of the model."""
    failures: list[TrialView] = [t for t in request.trials if t.state in FAILURE_STATES]
    if len(failures) < failure_model_after:
        return None
    device = X_completed.device
    X_all = torch.cat([X_completed, features.encode([t.params for t in failures], device)])
    success = torch.cat([torch.ones(X_completed.shape[0], 1), torch.zeros(len(failures), 1)]).to(X_completed)
    return fit_with_ladder(X_all, success, features.categories, warm_start=request.memory.get("success"), **fit_args)


def fit_outcomes(
    X: torch.Tensor,
    outputs: list[tuple[str, torch.Tensor]],
    features: Features,
    memory: Mapping[str, Any],
    fit_args: dict[str, Any],
) -> tuple[FitOutcome, dict[str, Any]]:
    """One multi-output GP over the named outcome columns (in their order), warm-started from its last
    hyperparameters; returns the fit and the memory to keep for next time.

    The outputs are a batch of independent GPs, each with its own hyperparameters and standardization, fitted
    together and evaluated in one batched posterior: an acquisition over an objective and k constraints pays
    one batched solve per evaluation instead of k + 1 separate ones (constrained qLogNEI over five outcomes
    took 12 s per suggestion as a list of models)."""
    Y = torch.cat([column for _, column in outputs], dim=-1)
    names = [name for name, _ in outputs]
    warm = memory.get("outcomes")
    warm_start = warm.get("hyperparameters") if isinstance(warm, dict) and warm.get("names") == names else None
    fit = fit_with_ladder(X, Y, features.categories, warm_start=warm_start, **fit_args)
    return fit, {"outcomes": {"names": names, "hyperparameters": fit.hyperparameters}}


def joint_model(models: list[Model]) -> Model:
    """The outcome model and, when there is one, the success model, as one model whose outputs follow each
    other in that order."""
    return models[0] if len(models) == 1 else ModelListGP(*cast(list[GPyTorchModel], models))


def outcome_constraints(spec: StudySpec, first_output: int) -> tuple[list[str], list[OutcomeBound]]:
    """The constrained metrics (one model output each, after the objectives) and BoTorch constraint callables
    (feasible where <= 0)."""
    metrics: list[str] = []
    for c in spec.constraints:
        if c.name not in metrics:
            metrics.append(c.name)
    callables = [
        OutcomeBound(first_output + metrics.index(c.name), c.bound, upper=c.op == "<=") for c in spec.constraints
    ]
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
