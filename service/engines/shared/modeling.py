"""Shared model machinery for the BoTorch engines: tensors from trials, GP fitting with a failure ladder.

Encoding: continuous and wide integer parameters live in [0, 1] by their declared
bounds (log first where asked); integers with at most `DISCRETE_INT_LIMIT` values are discrete
dimensions listing their encoded values; categoricals are integer-valued dimensions (0..k-1) for
`MixedSingleTaskGP` and the mixed optimizer.

Fitting (§0.2-0.3): `SingleTaskGP` (or `MixedSingleTaskGP`) with BoTorch's default priors and
standardized outcomes, fitted by MAP, walking down the ladder (1) fit, warm-started from the last
hyperparameters (D15), (2) reuse the last good hyperparameters, (3) hyperparameters at the prior modes;
the caller falls back to Sobol when all rungs fail (4).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from botorch.exceptions.errors import ModelFittingError
from botorch.fit import fit_gpytorch_mll
from botorch.models.gp_regression import SingleTaskGP
from botorch.models.gp_regression_mixed import MixedSingleTaskGP
from botorch.models.gpytorch import GPyTorchModel
from botorch.models.transforms.input import ChainedInputTransform, InputTransform, Warp
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import GammaPrior, LogNormalPrior
from linear_operator.utils.errors import NotPSDError

from service.domain.spec import Choice, Param, ParamType, StudySpec
from service.engines.encoding import DISCRETE_INT_LIMIT, LISTED_TOLERANCE, decode_value, encode_value
from service.engines.sobol import EngineFailure as EngineFailure  # raised here, caught by model_or_sobol

log = logging.getLogger(__name__)

DTYPE = torch.float64
FIT_TOLERANCE = 1e-6  # the default of GPOptions.fit_tolerance


@dataclass(frozen=True)
class Features:
    """How one study's parameters map to model inputs (d columns, in `spec.params` order)."""

    spec: StudySpec
    cat_dims: dict[int, list[float]]
    discrete_dims: dict[int, list[float]]

    @classmethod
    def of(cls, spec: StudySpec, discrete_int_limit: int = DISCRETE_INT_LIMIT) -> Features:
        cat_dims: dict[int, list[float]] = {}
        discrete_dims: dict[int, list[float]] = {}
        for i, param in enumerate(spec.params):
            if param.type is ParamType.CATEGORICAL:
                assert param.choices is not None
                cat_dims[i] = [float(k) for k in range(len(param.choices))]
            elif param.type is ParamType.INT and _int_count(param) <= discrete_int_limit:
                assert param.low is not None and param.high is not None
                values = range(int(param.low), int(param.high) + 1)
                discrete_dims[i] = [encode_value(param, v) for v in values]
        return cls(spec, cat_dims, discrete_dims)

    @property
    def dim(self) -> int:
        return len(self.spec.params)

    @property
    def categories(self) -> dict[int, int]:
        """Column index -> number of choices, for each categorical parameter."""
        return {i: len(values) for i, values in self.cat_dims.items()}

    def bounds(self, device: torch.device) -> torch.Tensor:
        """2 x d box: [0, 1] per continuous column, [0, k-1] per categorical one, and the encoded
        extremes of a discrete integer (the mixed optimizer wants its listed values to span the box)."""
        lower = [self.discrete_dims[i][0] if i in self.discrete_dims else 0.0 for i in range(self.dim)]
        upper = [
            len(self.cat_dims[i]) - 1.0
            if i in self.cat_dims
            else self.discrete_dims[i][-1]
            if i in self.discrete_dims
            else 1.0
            for i in range(self.dim)
        ]
        return torch.tensor([lower, upper], dtype=DTYPE, device=device)

    def encode(self, params: Sequence[dict[str, Any]], device: torch.device) -> torch.Tensor:
        rows = [[self._encode_one(i, p, t[p.name]) for i, p in enumerate(self.spec.params)] for t in params]
        return torch.tensor(rows, dtype=DTYPE, device=device).reshape(len(params), self.dim)

    def _encode_one(self, index: int, param: Param, value: Any) -> float:
        if index in self.cat_dims:
            assert param.choices is not None
            return float(next(k for k, c in enumerate(param.choices) if type(c) is type(value) and c == value))
        return encode_value(param, value)

    def decode(self, X: torch.Tensor) -> list[dict[str, Choice]]:
        decoded = []
        for row in X.detach().cpu().tolist():
            params: dict[str, Choice] = {}
            for i, (param, x) in enumerate(zip(self.spec.params, row, strict=True)):
                if i in self.cat_dims:
                    assert param.choices is not None
                    params[param.name] = param.choices[min(max(round(x), 0), len(param.choices) - 1)]
                else:
                    params[param.name] = decode_value(param, x)
            decoded.append(params)
        return decoded

    def unit(self, X: torch.Tensor) -> torch.Tensor:
        """Inputs scaled to the unit cube (categoricals by index), for distances between points."""
        scale = self.bounds(X.device)[1].clamp(min=1.0)
        return X / scale


def _int_count(param: Param) -> int:
    assert param.low is not None and param.high is not None
    return int(param.high) - int(param.low) + 1


@dataclass
class FitOutcome:
    model: GPyTorchModel
    rung: str
    seconds: float
    hyperparameters: dict[str, list[Any]]


class OneHotCategories(InputTransform):
    """Integer-coded categorical columns as one-hot blocks (a two-choice one stays a 0/1 column), so that one
    stationary kernel with the dimension-scaled lengthscale prior covers every input, as Ax models categoricals.

    The optimizer keeps the integer codes, and searches them exactly; only the model sees one-hot columns. Chosen
    over `MixedSingleTaskGP` (a sum and a product of a continuous and a categorical kernel, three output scales,
    categorical lengthscales without a prior; option `categorical_model: mixed`) on benchmarks/quality.py: better
    on the scikit-learn tunings, worse on the mixed problems, and faster (README, "Engine defaults the benchmarks
    chose").
    """

    def __init__(self, dim: int, categories: dict[int, int]) -> None:
        super().__init__()
        self.transform_on_train = True
        self.transform_on_eval = True
        self.transform_on_fantasize = True
        self.kept = [i for i in range(dim) if i not in categories]
        self.categories = sorted(categories.items())

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        parts = [X[..., self.kept]]
        for index, count in self.categories:
            codes = X[..., index].round().clamp(0, count - 1)
            if count == 2:
                parts.append(codes.unsqueeze(-1))
            else:
                parts.append(torch.nn.functional.one_hot(codes.long(), count).to(X))
        return torch.cat(parts, dim=-1)


def build_gp(
    X: torch.Tensor, Y: torch.Tensor, categories: dict[int, int], one_hot: bool, warp: bool = False
) -> GPyTorchModel:
    """A `SingleTaskGP` (one output per column of Y, a batch of independent GPs); with categorical columns either
    over one-hot blocks (`one_hot`) or as BoTorch's `MixedSingleTaskGP`. With `warp`, the non-categorical columns
    (all in [0, 1]) first pass through a learned Kumaraswamy CDF per column (input warping, Snoek et al. 2014), so
    a response that changes fast near one end of an axis and slowly elsewhere suits a stationary kernel."""
    warping = _warping(X, Y, categories) if warp else None
    if categories and one_hot:
        one_hot_blocks = OneHotCategories(X.shape[-1], categories)
        transform: InputTransform = (
            one_hot_blocks if warping is None else ChainedInputTransform(warp=warping, one_hot=one_hot_blocks)
        )
        return SingleTaskGP(X, Y, input_transform=transform)
    if categories:
        return MixedSingleTaskGP(X, Y, cat_dims=sorted(categories), input_transform=warping)
    return SingleTaskGP(X, Y, input_transform=warping)


def _warping(X: torch.Tensor, Y: torch.Tensor, categories: dict[int, int]) -> Warp | None:
    indices = [i for i in range(X.shape[-1]) if i not in categories]
    if not indices:
        return None
    batch_shape = torch.Size([Y.shape[-1]]) if Y.shape[-1] > 1 else torch.Size()
    return Warp(
        X.shape[-1],
        indices,
        batch_shape=batch_shape,
        concentration1_prior=LogNormalPrior(0.0, 0.75**0.5),
        concentration0_prior=LogNormalPrior(0.0, 0.75**0.5),
    ).to(X)


def hyperparameters(model: GPyTorchModel) -> dict[str, list[Any]]:
    """The raw hyperparameters (no data, no transforms): what a later fit can start from."""
    return {name: value.detach().cpu().tolist() for name, value in model.named_parameters()}


def load_hyperparameters(model: GPyTorchModel, saved: dict[str, Any] | None) -> bool:
    """Copy saved hyperparameters into `model` where names and shapes match; True if all matched."""
    if not saved:
        return False
    params = dict(model.named_parameters())
    matched = 0
    with torch.no_grad():
        for name, value in saved.items():
            target = params.get(name)
            if target is None:
                continue
            tensor = torch.tensor(value, dtype=target.dtype, device=target.device)
            if tensor.shape == target.shape:
                target.copy_(tensor)
                matched += 1
    return matched == len(params)


def set_prior_modes(model: GPyTorchModel) -> None:
    """Rung 3: hyperparameters at the modes of their priors, no fitting."""
    for _, module, prior, _, setting_closure in model.named_priors():  # type: ignore[operator]
        if isinstance(prior, LogNormalPrior):
            mode = torch.exp(prior.loc - torch.as_tensor(prior.scale) ** 2)
        elif isinstance(prior, GammaPrior) and bool((prior.concentration > 1).all()):
            mode = (prior.concentration - 1) / prior.rate
        else:
            continue
        if setting_closure is not None:
            setting_closure(module, mode.to(DTYPE))


def fit_with_ladder(
    X: torch.Tensor,
    Y: torch.Tensor,
    categories: dict[int, int],
    *,
    one_hot: bool,
    warp: bool = False,
    warm_start: dict[str, Any] | None,
    timeout_seconds: float,
    max_fit_points: int,
    seed: int,
    max_iterations: int = 200,
    start_from_last: bool = True,
    also_from_initial: bool = False,
    tolerance: float = FIT_TOLERANCE,
) -> FitOutcome:
    """Fit a GP to (X, Y), walking down the failure ladder; raises EngineFailure after the last rung.

    L-BFGS stops after `max_iterations`: measured on a small mixed-space GP, the marginal likelihood
    is within 3% of its optimum by 150 iterations while an unbounded fit crawled on for 700 (18 s). It also stops
    once an iteration improves the (per-point) objective by less than `tolerance` relative: SciPy's default
    (2e-9) polished warm-started fits for hundreds of iterations; 1e-6 fitted them 1.2-4x faster on Levy-8 at
    n = 20..35 with marginal likelihoods within 5e-4 of it.
    Above `max_fit_points` observations the hyperparameters are fitted on a subset (the best quarter
    plus a random sample), then the model conditions on every point with those hyperparameters: the
    O(n^3) hyperparameter search is what grows, the final Cholesky is paid once.
    With `start_from_last` off, the fit starts from BoTorch's initial hyperparameters instead of `warm_start`,
    which then only serves the second rung. With `also_from_initial`, a warm-started fit is made a second time
    from the initial hyperparameters, and the fit with the higher marginal likelihood is kept: a warm start can
    hold on to a local optimum that suited fewer points.
    """
    started = time.perf_counter()
    errors: list[str] = []
    fit_X, fit_Y = _fitting_subset(X, Y, max_fit_points, seed)
    optimizer_kwargs: dict[str, Any] = {"options": {"maxiter": max_iterations, "ftol": tolerance}}
    if Y.shape[-1] == 1:
        optimizer_kwargs["timeout_sec"] = timeout_seconds
    else:  # BoTorch fits a batched model's outputs by a batched L-BFGS: no timeout, its own tolerance default
        optimizer_kwargs["options"]["factr"] = None
    try:
        model = build_gp(fit_X, fit_Y, categories, one_hot, warp)
        warm = start_from_last and load_hyperparameters(model, warm_start)
        _fit(model, optimizer_kwargs)
        if warm and also_from_initial:
            fresh = build_gp(fit_X, fit_Y, categories, one_hot, warp)
            _fit(fresh, optimizer_kwargs)
            if marginal_log_likelihood(fresh) > marginal_log_likelihood(model):
                model, warm = fresh, False
        fitted = hyperparameters(model)
        if fit_X.shape[0] != X.shape[0]:
            model = build_gp(X, Y, categories, one_hot, warp)
            load_hyperparameters(model, fitted)
        model.eval()
        return FitOutcome(model, "fit-warm" if warm else "fit", time.perf_counter() - started, fitted)
    except (ModelFittingError, NotPSDError, RuntimeError, ValueError) as error:
        errors.append(f"fit: {error}")
        log.warning("GP fit failed (%s); trying the last good hyperparameters", error)

    if warm_start:
        model = build_gp(X, Y, categories, one_hot, warp)
        if load_hyperparameters(model, warm_start) and _usable(model, X):
            return FitOutcome(model, "last-good", time.perf_counter() - started, warm_start)
        errors.append("last-good: saved hyperparameters do not fit this model or give a singular posterior")
        log.warning("last good hyperparameters unusable; trying the prior modes")

    model = build_gp(X, Y, categories, one_hot, warp)
    set_prior_modes(model)
    if _usable(model, X):
        log.warning("GP uses hyperparameters at the prior modes")
        return FitOutcome(model, "prior-modes", time.perf_counter() - started, hyperparameters(model))
    errors.append("prior-modes: singular posterior")
    raise EngineFailure("; ".join(errors))


def _fit(model: GPyTorchModel, optimizer_kwargs: dict[str, Any]) -> None:
    """Fit `model`'s hyperparameters by MAP, in place."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model), optimizer_kwargs=optimizer_kwargs)


def marginal_log_likelihood(model: GPyTorchModel) -> float:
    """The objective a fit maximizes, at the model's current hyperparameters: the marginal log likelihood of its
    training data per point, plus the log priors, summed over a batched model's outputs. Leaves `model` in train
    mode."""
    model.train()
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    inputs = cast(tuple[torch.Tensor, ...], model.train_inputs)
    with torch.no_grad():
        return float(mll(model(*inputs), model.train_targets).sum())


def _usable(model: GPyTorchModel, X: torch.Tensor) -> bool:
    model.eval()
    try:
        with torch.no_grad():
            variance = model.posterior(X[:1]).variance
        return bool(torch.isfinite(variance).all())
    except (NotPSDError, RuntimeError, ValueError):
        return False


def _fitting_subset(X: torch.Tensor, Y: torch.Tensor, limit: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = X.shape[0]
    if n <= limit:
        return X, Y
    best = torch.argsort(Y[:, 0], descending=True)[: limit // 4]
    rest = torch.ones(n, dtype=torch.bool, device=X.device)
    rest[best] = False
    generator = torch.Generator().manual_seed(seed)
    others = torch.nonzero(rest).squeeze(-1)
    chosen = others[torch.randperm(others.numel(), generator=generator)[: limit - best.numel()].to(X.device)]
    index = torch.cat([best, chosen])
    return X[index], Y[index]


def min_linf_distance(candidates: torch.Tensor, others: torch.Tensor, exact: Sequence[int] = ()) -> torch.Tensor:
    """For each candidate row, the smallest L-infinity distance to any row of `others` (inf if none). Columns in
    `exact` (listed values) count as 0 where equal and 1 where not, however close the two values lie."""
    if others.numel() == 0:
        return torch.full((candidates.shape[0],), math.inf, dtype=candidates.dtype, device=candidates.device)
    gaps = (candidates[:, None, :] - others[None, :, :]).abs()
    if exact:
        columns = list(exact)
        gaps[..., columns] = (gaps[..., columns] > LISTED_TOLERANCE).to(gaps.dtype)
    return gaps.amax(dim=-1).amin(dim=-1)
