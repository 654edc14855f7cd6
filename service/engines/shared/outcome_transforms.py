"""What the models see of the outcomes: outliers clipped, constraint metrics magnified near their bounds.

- Winsorization (Tukey's fence): a GP standardizes its targets, so one disastrous trial (a diverged training
  run, a point far outside a rotated function's basin) squeezes every useful difference into a sliver of the
  scale and the fitted lengthscales follow the outlier. Bad values beyond q1 - 1.5 IQR (objective maximized)
  are clipped to the fence; good values are never touched. Constraint metrics are clipped only on their
  infeasible side, beyond max(q3, bound) + 1.5 (max(q3, bound) - q1) for `<=` (mirrored for `>=`), so no
  infeasible value becomes feasible. Ax's default strategy does the same (its `Winsorize` transform).
- Bilog ("High-Dimensional Bayesian Optimization with Sparse Axis-Aligned Subspaces", Eriksson and Jankowiak,
  2021): a constraint metric y becomes b + sign(y - b) log(1 + |y - b|) around its bound b. Heavy-tailed
  constraint values (the welded beam's reach -6e9) are compressed while the region around the bound, where
  feasibility is decided, keeps its resolution; the bound maps to itself, so constraints keep their form.

- Yeo-Johnson power transform (the output warping of HEBO, Cowen-Rivers et al., "HEBO: Pushing the Limits of
  Sample-Efficient Hyperparameter Optimisation", JAIR 2022): each standardized column is mapped by the monotone
  power transform whose exponent makes it most Gaussian (maximum likelihood), so skewed metrics such as losses
  with a long bad tail are modelled on a scale where a GP's Gaussian assumptions hold. Monotone increasing, so
  the best point stays the best.

Quartiles use the lower and higher order statistics, as Ax does, so small samples clip the same way.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats


def _quartiles(values: torch.Tensor) -> tuple[float, float]:
    ordered = torch.sort(values.reshape(-1)).values
    n = ordered.numel()
    q1 = ordered[int((n - 1) * 0.25)]
    q3 = ordered[-int((n - 1) * 0.25) - 1]
    return float(q1), float(q3)


def winsorized(Y: torch.Tensor) -> torch.Tensor:
    """Each column of maximized targets (n x m) with its low outliers clipped to Tukey's lower fence."""
    if Y.shape[0] < 4:
        return Y
    columns = []
    for column in Y.T:
        q1, q3 = _quartiles(column)
        columns.append(column.clamp(min=q1 - 1.5 * (q3 - q1)))
    return torch.stack(columns, dim=-1)


def winsorized_constraint(values: torch.Tensor, bound: float, upper: bool) -> torch.Tensor:
    """A constraint metric's column with outliers on its infeasible side clipped (`upper`: metric <= bound)."""
    if values.shape[0] < 4:
        return values
    q1, q3 = _quartiles(values)
    if upper:
        edge = max(q3, bound)
        return values.clamp(max=edge + 1.5 * (edge - q1))
    edge = min(q1, bound)
    return values.clamp(min=edge - 1.5 * (q3 - edge))


def bilog(values: torch.Tensor, bound: float) -> torch.Tensor:
    """b + sign(y - b) log(1 + |y - b|): compressed far from the bound b, which maps to itself."""
    shifted = values - bound
    return bound + torch.sign(shifted) * torch.log1p(shifted.abs())


def power_transformed(Y: torch.Tensor) -> torch.Tensor:
    """Each column of Y (n x m) standardized, then Yeo-Johnson transformed with its maximum-likelihood exponent."""
    if Y.shape[0] < 4:
        return Y
    columns = []
    for column in Y.T:
        values = column.detach().cpu().numpy().astype(np.float64)
        spread = float(values.std())
        if not np.isfinite(spread) or spread <= 0:
            columns.append(column)
            continue
        standardized = (values - values.mean()) / spread
        with np.errstate(all="ignore"):
            transformed, _ = stats.yeojohnson(standardized)
        if not np.isfinite(transformed).all():
            columns.append(column)
            continue
        columns.append(torch.as_tensor(transformed, dtype=Y.dtype, device=Y.device))
    return torch.stack(columns, dim=-1)
