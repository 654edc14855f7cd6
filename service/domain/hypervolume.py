"""Dominated hypervolume of a study's Pareto front, and how it grew trial by trial.

Everything here is in the maximized orientation (minimized objectives negated), numpy only: the API
computes it without the model stack. The exact algorithm is WFG ("A Fast Way of Calculating Exact
Hypervolumes", While, Bradstreet, Barone, 2012): HV(S) is the sum over points of each point's box
minus the hypervolume of the later points clipped to that box, with a sweep for two objectives.
It is exact, but its cost grows exponentially with the objectives and steeply with the front's size (5
objectives: 200 trials took 31 s, 1,500 trials 363 s; 8 objectives and 60 trials 27 s). So a history is
computed exactly within a budget of EXACT_WORK points visited by the recursion (about a second; 3 objectives
stay exact for thousands of trials, 5 for about a hundred), and beyond that, or beyond EXACT_MAX_OBJECTIVES,
estimated by quasi-Monte Carlo and flagged approximate. A caller that goes away cancels the work.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from service.domain.ranking import is_feasible, maximized_objectives, pareto_mask
from service.domain.spec import Goal, StudySpec
from service.domain.trial import TrialState, TrialView

REFERENCE_SCALE = 0.1  # an inferred reference lies this fraction of the front's range below its nadir
MIN_RANGE = 1e-9
EXACT_MAX_OBJECTIVES = 5
EXACT_WORK = 20_000  # points visited by the exact recursion over a whole history: about a second
MONTE_CARLO_SAMPLES = 2**15


class Cancelled(Exception):
    """Whoever asked for the hypervolume went away; the work stopped."""


class _OverBudget(Exception):
    pass


class Work:
    """What a computation may still spend: points visited by the exact recursion, and whether its caller is gone."""

    def __init__(self, budget: float = float("inf"), cancelled: Callable[[], bool] = lambda: False) -> None:
        self.budget = budget
        self.cancelled = cancelled

    def spend(self, points: int) -> None:
        self.budget -= points
        if self.budget < 0:
            raise _OverBudget
        self.check()

    def check(self) -> None:
        if self.cancelled():
            raise Cancelled


def hypervolume(points: np.ndarray, reference: np.ndarray, work: Work | None = None) -> float:
    """Volume dominated by `points` (n x m, maximized) and bounded below by `reference` (m,)."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, reference.shape[0])
    shifted = points[np.all(points > reference, axis=1)] - reference
    if shifted.shape[0] == 0:
        return 0.0
    return _wfg(shifted[pareto_mask(shifted)], work or Work())


def _wfg(points: np.ndarray, work: Work) -> float:
    """Hypervolume of mutually non-dominated points dominating the origin (all coordinates > 0)."""
    n, m = points.shape
    work.spend(n)
    if n == 0:
        return 0.0
    if m == 1:
        return float(points.max())
    if m == 2:
        return _sweep_2d(points)
    points = points[np.argsort(-points[:, 0], kind="stable")]
    total = 0.0
    for i in range(n):
        total += float(np.prod(points[i]))
        clipped = np.minimum(points[i + 1 :], points[i])
        clipped = clipped[np.all(clipped > 0, axis=1)]
        if clipped.shape[0]:
            total -= _wfg(clipped[pareto_mask(clipped)], work)
    return total


def _sweep_2d(points: np.ndarray) -> float:
    ordered = points[np.argsort(-points[:, 0], kind="stable")]
    total, height = 0.0, 0.0
    for x, y in ordered:
        if y > height:
            total += float(x) * (float(y) - height)
            height = float(y)
    return total


def reference_point(spec: StudySpec, front: np.ndarray) -> np.ndarray:
    """The reference point, maximized: each objective's threshold where the spec gives one, else
    the front's nadir minus REFERENCE_SCALE of its range (docs/decisions.md, D12; BoTorch's rule)."""
    m = len(spec.objectives)
    front = np.asarray(front, dtype=np.float64).reshape(-1, m)
    if front.shape[0]:
        nadir, ideal = front.min(axis=0), front.max(axis=0)
        spread = ideal - nadir
        # An objective on which the front does not vary (one point, or all equal) has no range to take a
        # tenth of: use its magnitude (at least 1), else the reference would sit on the front and every
        # box would have almost no width in that objective.
        flat = spread <= MIN_RANGE * np.maximum(1.0, np.abs(nadir))
        spread = np.where(flat, np.maximum(np.abs(nadir), 1.0), spread)
        inferred = nadir - REFERENCE_SCALE * spread
    else:
        inferred = np.full(m, np.nan)
    thresholds = [o.threshold for o in spec.objectives]
    return np.array(
        [
            inferred[i] if t is None else (t if o.goal is Goal.MAXIMIZE else -t)
            for i, (o, t) in enumerate(zip(spec.objectives, thresholds, strict=True))
        ]
    )


def oriented_reference(spec: StudySpec, reference: np.ndarray) -> dict[str, float | None]:
    """The maximized reference point back in each objective's own units (None where undefined)."""
    return {
        o.name: (None if np.isnan(r) else float(r if o.goal is Goal.MAXIMIZE else -r))
        for o, r in zip(spec.objectives, reference, strict=True)
    }


@dataclass(frozen=True)
class HypervolumeHistory:
    reference: np.ndarray  # maximized orientation; NaN where no threshold and no data yet
    numbers: list[int]  # completed trials, in the order given
    values: list[float]  # dominated hypervolume after each of them
    approximate: bool = False  # a quasi-Monte Carlo estimate (the exact computation was too costly)

    @property
    def final(self) -> float:
        return self.values[-1] if self.values else 0.0


def hypervolume_history(
    spec: StudySpec, trials: Sequence[TrialView], cancelled: Callable[[], bool] = lambda: False
) -> HypervolumeHistory:
    """Hypervolume after each completed trial, in the order given (the caller orders by finish time).

    Infeasible results add nothing. Without thresholds the reference comes from the whole current
    front, so the entire history is measured against one reference point. Exact within EXACT_WORK,
    else estimated; `cancelled` is polled as the work goes on (Cancelled when it says so).
    """
    completed = [
        t
        for t in trials
        if t.state is TrialState.COMPLETED and t.values and all(o.name in t.values for o in spec.objectives)
    ]
    points = maximized_objectives(spec, completed)
    feasible = np.array([is_feasible(spec, t.values or {}) for t in completed], dtype=bool)
    reference = study_reference(spec, points, feasible)
    numbers = [t.number for t in completed]
    if len(spec.objectives) <= EXACT_MAX_OBJECTIVES:
        try:
            values = hypervolume_trace(points, feasible, reference, work=Work(EXACT_WORK, cancelled))
            return HypervolumeHistory(reference, numbers, values)
        except _OverBudget:
            pass
    values = estimated_trace(points, feasible, reference, work=Work(cancelled=cancelled))
    return HypervolumeHistory(reference, numbers, values, approximate=True)


def study_reference(spec: StudySpec, points: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    """The study's reference point (maximized): thresholds, else inferred from the feasible front."""
    if all(o.threshold is not None for o in spec.objectives):
        return reference_point(spec, points[:0])  # no front needed (finding it costs front x points)
    candidates = points[feasible] if feasible.any() else points[:0]
    return reference_point(spec, candidates[pareto_mask(candidates)] if candidates.shape[0] else candidates)


def hypervolume_trace(
    points: np.ndarray, counted: np.ndarray, reference: np.ndarray, block: int = 256, work: Work | None = None
) -> list[float]:
    """The hypervolume after each row of `points` (maximized, in order), counting the rows marked `counted`.

    Rows are screened a block at a time against the front so far; only rows that may enlarge it are
    handled one by one, so a long history with a small front costs a few vectorized comparisons. A new
    point adds its own box minus the part of it the front already covers (the front clipped to the box),
    which is far cheaper than the whole front's hypervolume anew when there are three or more objectives.
    """
    values: list[float] = []
    if np.isnan(reference).any():
        return [0.0] * points.shape[0]
    work = work or Work()
    front = np.empty((0, points.shape[1]))
    current = 0.0
    for start in range(0, points.shape[0], block):
        work.check()
        chunk = points[start : start + block]
        hopeful = counted[start : start + block] & np.all(chunk > reference, axis=1)
        if front.shape[0]:
            hopeful &= ~np.any(np.all(front[None, :, :] >= chunk[:, None, :], axis=2), axis=1)
        for point, maybe in zip(chunk, hopeful, strict=True):
            if maybe and not _dominated(point, front):
                covered = hypervolume(np.minimum(front, point), reference, work) if front.shape[0] else 0.0
                current += float(np.prod(point - reference)) - covered
                front = np.vstack([front[~_dominated_by(front, point)], point])
            values.append(current)
    return values


def estimated_trace(
    points: np.ndarray,
    counted: np.ndarray,
    reference: np.ndarray,
    samples: int = MONTE_CARLO_SAMPLES,
    work: Work | None = None,
) -> list[float]:
    """`hypervolume_trace` estimated: one scrambled Sobol sample of the box between the reference and the
    best counted values, each sample point credited to the first row that dominates it. The estimate is
    monotone, reproducible (fixed seed), and costs at most rows x samples x objectives comparisons (each
    row is compared with the sample points no earlier row covered)."""
    from scipy.stats import qmc

    if np.isnan(reference).any():
        return [0.0] * points.shape[0]
    usable = counted & np.all(points > reference, axis=1)
    if not usable.any():
        return [0.0] * points.shape[0]
    work = work or Work()
    top = points[usable].max(axis=0)
    unit = qmc.Sobol(d=points.shape[1], scramble=True, seed=0).random(samples)
    box = np.ascontiguousarray((reference + unit * (top - reference)).T)  # objectives x samples: fast row sweeps
    volume = float(np.prod(top - reference))
    values, count, dropped = [], 0, 0
    uncovered = np.ones(samples, dtype=bool)
    for point, use in zip(points, usable, strict=True):
        if use:
            work.check()
            newly = uncovered.copy()
            for coordinate, bound in zip(box, point, strict=True):
                newly &= coordinate <= bound
            covered = int(newly.sum())
            count += covered
            uncovered &= ~newly
            dropped += covered
            if dropped * 4 > box.shape[1]:  # compact once a quarter of the samples left are covered
                box, uncovered, dropped = box[:, uncovered], np.ones(int(uncovered.sum()), dtype=bool), 0
        values.append(volume * count / samples)
    return values


def _dominated(point: np.ndarray, front: np.ndarray) -> bool:
    """True when a row of `front` is at least as good as `point` everywhere (equal points add nothing)."""
    return bool(front.shape[0] and np.any(np.all(front >= point, axis=1)))


def _dominated_by(front: np.ndarray, point: np.ndarray) -> np.ndarray:
    return np.all(front <= point, axis=1) if front.shape[0] else np.zeros(0, dtype=bool)
