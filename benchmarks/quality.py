"""Optimization quality: best-so-far regret of asktell's engines against Optuna and Ax.

Problems: Branin (2-d), Hartmann6 (6-d), Ackley (10-d, on [-5, 10]^10) from botorch.test_functions,
and an SVC tuned by 3-fold cross-validation on scikit-learn's bundled breast-cancer data (log C,
log gamma, kernel). asktell runs through the service (PostgreSQL, two worker processes); Optuna's
TPESampler and GPSampler and Ax's default generation strategy run in-process. Each method gets
--budget trials per run and --seeds seeds; the table shows mean best-so-far regret at 10/25/50
trials and the mean rank at the full budget (1 = best).

    python benchmarks/quality.py [--seeds 5] [--budget 50] [--methods gp,sobol,random,tpe,optuna-gp,ax]
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import fleet, markdown_table, scratch_database

warnings.filterwarnings("ignore")
logging.getLogger("ax").setLevel(logging.WARNING)
CHECKPOINTS = (10, 25, 50)


@dataclass(frozen=True)
class Problem:
    name: str
    params: list[dict[str, Any]]
    optimum: float | None  # None: regret is measured against the best value any method found

    def evaluate(self, params: dict[str, Any]) -> float:
        return PROBLEMS_FN[self.name](params)


def _botorch(function: Any, names: list[str]) -> Callable[[dict[str, Any]], float]:
    import torch

    def evaluate(params: dict[str, Any]) -> float:
        x = torch.tensor([[params[n] for n in names]], dtype=torch.float64)
        return float(function(x).item())

    return evaluate


def _svc_error(params: dict[str, Any]) -> float:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    X, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), SVC(C=params["C"], gamma=params["gamma"], kernel=params["kernel"]))
    return float(1.0 - cross_val_score(model, X, y, cv=3).mean())


def _problems() -> tuple[list[Problem], dict[str, Callable[[dict[str, Any]], float]]]:
    from botorch.test_functions import Ackley, Branin, Hartmann

    def box(prefix: str, bounds: list[tuple[float, float]]) -> list[dict[str, Any]]:
        return [{"name": f"{prefix}{i}", "type": "float", "low": lo, "high": hi} for i, (lo, hi) in enumerate(bounds)]

    problems = [
        Problem("branin", box("x", [(-5.0, 10.0), (0.0, 15.0)]), 0.397887),
        Problem("hartmann6", box("x", [(0.0, 1.0)] * 6), -3.32237),
        Problem("ackley10", box("x", [(-5.0, 10.0)] * 10), 0.0),
        Problem("svc", [{"name": "C", "type": "float", "low": 1e-2, "high": 1e3, "log": True},
                        {"name": "gamma", "type": "float", "low": 1e-5, "high": 1.0, "log": True},
                        {"name": "kernel", "type": "categorical", "choices": ["rbf", "sigmoid"]}], None),
    ]
    functions = {
        "branin": _botorch(Branin(), ["x0", "x1"]),
        "hartmann6": _botorch(Hartmann(dim=6), [f"x{i}" for i in range(6)]),
        "ackley10": _botorch(Ackley(dim=10), [f"x{i}" for i in range(10)]),
        "svc": _svc_error,
    }
    return problems, functions


PROBLEM_LIST, PROBLEMS_FN = _problems()


def run_asktell(url: str, problem: Problem, engine: str, seed: int, budget: int) -> list[float]:
    from asktell import Client

    client = Client(url, timeout=600)
    study = client.create_study(name=f"q-{problem.name}-{engine}-{seed}-{time.time_ns()}", params=problem.params,
                                objectives=[{"name": "f", "goal": "minimize"}], engine=engine, seed=seed)
    values = []
    for _ in range(budget):
        (trial,) = study.ask(worker_id="quality", timeout=600)
        value = problem.evaluate(trial.params)
        trial.tell({"f": value})
        values.append(value)
    study.delete()
    return values


def _optuna_space(problem: Problem) -> Callable[[Any], dict[str, Any]]:
    def suggest(trial: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in problem.params:
            if p["type"] == "categorical":
                out[p["name"]] = trial.suggest_categorical(p["name"], p["choices"])
            else:
                out[p["name"]] = trial.suggest_float(p["name"], p["low"], p["high"], log=p.get("log", False))
        return out

    return suggest


def run_optuna(problem: Problem, sampler_name: str, seed: int, budget: int) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed) if sampler_name == "tpe" else optuna.samplers.GPSampler(seed=seed)
    study = optuna.create_study(sampler=sampler, direction="minimize")
    suggest = _optuna_space(problem)
    values = []
    for _ in range(budget):
        trial = study.ask()
        value = problem.evaluate(suggest(trial))
        study.tell(trial, value)
        values.append(value)
    return values


def run_ax(problem: Problem, seed: int, budget: int) -> list[float]:
    from ax.api.client import Client as AxClient
    from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig

    logging.getLogger("ax").setLevel(logging.WARNING)
    ax = AxClient(random_seed=seed)
    parameters: list[Any] = []
    for p in problem.params:
        if p["type"] == "categorical":
            parameters.append(ChoiceParameterConfig(name=p["name"], values=p["choices"], parameter_type="str"))
        else:
            parameters.append(RangeParameterConfig(name=p["name"], bounds=(p["low"], p["high"]), parameter_type="float",
                                                   scaling="log" if p.get("log") else "linear"))
    ax.configure_experiment(parameters=parameters)
    ax.configure_optimization(objective="-f")
    values = []
    for _ in range(budget):
        ((index, params),) = ax.get_next_trials(max_trials=1).items()
        value = problem.evaluate(dict(params))
        ax.complete_trial(trial_index=index, raw_data={"f": value})
        values.append(value)
    return values


def run_task(task: tuple[str, str, str, int, int]) -> tuple[str, str, int, list[float], float]:
    url, problem_name, method, seed, budget = task
    import torch

    torch.set_num_threads(1)
    problem = next(p for p in PROBLEM_LIST if p.name == problem_name)
    started = time.perf_counter()
    if method in ("gp", "sobol", "random"):
        values = run_asktell(url, problem, method, seed, budget)
    elif method in ("tpe", "optuna-gp"):
        values = run_optuna(problem, "tpe" if method == "tpe" else "gp", seed, budget)
    elif method == "ax":
        values = run_ax(problem, seed, budget)
    else:
        raise ValueError(method)
    return problem_name, method, seed, values, time.perf_counter() - started


def best_so_far(values: list[float]) -> list[float]:
    out, best = [], math.inf
    for v in values:
        best = min(best, v)
        out.append(best)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--methods", default="gp,sobol,random,tpe,optuna-gp,ax")
    parser.add_argument("--problems", default=",".join(p.name for p in PROBLEM_LIST))
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (one CPU thread each)")
    args = parser.parse_args()
    methods = args.methods.split(",")

    results: dict[tuple[str, str], list[list[float]]] = defaultdict(list)
    seconds: dict[str, list[float]] = defaultdict(list)
    with scratch_database() as database_url, fleet(database_url) as running:
        url = running.start_server()
        for _ in range(args.parallel):
            running.start_worker(threads=1)
        tasks = [(url, p, m, s, args.budget) for p in args.problems.split(",") for s in range(args.seeds)
                 for m in methods]
        with ProcessPoolExecutor(args.parallel) as pool:
            for problem_name, method, seed, values, elapsed in pool.map(run_task, tasks):
                results[(problem_name, method)].append(best_so_far(values))
                seconds[method].append(elapsed)
                print(f"{problem_name:10s} {method:10s} seed {seed}: best {min(values):.5g} ({elapsed:.0f} s)",
                      flush=True)

    ranks: dict[str, list[float]] = defaultdict(list)
    for problem_name in args.problems.split(","):
        problem = next(p for p in PROBLEM_LIST if p.name == problem_name)
        floor = problem.optimum if problem.optimum is not None else min(
            min(curve[-1] for curve in results[(problem_name, m)]) for m in methods)
        rows = []
        finals = {}
        for method in methods:
            curves = results[(problem_name, method)]
            cells = []
            for checkpoint in CHECKPOINTS:
                regrets = [curve[min(checkpoint, len(curve)) - 1] - floor for curve in curves]
                mean = statistics.mean(regrets)
                se = statistics.stdev(regrets) / math.sqrt(len(regrets)) if len(regrets) > 1 else 0.0
                cells.append(f"{mean:.4g} ± {se:.2g}")
            finals[method] = statistics.mean(curve[-1] for curve in curves)
            rows.append([method, *cells])
        ordered = sorted(methods, key=lambda m: finals[m])
        for method in methods:
            ranks[method].append(ordered.index(method) + 1)
        print(f"\n{problem_name} (regret vs {'optimum' if problem.optimum is not None else 'best found'} {floor:.6g})")
        print(markdown_table(["method", *[f"@{c}" for c in CHECKPOINTS]], rows))
    print("\nmean rank at the full budget (1 = best), and mean seconds per run:")
    print(markdown_table(["method", "mean rank", "s/run"],
                         [[m, f"{statistics.mean(ranks[m]):.2f}", f"{statistics.mean(seconds[m]):.0f}"]
                          for m in sorted(methods, key=lambda m: statistics.mean(ranks[m]))]))


if __name__ == "__main__":
    main()
