"""A GP's posterior mean over two parameters, the others held at one trial's values: what the dashboard's
contour page draws where a binned mean of scattered trials would leave most cells blank.

Pure: completed trials in, a grid of predicted values out. It imports torch, so API processes import it lazily,
only when a contour page asks for the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from service.domain.spec import ParamType, StudySpec
from service.engines.encoding import encode_value
from service.engines.shared.modeling import DTYPE, Features, fit_with_ladder

MODEL_POINTS = 1000  # the model conditions on at most this many trials: the best quarter and a random sample
FIT_POINTS = 300  # hyperparameters are fitted on at most this many of them
FIT_SECONDS = 5.0
MIN_POINTS = 5


def _encoded_column(spec: StudySpec, name: str, values: np.ndarray) -> np.ndarray:
    """One parameter's values (categoricals as choice indices) in the model's input encoding."""
    param = next(p for p in spec.params if p.name == name)
    if param.type is ParamType.CATEGORICAL:
        return values.astype(np.float64)
    return np.array([encode_value(param, float(v)) for v in values.tolist()], dtype=np.float64)


def _model_rows(count: int, values: np.ndarray, minimize: bool, seed: int) -> np.ndarray:
    """Indices of the trials the model conditions on: all of them up to MODEL_POINTS, else the best quarter
    (where a user looks) and a uniform sample of the rest."""
    if count <= MODEL_POINTS:
        return np.arange(count)
    order = np.argsort(values if minimize else -values, kind="stable")
    best = order[: MODEL_POINTS // 4]
    rest = np.random.default_rng(seed).choice(order[MODEL_POINTS // 4 :], MODEL_POINTS - best.size, replace=False)
    return np.sort(np.concatenate([best, rest]))


def posterior_mean_grid(
    spec: StudySpec,
    params: Mapping[str, np.ndarray],
    values: np.ndarray,
    *,
    minimize: bool,
    x_name: str,
    y_name: str,
    x_grid: Sequence[float],
    y_grid: Sequence[float],
    anchor: Mapping[str, float],
) -> np.ndarray:
    """The posterior mean of `values` at every (x, y) of the grid (an array of shape (len(x_grid), len(y_grid))),
    every other parameter at `anchor`'s value.

    `params` holds each parameter's values per trial and `anchor` one value per parameter, categoricals as choice
    indices; grid values are in the parameters' own units (choice indices for categoricals). Raises ValueError
    with fewer than MIN_POINTS trials.
    """
    count = values.size
    if count < MIN_POINTS:
        raise ValueError(f"a model needs at least {MIN_POINTS} completed trials")
    rows = _model_rows(count, values, minimize, seed=count)
    names = [p.name for p in spec.params]
    X = np.stack([_encoded_column(spec, name, params[name][rows]) for name in names], axis=1)
    y = values[rows].astype(np.float64)
    scale = float(y.std()) or 1.0
    centre = float(y.mean())
    features = Features.of(spec)
    with torch.no_grad():
        train_X = torch.tensor(X, dtype=DTYPE)
        train_Y = torch.tensor((y - centre) / scale, dtype=DTYPE).unsqueeze(-1)
    fitted = fit_with_ladder(
        train_X,
        train_Y,
        features.categories,
        one_hot=True,
        warm_start=None,
        timeout_seconds=FIT_SECONDS,
        max_fit_points=FIT_POINTS,
        seed=0,
    )
    base = np.array([_encoded_column(spec, name, np.array([anchor[name]]))[0] for name in names])
    gx = _encoded_column(spec, x_name, np.asarray(x_grid, dtype=np.float64))
    gy = _encoded_column(spec, y_name, np.asarray(y_grid, dtype=np.float64))
    grid = np.repeat(base[None, :], gx.size * gy.size, axis=0)
    grid[:, names.index(x_name)] = np.repeat(gx, gy.size)
    grid[:, names.index(y_name)] = np.tile(gy, gx.size)
    with torch.no_grad():
        mean = fitted.model.posterior(torch.tensor(grid, dtype=DTYPE)).mean.squeeze(-1).numpy()
    return (mean * scale + centre).reshape(gx.size, gy.size)
