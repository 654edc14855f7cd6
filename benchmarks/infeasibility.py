"""When does a `constrained` study declare itself likely infeasible, on problems whose constraints no point meets?

Two problems from benchmarks/problems.py's constrained family with a constraint made unreachable: Gramacy with
its first slack shifted by -3, and Hartmann6 with sum(x) >= 6.5 on the unit cube (the sum is at most 6). Each
runs `--budget` evaluations of the engine in-process (as a worker runs it, for each `--methods` entry: `config` or
`cei`), and the table gives, per problem and method, how many seeds declared `likely_infeasible` and after how
many evaluations. Quality on feasible problems is benchmarks/quality.py's constrained family.

    python benchmarks/infeasibility.py [--seeds 5] [--budget 30] [--methods config,cei] [--parallel 2]
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import markdown_table
from benchmarks.problems import Problem, problem


def unreachable(name: str) -> Problem:
    """A constrained problem whose feasible set is empty."""
    if name == "gramacy":
        base = problem("gramacy", 0)

        def gramacy(p: dict[str, Any]) -> dict[str, float]:
            metrics = base.evaluate(p)
            return {"f": metrics["f"], "slack0": metrics["slack0"] - 3.0}

        return replace(base, evaluate=gramacy, constraints=[{"name": "slack0", "op": ">=", "bound": 0.0}])
    base = problem("hartmann6c", 0)

    def hartmann(p: dict[str, Any]) -> dict[str, float]:
        return {"f": base.evaluate(p)["f"], "sum": sum(float(v) for v in p.values())}

    return replace(base, evaluate=hartmann, constraints=[{"name": "sum", "op": ">=", "bound": 6.5}])


def declared_after(task: tuple[str, str, int, int]) -> int | None:
    """Evaluations seen when the study was first declared likely infeasible (None: never within the budget)."""
    name, method, seed, budget = task
    import torch

    from service.domain.spec import StudySpec
    from service.domain.trial import TrialState, TrialView
    from service.engines import resolve_engine
    from service.engines.base import SuggestRequest

    torch.set_num_threads(1)
    instance = unreachable(name)
    spec = StudySpec.model_validate(instance.spec("constrained", {"method": method}, seed))
    resolved = resolve_engine(spec)
    trials: list[TrialView] = []
    memory: dict[str, Any] = {}
    for number in range(budget):
        suggested = resolved.engine.suggest(
            SuggestRequest(spec, resolved.options, 1, seed, number, trials=trials, memory=dict(memory))
        )
        (params,) = suggested.params
        memory = suggested.memory if suggested.memory is not None else memory
        if (suggested.status or {}).get("likely_infeasible"):
            return number
        trials.append(TrialView(number, params, TrialState.COMPLETED, instance.evaluate(params)))
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--methods", default="config,cei")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (one CPU thread each)")
    args = parser.parse_args()
    tasks = [
        (p, m, s, args.budget)
        for p in ("gramacy", "hartmann6")
        for m in args.methods.split(",")
        for s in range(args.seeds)
    ]
    with ProcessPoolExecutor(args.parallel) as pool:
        results = list(pool.map(declared_after, tasks))
    rows = []
    for p in ("gramacy", "hartmann6"):
        for m in args.methods.split(","):
            seen = [r for (tp, tm, _, _), r in zip(tasks, results, strict=True) if (tp, tm) == (p, m)]
            declared = sorted(r for r in seen if r is not None)
            rows.append([p, m, f"{len(declared)}/{len(seen)}", ", ".join(map(str, declared)) or "-"])
    print(f"likely_infeasible declarations within {args.budget} evaluations")
    print(markdown_table(["problem", "method", "declared", "after evaluations"], rows))


if __name__ == "__main__":
    main()
