"""Constrained quality: engine constrained (CONFIG and constrained LogNEI) against Optuna and random.

Problems from botorch.test_functions (minimized, constraints as slacks that must be >= 0): ConstrainedGramacy
(d=2, 2 constraints), PressureVessel (d=4, 4), WeldedBeamSO (d=4, 6), ConstrainedHartmann (d=6, 1) and
SpeedReducer (d=7, 11). Methods: `config` and `cei` (asktell's engine constrained, run in-process exactly as a
worker runs it; `config-b<x>` sets sqrt(beta) = x instead of the default 1), Optuna's GPSampler (`optuna-gp`) and
TPESampler (`tpe`) with constraints_func, and `random`. The tables give the mean best feasible value ± s.e.
after 25 and 50 evaluations over the seeds that found a feasible point by then (the others are counted),
the fraction of feasible suggestions, and seconds per suggestion.

With --infeasible, problems whose constraint no point meets (Gramacy with an unreachable bound, Hartmann6 with
sum(x) >= 6.5) measure when a `config` study declares `likely_infeasible` (budget 30).

    python benchmarks/quality_constrained.py [--seeds 5] [--budget 50] [--parallel 2] [--results runs.jsonl]
        [--methods config,cei,optuna-gp,tpe,random] [--problems gramacy,pressurevessel,...] [--infeasible]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import RunLog, markdown_table, mean_and_error

warnings.filterwarnings("ignore")
CHECKPOINTS = (25, 50)
PROBLEMS = {"gramacy": "ConstrainedGramacy", "pressurevessel": "PressureVessel", "weldedbeam": "WeldedBeamSO",
            "hartmann6c": "ConstrainedHartmann", "speedreducer": "SpeedReducer"}
INFEASIBLE = ("gramacy-infeasible", "hartmann6-infeasible")
INFEASIBLE_BUDGET = 30


@dataclass(frozen=True)
class Evaluation:
    value: float
    slack: list[float]  # feasible when every slack >= 0

    @property
    def feasible(self) -> bool:
        return all(s >= 0 for s in self.slack)


class Problem:
    def __init__(self, name: str) -> None:
        import torch
        from botorch.test_functions import synthetic

        self.torch = torch
        base = "gramacy" if name.startswith("gramacy") else "hartmann6c" if name.startswith("hartmann6") else name
        self.function = getattr(synthetic, PROBLEMS[base])()
        bounds = self.function.bounds.tolist()
        self.names = [f"x{i}" for i in range(self.function.dim)]
        self.params = [{"name": n, "type": "float", "low": lo, "high": hi}
                       for n, lo, hi in zip(self.names, bounds[0], bounds[1], strict=True)]
        self.optimum = float(self.function.optimal_value)
        self.slack: Callable[[Any], list[float]] = lambda x: self.function.evaluate_slack(x)[0].tolist()
        if name == "gramacy-infeasible":  # the first constraint can't be met: its slack is shifted below zero
            self.slack = lambda x: [self.function.evaluate_slack(x)[0, 0].item() - 3.0]
        elif name == "hartmann6-infeasible":  # sum(x) <= 6 on the unit cube
            self.slack = lambda x: [float(x.sum()) - 6.5]
        self.constraints = [f"slack{i}" for i in range(len(self.slack(self.function.bounds[:1])))]

    def __call__(self, params: dict[str, Any]) -> Evaluation:
        x = self.torch.tensor([[params[n] for n in self.names]], dtype=self.torch.float64)
        return Evaluation(float(self.function.evaluate_true(x).item()), self.slack(x))

    def spec(self, options: dict[str, Any], seed: int, engine: str = "constrained") -> dict[str, Any]:
        return {"params": self.params, "objectives": [{"name": "f", "goal": "minimize"}],
                "constraints": [{"name": c, "op": ">=", "bound": 0.0} for c in self.constraints],
                "engine": engine, "engine_options": options, "seed": seed}


def engine_options(method: str) -> dict[str, Any]:
    """`config`, `cei`, or `config-b<sqrt_beta>` (e.g. config-b1.5) for CONFIG with another sqrt(beta)."""
    if method.startswith("config-b"):
        return {"method": "config", "sqrt_beta": float(method.removeprefix("config-b"))}
    return {"method": method}


def run_asktell(problem: Problem, method: str, seed: int, budget: int) -> tuple[list[Evaluation], list[float],
                                                                                  int | None]:
    """Returns the evaluations, seconds per suggestion, and the evaluation after which the study was first
    declared likely infeasible (None if never)."""
    from service.domain.spec import StudySpec
    from service.domain.trial import TrialState, TrialView
    from service.engines import resolve_engine
    from service.engines.base import STATUS_KEY, EngineNotes, SuggestRequest

    spec = StudySpec.model_validate(problem.spec({}, seed, "random") if method == "random"
                                    else problem.spec(engine_options(method), seed))
    resolved = resolve_engine(spec)
    trials: list[TrialView] = []
    evaluations, seconds = [], []
    notes = EngineNotes()
    declared: int | None = None
    for number in range(budget):
        request = SuggestRequest(spec, resolved.options, 1, seed, number, trials=trials, notes=notes)
        started = time.perf_counter()
        (params,) = resolved.engine.suggest(request)
        seconds.append(time.perf_counter() - started)
        notes = request.notes
        if declared is None and notes.memory.get(STATUS_KEY, {}).get("likely_infeasible"):
            declared = number
        result = problem(params)
        values = {"f": result.value, **dict(zip(problem.constraints, result.slack, strict=True))}
        trials.append(TrialView(number, params, TrialState.COMPLETED, values))
        evaluations.append(result)
    return evaluations, seconds, declared


def run_optuna(problem: Problem, method: str, seed: int, budget: int) -> tuple[list[Evaluation], list[float],
                                                                                 int | None]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def constraints(trial: Any) -> list[float]:
        return [-s for s in trial.user_attrs["slack"]]  # Optuna: feasible when <= 0

    sampler = (optuna.samplers.TPESampler(seed=seed, constraints_func=constraints) if method == "tpe"
               else optuna.samplers.GPSampler(seed=seed, constraints_func=constraints))
    study = optuna.create_study(sampler=sampler, direction="minimize")
    evaluations, seconds = [], []
    for _ in range(budget):
        started = time.perf_counter()
        trial = study.ask()
        params = {p["name"]: trial.suggest_float(p["name"], p["low"], p["high"]) for p in problem.params}
        seconds.append(time.perf_counter() - started)
        result = problem(params)
        trial.set_user_attr("slack", result.slack)
        study.tell(trial, result.value)
        evaluations.append(result)
    return evaluations, seconds, None


def run_task(task: tuple[str, str, int, int]) -> dict[str, Any]:
    problem_name, method, seed, budget = task
    import torch

    torch.set_num_threads(1)
    problem = Problem(problem_name)
    runner = run_optuna if method in ("tpe", "optuna-gp") else run_asktell
    evaluations, seconds, declared = runner(problem, method, seed, budget)
    best, curve = math.inf, []
    for e in evaluations:
        if e.feasible:
            best = min(best, e.value)
        curve.append(best if math.isfinite(best) else None)
    return {"problem": problem_name, "method": method, "seed": seed, "budget": budget, "best": curve,
            "feasible": [e.feasible for e in evaluations], "seconds": seconds, "declared": declared,
            "optimum": problem.optimum}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--methods", default="config,cei,optuna-gp,tpe,random")
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--infeasible", action="store_true", help="measure the infeasibility declaration instead")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (one CPU thread each)")
    parser.add_argument("--results", type=Path, help="JSON-lines file that keeps finished runs (resumable)")
    args = parser.parse_args()
    methods, problems = args.methods.split(","), args.problems.split(",")
    if args.infeasible:
        methods, problems, args.budget = ["config"], list(INFEASIBLE), INFEASIBLE_BUDGET

    log = RunLog(args.results, ("problem", "method", "seed", "budget"))
    tasks = [(p, m, s, args.budget) for s in range(args.seeds) for p in problems for m in methods
             if (p, m, s, args.budget) not in log]
    with ProcessPoolExecutor(args.parallel) as pool:
        for run in pool.map(run_task, tasks):
            log.add(run)
            print(f"{run['problem']:20s} {run['method']:10s} seed {run['seed']}: best feasible {run['best'][-1]} "
                  f"declared {run['declared']} ({sum(run['seconds']):.0f} s suggesting)", flush=True)

    def runs_of(problem: str, method: str) -> list[dict[str, Any]]:
        return [r for r in log.runs.values() if (r["problem"], r["method"], r["budget"]) == (problem, method,
                                                                                             args.budget)
                and r["seed"] < args.seeds]

    if args.infeasible:
        rows = []
        for problem in problems:
            runs = runs_of(problem, "config")
            declared = [r["declared"] + 1 for r in runs if r["declared"] is not None]  # evaluations seen by then
            rows.append([problem, len(runs), f"{len(declared)}/{len(runs)}",
                         ", ".join(map(str, sorted(declared))) or "-"])
        print(f"\nlikely_infeasible declarations by config within {args.budget} evaluations")
        print(markdown_table(["problem", "seeds", "declared", "after evaluations"], rows))
        return

    checkpoints = [c for c in CHECKPOINTS if c <= args.budget] or [args.budget]
    for problem in problems:
        rows = []
        for method in methods:
            runs = runs_of(problem, method)
            if not runs:
                continue
            cells = []
            for c in checkpoints:
                found = [r["best"][c - 1] for r in runs if r["best"][c - 1] is not None]
                cells.append((mean_and_error(found, 3) if found else "-") + f" ({len(runs) - len(found)} none)")
            feasible = [f for r in runs for f in r["feasible"]]
            times = [t for r in runs for t in r["seconds"]]
            rows.append([method, len(runs), *cells, f"{sum(feasible) / len(feasible):.0%}",
                         f"{sum(times) / len(times):.2f}"])
        optimum = runs_of(problem, methods[0])[0]["optimum"] if runs_of(problem, methods[0]) else float("nan")
        print(f"\n{problem} (optimum {optimum:.4g}): mean best feasible value ± s.e. (lower is better; runs "
              "without a feasible point counted apart)")
        print(markdown_table(["method", "seeds", *[f"@{c}" for c in checkpoints], "feasible", "s/suggestion"],
                             rows))


if __name__ == "__main__":
    main()
