"""One encoding of the search space into the unit cube and back, shared by every engine.

Continuous and integer parameters map linearly onto [0, 1] using their declared bounds (after a log
for log-scaled ones); integers own equal-width cells of the cube, so uniform points stay uniform over
the integers. A categorical parameter with k choices owns k equal cells of its axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from service.domain.spec import Choice, Param, ParamType, StudySpec

# Integers with at most this many values are searched value by value, as Ax searches every integer: any range a
# study is likely to declare (a layer count, a tree depth, an estimator count up to 1000). Wider ones are optimized
# as continuous and rounded.
DISCRETE_INT_LIMIT = 1000

MIN_SEPARATION = 1e-3  # normalized L-infinity distance below which two points count as the same suggestion
LISTED_TOLERANCE = 1e-9  # two encodings of one integer or categorical value differ by rounding at most


def _span(param: Param) -> tuple[float, float]:
    """The interval of the encoded axis before scaling, widened by half a step for integers."""
    assert param.low is not None and param.high is not None
    low, high = param.low, param.high
    if param.type is ParamType.INT:
        low, high = low - 0.5, high + 0.5
    if param.log:
        return math.log(low), math.log(high)
    return low, high


def decode_value(param: Param, u: float) -> Choice:
    u = min(max(u, 0.0), 1.0)
    if param.type is ParamType.CATEGORICAL:
        assert param.choices is not None
        return param.choices[min(int(u * len(param.choices)), len(param.choices) - 1)]
    low, high = _span(param)
    x = low + u * (high - low)
    if param.log:
        x = math.exp(x)
    assert param.low is not None and param.high is not None
    if param.type is ParamType.INT:
        return int(min(max(round(x), param.low), param.high))
    return float(min(max(x, param.low), param.high))


def encode_value(param: Param, value: Any) -> float:
    if param.type is ParamType.CATEGORICAL:
        assert param.choices is not None
        index = next(i for i, c in enumerate(param.choices) if type(c) is type(value) and c == value)
        return (index + 0.5) / len(param.choices)
    low, high = _span(param)
    x = math.log(value) if param.log else float(value)
    return min(max((x - low) / (high - low), 0.0), 1.0)


def from_unit(spec: StudySpec, points: np.ndarray) -> list[dict[str, Choice]]:
    """Decode an (n, d) array of unit-cube points into parameter dicts, in `spec.params` order."""
    return [{p.name: decode_value(p, float(u)) for p, u in zip(spec.params, row, strict=True)} for row in points]


def to_unit(spec: StudySpec, params: Sequence[dict[str, Any]]) -> np.ndarray:
    """Encode parameter dicts as an (n, d) array in the unit cube, in `spec.params` order."""
    encoded = [[encode_value(p, t[p.name]) for p in spec.params] for t in params]
    return np.asarray(encoded, dtype=float).reshape(len(params), len(spec.params))


def listed_columns(spec: StudySpec) -> list[int]:
    """The columns of integer and categorical parameters: two points with different values there are different
    suggestions, however close the values lie on the unit axis (neighbours of a wide integer lie closer than
    MIN_SEPARATION)."""
    return [i for i, p in enumerate(spec.params) if p.type in (ParamType.INT, ParamType.CATEGORICAL)]
