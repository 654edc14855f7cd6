"""The quality benchmark's problems, by family, each a seeded instance with a service spec and an evaluator.

Families (every problem minimizes or maximizes as its spec says; `optimum` is the best objective value when
known, the maximal hypervolume for multi-objective problems):

- `synthetic`: Branin (d=2), Hartmann6, Levy-8, Rosenbrock-5, Styblinski-Tang-8 and Ackley-10 behind a random
  rotation and shift per seed (as in the COCO/BBOB suites): the instance of seed s evaluates
  f(x* + R(u - c)) in the function's unit box, with R a random rotation and c uniform in [0.15, 0.85]^d, so its
  optimum sits at u = c with the function's optimal value, while the landscape around it is no longer axis
  aligned or centred.
- `mixed`: rotated and shifted functions behind integer, log-scaled and categorical parameters. An integer
  parameter with L levels sets its coordinate to a cell centre (the shift puts the optimum on one); each
  categorical parameter's choice moves the optimum by its own offset vector and adds its own penalty (zero for
  one choice), so categories interact with the continuous coordinates.
- `constrained`: BoTorch's constrained problems (ConstrainedGramacy, PressureVessel, WeldedBeamSO,
  TensionCompressionString, SpeedReducer, ConstrainedHartmann), constraints as slacks that must be >= 0.
- `multiobjective`: BraninCurrin, ZDT1 (d=6), DTLZ2 (d=6), VehicleSafety and the constrained C2DTLZ2, each
  with its published reference point as the objectives' thresholds.
- `tabular`: scikit-learn models tuned by cross-validation on its bundled data sets (SVC, random forest,
  histogram gradient boosting, SGD classifier, elastic net on polynomial features, gradient-boosted
  regression), accuracy maximized or error minimized; the optimum is the best value any run found.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Params = dict[str, Any]
Metrics = dict[str, float]


@dataclass(frozen=True)
class Problem:
    """One instance of a benchmark problem: what a study declares and how a trial is evaluated."""

    name: str
    family: str
    params: list[dict[str, Any]]
    objectives: list[dict[str, Any]]
    evaluate: Callable[[Params], Metrics]
    optimum: float | None  # best objective value, or max hypervolume; None: the best any run found
    constraints: list[dict[str, Any]] = field(default_factory=list)
    seeded: bool = True  # whether the instance changes with the seed (else every seed shares one instance)

    def spec(self, engine: str, options: dict[str, Any], seed: int) -> dict[str, Any]:
        return {
            "params": self.params,
            "objectives": self.objectives,
            "constraints": self.constraints,
            "engine": engine,
            "engine_options": options,
            "seed": seed,
        }

    @property
    def multiobjective(self) -> bool:
        return len(self.objectives) > 1

    def feasible(self, metrics: Metrics) -> bool:
        return all(
            metrics[c["name"]] >= c["bound"] if c["op"] == ">=" else metrics[c["name"]] <= c["bound"]
            for c in self.constraints
        )

    def progress(self, evaluations: list[Metrics]) -> list[float | None]:
        """After each evaluation: the best feasible objective value so far (None before the first feasible one),
        or for several objectives the hypervolume of the feasible points against the thresholds."""
        if self.multiobjective:
            return _hypervolume_trace(self, evaluations)
        objective = self.objectives[0]
        sign = 1.0 if objective["goal"] == "minimize" else -1.0
        best: float | None = None
        trace: list[float | None] = []
        for metrics in evaluations:
            if self.feasible(metrics):
                value = metrics[objective["name"]]
                if best is None or sign * value < sign * best:
                    best = value
            trace.append(best)
        return trace


def _hypervolume_trace(problem: Problem, evaluations: list[Metrics]) -> list[float | None]:
    from service.domain.hypervolume import hypervolume

    signs = np.array([1.0 if o["goal"] == "maximize" else -1.0 for o in problem.objectives])
    reference = signs * np.array([o["threshold"] for o in problem.objectives])
    front = np.empty((0, len(signs)))
    trace: list[float | None] = []
    last = 0.0
    for metrics in evaluations:
        if problem.feasible(metrics):
            point = signs * np.array([metrics[o["name"]] for o in problem.objectives])
            if bool((point > reference).all()):
                front = np.vstack([front, point])
                last = float(hypervolume(front, reference))
        trace.append(last)
    return trace


def _rng(name: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    """A uniformly random orthogonal matrix (QR of a Gaussian matrix, signs fixed)."""
    if d == 1:
        return np.ones((1, 1))
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


@dataclass(frozen=True)
class Transformed:
    """f(x* + R(u - c)) on the unit box of a BoTorch function: optimum at u = c, value f's optimum."""

    function: Any
    rotation: np.ndarray
    centre: np.ndarray

    @classmethod
    def of(cls, function: Any, rng: np.random.Generator, centre: np.ndarray | None = None) -> Transformed:
        d = function.dim
        return cls(function, _rotation(rng, d), rng.uniform(0.15, 0.85, d) if centre is None else centre)

    def __call__(self, u: np.ndarray) -> float:
        import torch

        bounds = self.function.bounds.numpy()
        optimizer = (np.asarray(self.function._optimizers[0]) - bounds[0]) / (bounds[1] - bounds[0])
        v = optimizer + self.rotation @ (u - self.centre)
        x = torch.tensor(bounds[0] + v * (bounds[1] - bounds[0]), dtype=torch.float64)[None]
        return float(self.function._evaluate_true(x).item())  # no bounds check: rotations leave the box


def _botorch(name: str, **kwargs: Any) -> Any:
    from botorch.test_functions import synthetic

    return getattr(synthetic, name)(**kwargs)


SYNTHETIC: dict[str, tuple[str, dict[str, Any]]] = {
    "branin": ("Branin", {}),
    "hartmann6": ("Hartmann", {"dim": 6}),
    "levy8": ("Levy", {"dim": 8}),
    "rosenbrock5": ("Rosenbrock", {"dim": 5}),
    "styblinskitang8": ("StyblinskiTang", {"dim": 8}),
    "ackley10": ("Ackley", {"dim": 10, "bounds": [(-5.0, 10.0)] * 10}),
}


def synthetic(name: str, seed: int) -> Problem:
    cls, kwargs = SYNTHETIC[name]
    function = _botorch(cls, **kwargs)
    instance = Transformed.of(function, _rng(name, seed))
    names = [f"x{i}" for i in range(function.dim)]
    params = [{"name": n, "type": "float", "low": 0.0, "high": 1.0} for n in names]

    def evaluate(p: Params) -> Metrics:
        return {"f": instance(np.array([p[n] for n in names]))}

    return Problem(
        name, "synthetic", params, [{"name": "f", "goal": "minimize"}], evaluate, float(function.optimal_value)
    )


@dataclass(frozen=True)
class Axis:
    """How one parameter sets one coordinate of the unit box: a float (maybe log-scaled) or an integer with
    `levels` values, whose cells' centres are the coordinates it can reach."""

    param: dict[str, Any]

    def unit(self, value: Any) -> float:
        p = self.param
        if p["type"] == "int":
            return (value - p["low"] + 0.5) / (p["high"] - p["low"] + 1)
        if p.get("log"):
            return (math.log(value) - math.log(p["low"])) / (math.log(p["high"]) - math.log(p["low"]))
        return float((value - p["low"]) / (p["high"] - p["low"]))

    def snap(self, u: float) -> float:
        """The reachable coordinate nearest u (a cell centre for integers)."""
        p = self.param
        if p["type"] != "int":
            return u
        levels = p["high"] - p["low"] + 1
        return (min(int(u * levels), levels - 1) + 0.5) / levels


@dataclass(frozen=True)
class MixedDesign:
    base: tuple[str, dict[str, Any]]
    axes: list[dict[str, Any]]  # one per coordinate of the base function
    categories: list[int]  # choices per categorical parameter


MIXED: dict[str, MixedDesign] = {
    "hartmann6-mixed": MixedDesign(
        ("Hartmann", {"dim": 6}),
        [
            {"type": "int", "low": 0, "high": 7},
            {"type": "int", "low": 1, "high": 8},
            {"type": "float", "low": 0.0, "high": 1.0},
            {"type": "float", "low": -1.0, "high": 1.0},
            {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
            {"type": "float", "low": 0.0, "high": 10.0},
        ],
        [3],
    ),
    "levy6-mixed": MixedDesign(
        ("Levy", {"dim": 6}),
        [
            {"type": "int", "low": 1, "high": 12},
            {"type": "int", "low": 0, "high": 11},
            {"type": "int", "low": -5, "high": 6},
            {"type": "float", "low": 0.0, "high": 1.0},
            {"type": "float", "low": 0.0, "high": 1.0},
            {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        ],
        [3, 4],
    ),
    "ackley5-int": MixedDesign(
        ("Ackley", {"dim": 5, "bounds": [(-5.0, 10.0)] * 5}),
        [
            {"type": "int", "low": 0, "high": 15},
            {"type": "int", "low": 0, "high": 15},
            {"type": "int", "low": 1, "high": 16},
            {"type": "int", "low": 0, "high": 15},
            {"type": "int", "low": 0, "high": 15},
        ],
        [2],
    ),
    "rosenbrock4-wide-int": MixedDesign(
        ("Rosenbrock", {"dim": 4}),
        [
            {"type": "int", "low": 1, "high": 64},
            {"type": "int", "low": 0, "high": 99},
            {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
            {"type": "float", "low": 0.0, "high": 1.0},
        ],
        [],
    ),
    "styblinskitang6-mixed": MixedDesign(
        ("StyblinskiTang", {"dim": 6}),
        [
            {"type": "int", "low": 1, "high": 10},
            {"type": "int", "low": 1, "high": 10},
            {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
            {"type": "float", "low": 1e-2, "high": 1e2, "log": True},
            {"type": "float", "low": 0.0, "high": 1.0},
            {"type": "float", "low": 0.0, "high": 1.0},
        ],
        [4, 4],
    ),
}


def mixed(name: str, seed: int) -> Problem:
    design = MIXED[name]
    function = _botorch(design.base[0], **design.base[1])
    rng = _rng(name, seed)
    axes = [Axis({"name": f"x{i}", **a}) for i, a in enumerate(design.axes)]
    centre = np.array([axis.snap(u) for axis, u in zip(axes, rng.uniform(0.15, 0.85, len(axes)), strict=True)])
    instance = Transformed.of(function, rng, centre)
    letters = "abcdefgh"
    categorical = [
        {"name": f"c{j}", "type": "categorical", "choices": list(letters[:k])} for j, k in enumerate(design.categories)
    ]
    # Per categorical parameter and choice: a move of the optimum (along the float axes only, so it stays
    # reachable) and a penalty; one random choice per parameter moves nothing and costs nothing.
    floats = np.array([a.param["type"] != "int" for a in axes], dtype=float)
    sample = [instance(u) for u in rng.uniform(0, 1, (64, len(axes)))]
    scale = float(np.median(sample)) - float(function.optimal_value)
    moves, penalties = [], []
    for k in design.categories:
        best = int(rng.integers(k))
        move = rng.normal(0, 0.12, (k, len(axes))) * floats
        move[best] = 0.0
        penalty = scale * rng.uniform(0.05, 0.4, k)
        penalty[best] = 0.0
        moves.append(move)
        penalties.append(penalty)

    def evaluate(p: Params) -> Metrics:
        u = np.array([axis.unit(p[axis.param["name"]]) for axis in axes])
        extra = 0.0
        for j, spec in enumerate(categorical):
            k = spec["choices"].index(p[spec["name"]])
            u = u - moves[j][k]
            extra += penalties[j][k]
        return {"f": instance(u) + extra}

    return Problem(
        name,
        "mixed",
        [a.param for a in axes] + categorical,
        [{"name": "f", "goal": "minimize"}],
        evaluate,
        float(function.optimal_value),
    )


CONSTRAINED = {
    "gramacy": "ConstrainedGramacy",
    "pressurevessel": "PressureVessel",
    "weldedbeam": "WeldedBeamSO",
    "tensioncompression": "TensionCompressionString",
    "speedreducer": "SpeedReducer",
    "hartmann6c": "ConstrainedHartmann",
}


def constrained(name: str, seed: int) -> Problem:
    import torch

    function = _botorch(CONSTRAINED[name])
    bounds = function.bounds.tolist()
    names = [f"x{i}" for i in range(function.dim)]
    params = [{"name": n, "type": "float", "low": lo, "high": hi} for n, lo, hi in zip(names, *bounds, strict=True)]
    slacks = [f"slack{i}" for i in range(function.num_constraints)]

    def evaluate(p: Params) -> Metrics:
        x = torch.tensor([[p[n] for n in names]], dtype=torch.float64)
        slack = function.evaluate_slack_true(x)[0].tolist()
        return {"f": float(function.evaluate_true(x).item()), **dict(zip(slacks, slack, strict=True))}

    return Problem(
        name,
        "constrained",
        params,
        [{"name": "f", "goal": "minimize"}],
        evaluate,
        float(function.optimal_value),
        [{"name": s, "op": ">=", "bound": 0.0} for s in slacks],
        seeded=False,
    )


MULTIOBJECTIVE: dict[str, tuple[str, dict[str, Any]]] = {
    "branincurrin": ("BraninCurrin", {}),
    "zdt1": ("ZDT1", {"dim": 6}),
    "dtlz2": ("DTLZ2", {"dim": 6, "num_objectives": 2}),
    "vehiclesafety": ("VehicleSafety", {}),
    "c2dtlz2": ("C2DTLZ2", {"dim": 6, "num_objectives": 2}),
}


def multiobjective(name: str, seed: int) -> Problem:
    import torch
    from botorch.test_functions import multi_objective as mo

    cls, kwargs = MULTIOBJECTIVE[name]
    function = getattr(mo, cls)(**kwargs)
    bounds = function.bounds.tolist()
    names = [f"x{i}" for i in range(function.dim)]
    params = [{"name": n, "type": "float", "low": lo, "high": hi} for n, lo, hi in zip(names, *bounds, strict=True)]
    objectives = [
        {"name": f"f{i}", "goal": "minimize", "threshold": r} for i, r in enumerate(function.ref_point.tolist())
    ]
    slacks = [f"slack{i}" for i in range(getattr(function, "num_constraints", 0))]

    def evaluate(p: Params) -> Metrics:
        x = torch.tensor([[p[n] for n in names]], dtype=torch.float64)
        values = function.evaluate_true(x)[0].tolist()
        metrics = {o["name"]: v for o, v in zip(objectives, values, strict=True)}
        if slacks:
            metrics.update(zip(slacks, function.evaluate_slack_true(x)[0].tolist(), strict=True))
        return metrics

    return Problem(
        name,
        "multiobjective",
        params,
        objectives,
        evaluate,
        float(function.max_hv),
        [{"name": s, "op": ">=", "bound": 0.0} for s in slacks],
        seeded=False,
    )


@functools.cache
def _data(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    loaded = getattr(datasets, f"load_{name}")(return_X_y=True)
    return loaded[0], loaded[1]


def _cross_validated(model: Any, data: str, scoring: str) -> float:
    """3-fold cross-validated score on a fixed split; iterative models stopped by their iteration cap are scored
    as they are (their convergence warnings silenced)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

    X, y = _data(data)
    classification = scoring in ("accuracy", "neg_log_loss")
    folds = (StratifiedKFold if classification else KFold)(n_splits=3, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        score = float(cross_val_score(model, X, y, cv=folds, scoring=scoring).mean())
    return -score if scoring.startswith("neg_") else score  # sklearn negates its error scorers


def _svc(p: Params) -> Metrics:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    model = make_pipeline(StandardScaler(), SVC(C=p["C"], gamma=p["gamma"], kernel=p["kernel"], max_iter=20_000))
    return {"accuracy": _cross_validated(model, "breast_cancer", "accuracy")}


def _forest(p: Params) -> Metrics:
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(
        n_estimators=p["n_estimators"],
        max_depth=p["max_depth"],
        min_samples_leaf=p["min_samples_leaf"],
        max_features=p["max_features"],
        criterion=p["criterion"],
        random_state=0,
    )
    return {"log_loss": _cross_validated(model, "breast_cancer", "neg_log_loss")}


def _boosting(p: Params) -> Metrics:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        learning_rate=p["learning_rate"],
        max_iter=p["max_iter"],
        max_leaf_nodes=p["max_leaf_nodes"],
        min_samples_leaf=p["min_samples_leaf"],
        l2_regularization=p["l2_regularization"],
        early_stopping=False,
        random_state=0,
    )
    return {"error": 1.0 - _cross_validated(model, "breast_cancer", "accuracy")}


def _sgd(p: Params) -> Metrics:
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        StandardScaler(),
        SGDClassifier(
            alpha=p["alpha"],
            loss=p["loss"],
            penalty=p["penalty"],
            l1_ratio=p["l1_ratio"],
            learning_rate=p["learning_rate"],
            eta0=p["eta0"],
            max_iter=20,
            tol=None,
            random_state=0,
        ),
    )
    return {"accuracy": _cross_validated(model, "digits", "accuracy")}


def _elastic_net(p: Params) -> Metrics:
    from sklearn.linear_model import ElasticNet
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    model = make_pipeline(
        PolynomialFeatures(degree=p["degree"]),
        StandardScaler(),
        ElasticNet(alpha=p["alpha"], l1_ratio=p["l1_ratio"], max_iter=2_000),
    )
    return {"rmse": _cross_validated(model, "diabetes", "neg_root_mean_squared_error")}


def _regression_boosting(p: Params) -> Metrics:
    from sklearn.ensemble import GradientBoostingRegressor

    model = GradientBoostingRegressor(
        learning_rate=p["learning_rate"],
        n_estimators=p["n_estimators"],
        max_depth=p["max_depth"],
        subsample=p["subsample"],
        min_samples_leaf=p["min_samples_leaf"],
        random_state=0,
    )
    return {"rmse": _cross_validated(model, "diabetes", "neg_root_mean_squared_error")}


def _log(name: str, low: float, high: float, kind: str = "float") -> dict[str, Any]:
    return {"name": name, "type": kind, "low": low, "high": high, "log": True}


TABULAR: dict[str, tuple[Callable[[Params], Metrics], list[dict[str, Any]], dict[str, Any]]] = {
    "svc": (
        _svc,
        [
            _log("C", 1e-2, 1e3),
            _log("gamma", 1e-5, 1.0),
            {"name": "kernel", "type": "categorical", "choices": ["rbf", "sigmoid", "poly"]},
        ],
        {"name": "accuracy", "goal": "maximize"},
    ),
    "forest": (
        _forest,
        [
            _log("n_estimators", 4, 64, "int"),
            {"name": "max_depth", "type": "int", "low": 1, "high": 12},
            _log("min_samples_leaf", 1, 32, "int"),
            {"name": "max_features", "type": "float", "low": 0.05, "high": 1.0},
            {"name": "criterion", "type": "categorical", "choices": ["gini", "entropy"]},
        ],
        {"name": "log_loss", "goal": "minimize"},
    ),
    "boosting": (
        _boosting,
        [
            _log("learning_rate", 1e-3, 1.0),
            _log("max_iter", 5, 100, "int"),
            _log("max_leaf_nodes", 2, 64, "int"),
            _log("min_samples_leaf", 2, 64, "int"),
            _log("l2_regularization", 1e-8, 10.0),
        ],
        {"name": "error", "goal": "minimize"},
    ),
    "sgd": (
        _sgd,
        [
            _log("alpha", 1e-7, 1.0),
            {
                "name": "loss",
                "type": "categorical",
                "choices": ["hinge", "log_loss", "modified_huber", "squared_hinge"],
            },
            {"name": "penalty", "type": "categorical", "choices": ["l2", "l1", "elasticnet"]},
            {"name": "l1_ratio", "type": "float", "low": 0.0, "high": 1.0},
            {
                "name": "learning_rate",
                "type": "categorical",
                "choices": ["optimal", "constant", "invscaling", "adaptive"],
            },
            _log("eta0", 1e-5, 1.0),
        ],
        {"name": "accuracy", "goal": "maximize"},
    ),
    "elasticnet": (
        _elastic_net,
        [
            {"name": "degree", "type": "int", "low": 1, "high": 3},
            _log("alpha", 1e-5, 10.0),
            {"name": "l1_ratio", "type": "float", "low": 0.0, "high": 1.0},
        ],
        {"name": "rmse", "goal": "minimize"},
    ),
    "gbr": (
        _regression_boosting,
        [
            _log("learning_rate", 1e-3, 1.0),
            _log("n_estimators", 5, 150, "int"),
            {"name": "max_depth", "type": "int", "low": 1, "high": 6},
            {"name": "subsample", "type": "float", "low": 0.3, "high": 1.0},
            _log("min_samples_leaf", 1, 64, "int"),
        ],
        {"name": "rmse", "goal": "minimize"},
    ),
}


def tabular(name: str, seed: int) -> Problem:
    evaluate, params, objective = TABULAR[name]
    return Problem(name, "tabular", params, [objective], evaluate, None, seeded=False)


FAMILIES: dict[str, tuple[Callable[[str, int], Problem], list[str]]] = {
    "synthetic": (synthetic, list(SYNTHETIC)),
    "mixed": (mixed, list(MIXED)),
    "constrained": (constrained, list(CONSTRAINED)),
    "multiobjective": (multiobjective, list(MULTIOBJECTIVE)),
    "tabular": (tabular, list(TABULAR)),
}


def family_of(name: str) -> str:
    return next(family for family, (_, names) in FAMILIES.items() if name in names)


def problem(name: str, seed: int) -> Problem:
    """The instance of problem `name` for `seed`."""
    make, _ = FAMILIES[family_of(name)]
    return make(name, seed)
