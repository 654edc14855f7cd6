"""Multi-objective quality: log hypervolume difference to the known optimum, asktell vs Optuna.

Problems from botorch.test_functions.multi_objective, all minimized, each with its published reference
point (given to every method as the objectives' thresholds) and maximal hypervolume: BraninCurrin (d=2),
ZDT1 (d=6), DTLZ2 (d=6, m=2), VehicleSafety (d=5, m=3) and the constrained C2DTLZ2 (d=6, m=2).

asktell's engines run in-process exactly as a worker runs them: the pure engine gets the study's
trials and its own memory (warm-start hyperparameters) from the previous call. That times the
engine's computation per suggestion (what a worker spends), without the HTTP and database hops the
API benchmarks measure. Optuna's default sampler (TPE) and GPSampler run with the same budget.

    python benchmarks/quality_multiobjective.py [--seeds 5] [--budget 60] [--parallel 2]
        [--methods nehvi,parego,random,tpe,optuna-gp] [--problems branincurrin,zdt1,dtlz2,vehiclesafety,c2dtlz2]
        [--results runs.jsonl]

With --results every finished run is appended to that file as it ends, and runs already in it are
not repeated: an interrupted benchmark resumes where it stopped, and the tables cover all of them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import warnings
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import markdown_table

warnings.filterwarnings("ignore")
CHECKPOINTS = (20, 40, 60)


@dataclass(frozen=True)
class Problem:
    name: str
    factory: str  # botorch.test_functions.multi_objective class
    kwargs: tuple[tuple[str, int], ...] = ()

    def function(self) -> Any:
        from botorch.test_functions import multi_objective

        return getattr(multi_objective, self.factory)(**dict(self.kwargs))


PROBLEMS = [
    Problem("branincurrin", "BraninCurrin"),
    Problem("zdt1", "ZDT1", (("dim", 6),)),
    Problem("dtlz2", "DTLZ2", (("dim", 6), ("num_objectives", 2))),
    Problem("vehiclesafety", "VehicleSafety"),
    Problem("c2dtlz2", "C2DTLZ2", (("dim", 6), ("num_objectives", 2))),
]


@dataclass(frozen=True)
class Evaluation:
    objectives: list[float]
    slack: list[float]  # feasible when every slack >= 0


class Evaluator:
    def __init__(self, problem: Problem) -> None:
        import torch

        self.torch = torch
        self.function = problem.function()
        bounds = self.function.bounds.tolist()
        self.names = [f"x{i}" for i in range(self.function.dim)]
        self.params = [{"name": n, "type": "float", "low": lo, "high": hi}
                       for n, lo, hi in zip(self.names, bounds[0], bounds[1], strict=True)]
        self.reference = self.function.ref_point.tolist()
        self.max_hv = float(self.function.max_hv)
        self.objectives = [f"f{i}" for i in range(self.function.num_objectives)]
        self.constraints = [f"slack{i}" for i in range(getattr(self.function, "num_constraints", 0))]

    def __call__(self, params: dict[str, Any]) -> Evaluation:
        x = self.torch.tensor([[params[n] for n in self.names]], dtype=self.torch.float64)
        objectives = self.function(x)[0].tolist()
        slack = self.function.evaluate_slack(x)[0].tolist() if self.constraints else []
        return Evaluation(objectives, slack)

    def spec(self, engine: str, options: dict[str, Any], seed: int) -> dict[str, Any]:
        return {"params": self.params,
                "objectives": [{"name": n, "goal": "minimize", "threshold": r}
                               for n, r in zip(self.objectives, self.reference, strict=True)],
                "constraints": [{"name": c, "op": ">=", "bound": 0.0} for c in self.constraints],
                "engine": engine, "engine_options": options, "seed": seed}

    def log_hv_gaps(self, evaluations: list[Evaluation]) -> list[float]:
        """log10(max HV - HV of the feasible points so far) after each evaluation."""
        import numpy as np

        from service.domain.hypervolume import hypervolume

        reference = -np.asarray(self.reference)
        gaps, front = [], np.empty((0, len(self.reference)))
        for e in evaluations:
            if all(s >= 0 for s in e.slack):
                front = np.vstack([front, -np.asarray(e.objectives)])
            gaps.append(math.log10(max(self.max_hv - hypervolume(front, reference), 1e-12)))
        return gaps


def run_asktell(evaluate: Evaluator, method: str, seed: int, budget: int) -> tuple[list[Evaluation], list[float]]:
    from service.domain.spec import StudySpec
    from service.domain.trial import TrialState, TrialView
    from service.engines import resolve_engine
    from service.engines.base import EngineNotes, SuggestRequest

    engine, options = ("random", {}) if method == "random" else ("multiobjective", {"method": method})
    spec = StudySpec.model_validate(evaluate.spec(engine, options, seed))
    resolved = resolve_engine(spec)
    trials: list[TrialView] = []
    evaluations, seconds = [], []
    notes = EngineNotes()
    for number in range(budget):
        request = SuggestRequest(spec, resolved.options, 1, seed, number, trials=trials, notes=notes)
        started = time.perf_counter()
        (params,) = resolved.engine.suggest(request)
        seconds.append(time.perf_counter() - started)
        notes = request.notes
        result = evaluate(params)
        values = dict(zip(evaluate.objectives + evaluate.constraints, result.objectives + result.slack, strict=True))
        trials.append(TrialView(number, params, TrialState.COMPLETED, values))
        evaluations.append(result)
    return evaluations, seconds


def run_optuna(evaluate: Evaluator, method: str, seed: int, budget: int) -> tuple[list[Evaluation], list[float]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def constraints(trial: Any) -> list[float]:
        return [-s for s in trial.user_attrs["slack"]]  # Optuna: feasible when <= 0

    constraints_func = constraints if evaluate.constraints else None
    sampler = (optuna.samplers.TPESampler(seed=seed, constraints_func=constraints_func) if method == "tpe"
               else optuna.samplers.GPSampler(seed=seed, constraints_func=constraints_func))
    study = optuna.create_study(sampler=sampler, directions=["minimize"] * len(evaluate.objectives))
    evaluations, seconds = [], []
    for _ in range(budget):
        started = time.perf_counter()
        trial = study.ask()
        params = {p["name"]: trial.suggest_float(p["name"], p["low"], p["high"]) for p in evaluate.params}
        seconds.append(time.perf_counter() - started)
        result = evaluate(params)
        trial.set_user_attr("slack", result.slack)
        study.tell(trial, result.objectives)
        evaluations.append(result)
    return evaluations, seconds


def run_task(task: tuple[str, str, int, int]) -> tuple[str, str, int, list[float], list[float]]:
    problem_name, method, seed, budget = task
    import torch

    torch.set_num_threads(1)
    evaluate = Evaluator(next(p for p in PROBLEMS if p.name == problem_name))
    runner = run_optuna if method in ("tpe", "optuna-gp") else run_asktell
    evaluations, seconds = runner(evaluate, method, seed, budget)
    return problem_name, method, seed, evaluate.log_hv_gaps(evaluations), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--methods", default="nehvi,parego,random,tpe,optuna-gp")
    parser.add_argument("--problems", default=",".join(p.name for p in PROBLEMS))
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (one CPU thread each)")
    parser.add_argument("--results", type=Path, help="JSON-lines file that keeps finished runs (resumable)")
    args = parser.parse_args()
    methods, problems = args.methods.split(","), args.problems.split(",")

    gaps: dict[tuple[str, str], list[list[float]]] = defaultdict(list)
    seconds: dict[tuple[str, str], list[float]] = defaultdict(list)
    done: set[tuple[str, str, int]] = set()
    if args.results and args.results.exists():
        for line in args.results.read_text().splitlines():
            run = json.loads(line)
            key = (run["problem"], run["method"], run["seed"])
            if run["budget"] == args.budget and key not in done:
                done.add(key)
                gaps[key[:2]].append(run["gaps"])
                seconds[key[:2]].extend(run["seconds"])
    # Seed-major order: a run cut short still covers every problem and method with its first seeds.
    tasks = [(p, m, s, args.budget) for s in range(args.seeds) for p in problems for m in methods
             if (p, m, s) not in done]
    with ProcessPoolExecutor(args.parallel) as pool:
        for problem_name, method, seed, curve, times in pool.map(run_task, tasks):
            gaps[(problem_name, method)].append(curve)
            seconds[(problem_name, method)].extend(times)
            print(f"{problem_name:14s} {method:10s} seed {seed}: log10 HV gap {curve[-1]:.3f} "
                  f"({sum(times):.0f} s suggesting)", flush=True)
            if args.results:
                with args.results.open("a") as out:
                    out.write(json.dumps({"problem": problem_name, "method": method, "seed": seed,
                                          "budget": args.budget, "gaps": curve, "seconds": times}) + "\n")

    checkpoints = [c for c in CHECKPOINTS if c <= args.budget] or [args.budget]
    for problem_name in problems:
        rows = []
        for method in methods:
            curves = gaps[(problem_name, method)]
            if not curves:
                continue
            cells = []
            for checkpoint in checkpoints:
                at = [curve[checkpoint - 1] for curve in curves]
                se = statistics.stdev(at) / math.sqrt(len(at)) if len(at) > 1 else 0.0
                cells.append(f"{statistics.mean(at):.3f} ± {se:.2f}")
            times = seconds[(problem_name, method)]
            rows.append([method, len(curves), *cells, f"{statistics.mean(times):.3f}", f"{max(times):.2f}"])
        print(f"\n{problem_name}: mean log10(max HV - HV) (lower is better) ± s.e. over the seeds")
        print(markdown_table(["method", "seeds", *[f"@{c}" for c in checkpoints], "s/suggestion", "max s"], rows))


if __name__ == "__main__":
    main()
