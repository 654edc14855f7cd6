"""Which completed trials are best: the incumbent for one objective, the Pareto set for several."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.domain.spec import Goal, StudySpec
from service.domain.trial import TrialState, TrialView


def is_feasible(spec: StudySpec, values: dict[str, float]) -> bool:
    for c in spec.constraints:
        value = values.get(c.name)
        if value is None:
            return False
        if (c.op == "<=" and value > c.bound) or (c.op == ">=" and value < c.bound):
            return False
    return True


def maximized_objectives(spec: StudySpec, trials: Sequence[TrialView]) -> np.ndarray:
    """Objective values as an (n, k) array with every column oriented so larger is better."""
    signs = np.array([1.0 if o.goal is Goal.MAXIMIZE else -1.0 for o in spec.objectives])
    raw = np.array([[(t.values or {})[o.name] for o in spec.objectives] for t in trials], dtype=np.float64)
    scores: np.ndarray = raw.reshape(len(trials), len(spec.objectives)) * signs
    return scores


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Mask of rows of `points` (n x k, maximized) that no other row dominates (equal rows are all kept).

    Rows are visited best-sum first: those are the likeliest to dominate, so most rows are struck out
    early and only about the front's size of rows is ever compared against the rest.
    """
    n = points.shape[0]
    keep = np.ones(n, dtype=bool)
    for i in np.argsort(-points.sum(axis=1), kind="stable"):
        if not keep[i]:
            continue
        alive = np.flatnonzero(keep)
        others = points[alive]
        dominated = np.all(others <= points[i], axis=1) & np.any(others < points[i], axis=1)
        keep[alive[dominated]] = False
    return keep


def best_trials(spec: StudySpec, trials: Sequence[TrialView]) -> list[TrialView]:
    """Best feasible completed trial for one objective; the Pareto-optimal feasible set for several.

    Ties keep the earliest trial first, so the answer is stable as new trials arrive.
    """
    candidates = sorted(
        (t for t in trials if t.state is TrialState.COMPLETED and t.values and is_feasible(spec, t.values)),
        key=lambda t: t.number,
    )
    if not candidates:
        return []
    scores = maximized_objectives(spec, candidates)
    if len(spec.objectives) == 1:
        return [candidates[int(np.argmax(scores[:, 0]))]]
    mask = pareto_mask(scores)
    return [t for t, keep in zip(candidates, mask, strict=True) if keep]
