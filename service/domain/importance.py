"""Which parameters matter: each parameter's first-order share of the objective's variance.

The main effect of parameter d is S_d = Var(E[y | x_d]) / Var(y), the first-order Sobol index, which is
what fANOVA reports for single parameters. fANOVA estimates E[y | x_d] with a random forest; here it is
the mean of y within bins of x_d (equal-count bins of a numeric parameter, one bin per choice of a
categorical, one more for trials without the parameter). The binned estimate is the correlation ratio
eta^2 = SS_between / SS_total, which grows with the number of bins even when x_d does nothing, so its
bias is removed as in omega^2 (Hays, 1963):

    S_d ~ (SS_between - (k - 1) MS_within) / (SS_total + MS_within),   MS_within = SS_within / (n - k),

clipped at 0. y is the objective's rank (ties averaged), so one diverged run cannot own the variance.

Why this and not fANOVA or PED-ANOVA: it needs no random forest (no scikit-learn or pyrfr at runtime),
costs a few vectorized passes per parameter (milliseconds at 50,000 trials), and reads plainly: "this
parameter alone explains 40% of the spread in the ranks". Limits, said on the page: interactions are
not attributed (the shares need not sum to 1), and when an engine concentrates its samples the
parameters are not independent, so a parameter correlated with an important one borrows its share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_TRIALS = 8
MAX_BINS = 20
TRIALS_PER_BIN = 10


@dataclass(frozen=True)
class Importance:
    name: str
    share: float  # bias-corrected first-order share of the rank variance, in [0, 1]
    bins: int  # bins the estimate used


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of `values`, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.concatenate([[0], np.flatnonzero(ordered[1:] != ordered[:-1]) + 1])
    ends = np.concatenate([starts[1:], [ordered.size]])
    mean_rank = (starts + ends + 1) / 2.0  # ranks starts+1 .. ends, averaged
    out = np.empty(values.size)
    out[order] = np.repeat(mean_rank, ends - starts)
    return out


def bin_index(values: np.ndarray, categorical: bool, bins: int) -> np.ndarray:
    """Each value's bin: its choice index when categorical, else an equal-count (quantile) bin; NaN (absent)
    gets a bin of its own after the others. Few distinct values get one bin each."""
    present = np.isfinite(values)
    out = np.zeros(values.size, dtype=np.int64)
    if not present.any():
        return out
    observed = values[present]
    distinct = np.unique(observed)
    if categorical or distinct.size <= bins:
        out[present] = np.searchsorted(distinct, observed)
        width = distinct.size
    else:
        edges = np.unique(np.quantile(observed, np.linspace(0, 1, bins + 1)[1:-1]))
        out[present] = np.searchsorted(edges, observed, side="right")
        width = edges.size + 1
    out[~present] = width
    return out


def first_order_share(groups: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """Omega^2 of `y` grouped by `groups` (small non-negative integers), and the number of groups used."""
    n = y.size
    counts = np.bincount(groups)
    used = counts > 0
    k = int(used.sum())
    if k < 2 or n - k < 1:
        return 0.0, k
    sums = np.bincount(groups, weights=y)
    means = sums[used] / counts[used]
    grand = float(y.mean())
    total = float(((y - grand) ** 2).sum())
    if total <= 0:
        return 0.0, k
    between = float((counts[used] * (means - grand) ** 2).sum())
    within = (total - between) / (n - k)
    return max(0.0, (between - (k - 1) * within) / (total + within)), k


def importances(columns: dict[str, tuple[np.ndarray, bool]], objective: np.ndarray) -> list[Importance]:
    """Every parameter's share, largest first. `columns` maps each parameter to (values, categorical), the
    values aligned with `objective` (categoricals as choice indices, NaN where a trial lacks the
    parameter). Rows with a non-finite objective are left out; fewer than MIN_TRIALS rows give []."""
    finite = np.isfinite(objective)
    y = objective[finite]
    if y.size < MIN_TRIALS:
        return []
    y = ranks(y)
    bins = int(min(MAX_BINS, max(2, math.floor(y.size / TRIALS_PER_BIN))))
    found = []
    for name, (values, categorical) in columns.items():
        share, used = first_order_share(bin_index(values[finite], categorical, bins), y)
        found.append(Importance(name, share, used))
    return sorted(found, key=lambda f: (-f.share, f.name))
