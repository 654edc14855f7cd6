"""Epsilon-greedy quality: AEGiS, eps-PF and eps-RS against engine gp and random, serial and asynchronous.

Problems: Branin (d=2), Hartmann6 (d=6) and Ackley (d=10, on [-5, 10]^10), rotated and shifted per seed as in
benchmarks/quality.py's synthetic family.
Engines run in-process exactly as a worker runs them (the pure engine gets the study's trials, pending ones
included, and its own memory from the previous call). Two settings:
- serial: one evaluation at a time;
- async: W workers (default 8); evaluation i takes a duration drawn uniformly from [0.5, 1.5] (the same
  stream for every method of a seed), so completions interleave; each completion frees a worker, which asks
  at once with the other W - 1 trials pending. AEGiS is designed for this case. The simulated clock advances
  by the durations only, so after k completions every method has spent the same wall-clock time: regret
  after k completions is regret per wall-clock-equivalent evaluations.

Methods: `aegis` (faithful: eps = min(1/sqrt(max(d, 4)), 0.5), so d <= 4 never exploits), `aegis-0.1`
(the exploit probability floored: eps = 0.1, D3), `eps_pf`, `eps_rs` (eps = 0.1), `gp` (qLogNEI with
pending points) and `random`. The tables give mean best-so-far regret ± s.e. after 25 and 50 completed
evaluations, mean seconds per suggestion, and the branch mix of the egreedy methods.

    python benchmarks/quality_egreedy.py [--seeds 5] [--budget 50] [--workers 8] [--settings serial,async]
        [--methods aegis,aegis-0.1,eps_pf,eps_rs,gp,random] [--problems branin,hartmann6,ackley10]
        [--parallel 2] [--results runs.jsonl]
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import sys
import time
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import RunLog, markdown_table, mean_and_error
from benchmarks.problems import problem as make_problem

warnings.filterwarnings("ignore")
CHECKPOINTS = (25, 50)
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "aegis": ("egreedy", {"variant": "aegis"}),
    "aegis-0.1": ("egreedy", {"variant": "aegis", "epsilon": 0.1}),
    "eps_pf": ("egreedy", {"variant": "eps_pf"}),
    "eps_rs": ("egreedy", {"variant": "eps_rs"}),
    "gp": ("gp", {}),
    "random": ("random", {}),
}


def simulate(problem_name: str, method: str, seed: int, budget: int, workers: int) -> dict[str, Any]:
    """One run: `budget` evaluations on `workers` simulated workers; best-so-far regret per completion."""
    import torch

    from service.domain.spec import StudySpec
    from service.domain.trial import TrialState, TrialView
    from service.engines import resolve_engine
    from service.engines.base import SuggestRequest

    torch.set_num_threads(1)
    problem = make_problem(problem_name, seed)
    engine, options = METHODS[method]
    spec = StudySpec.model_validate(
        {
            "params": problem.params,
            "objectives": [{"name": "f", "goal": "minimize"}],
            "engine": engine,
            "engine_options": options,
            "seed": seed,
        }
    )
    resolved = resolve_engine(spec)
    durations = random.Random(seed)
    trials: list[TrialView] = []
    running: list[tuple[float, int]] = []
    memory: dict[str, Any] = {}
    seconds: list[float] = []
    branches: Counter[str] = Counter()
    clock = 0.0

    def ask() -> None:
        nonlocal memory
        request = SuggestRequest(spec, resolved.options, 1, seed, len(trials), trials=list(trials), memory=memory)
        started = time.perf_counter()
        suggested = resolved.engine.suggest(request)
        seconds.append(time.perf_counter() - started)
        (params,) = suggested.params
        memory = suggested.memory if suggested.memory is not None else memory
        for info in suggested.info or []:
            branches[info.get("branch", "?")] += 1
        heapq.heappush(running, (clock + durations.uniform(0.5, 1.5), len(trials)))
        trials.append(TrialView(len(trials), params, TrialState.ACTIVE))

    while len(trials) < min(workers, budget):
        ask()
    best, regrets = float("inf"), []
    while running:
        clock, number = heapq.heappop(running)
        value = problem.evaluate(trials[number].params)["f"]
        trials[number] = TrialView(number, trials[number].params, TrialState.COMPLETED, {"f": value})
        best = min(best, value)
        regrets.append(best - (problem.optimum or 0.0))
        if len(trials) < budget:
            ask()
    return {
        "problem": problem_name,
        "method": method,
        "seed": seed,
        "workers": workers,
        "budget": budget,
        "regrets": regrets,
        "seconds": seconds,
        "branches": dict(branches),
    }


def run_task(task: tuple[str, str, int, int, int]) -> dict[str, Any]:
    return simulate(*task)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--workers", type=int, default=8, help="simulated workers of the async setting")
    parser.add_argument("--settings", default="serial,async")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--problems", default="branin,hartmann6,ackley10")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (one CPU thread each)")
    parser.add_argument("--results", type=Path, help="JSON-lines file that keeps finished runs (resumable)")
    args = parser.parse_args()
    methods, problems = args.methods.split(","), args.problems.split(",")
    settings = {"serial": 1, "async": args.workers}
    chosen = [settings[s] for s in args.settings.split(",")]

    log = RunLog(args.results, ("problem", "method", "seed", "workers", "budget"))
    # Seed-major order: a run cut short still covers every problem and method with its first seeds.
    tasks = [
        (p, m, s, args.budget, w)
        for s in range(args.seeds)
        for w in chosen
        for p in problems
        for m in methods
        if (p, m, s, w, args.budget) not in log
    ]
    with ProcessPoolExecutor(args.parallel) as pool:
        for run in pool.map(run_task, tasks):
            log.add(run)
            print(
                f"{run['problem']:10s} W={run['workers']} {run['method']:10s} seed {run['seed']}: regret "
                f"{run['regrets'][-1]:.4f} ({sum(run['seconds']):.0f} s suggesting)",
                flush=True,
            )

    checkpoints = [c for c in CHECKPOINTS if c <= args.budget] or [args.budget]
    for workers in chosen:
        for problem in problems:
            rows = []
            for method in methods:
                runs = [
                    r
                    for r in log.runs.values()
                    if (r["problem"], r["method"], r["workers"], r["budget"]) == (problem, method, workers, args.budget)
                    and r["seed"] < args.seeds
                ]
                if not runs:
                    continue
                times = [t for r in runs for t in r["seconds"]]
                mix: Counter[str] = Counter()
                for r in runs:
                    mix.update(r["branches"])
                total = sum(mix.values())
                mix_text = (
                    " ".join(
                        f"{b[:3]} {mix[b] / total:.0%}" for b in ("exploit", "thompson", "pareto", "random") if mix[b]
                    )
                    if total
                    else ""
                )
                rows.append(
                    [
                        method,
                        len(runs),
                        *[mean_and_error([r["regrets"][c - 1] for r in runs], 4) for c in checkpoints],
                        f"{sum(times) / len(times):.2f}",
                        mix_text,
                    ]
                )
            print(
                f"\n{problem}, {'serial' if workers == 1 else f'{workers} asynchronous workers'}: "
                "mean best-so-far regret ± s.e. after k completed evaluations"
            )
            print(
                markdown_table(["method", "seeds", *[f"@{c}" for c in checkpoints], "s/suggestion", "branch mix"], rows)
            )


if __name__ == "__main__":
    main()
