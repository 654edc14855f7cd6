"""Optimization quality by problem family: the service's default engines against Ax, Optuna and random search.

Families and problems are in benchmarks/problems.py (synthetic functions behind random rotations and shifts,
mixed integer/categorical problems, BoTorch's constrained and multi-objective problems, scikit-learn tunings);
methods in benchmarks/methods.py (`asktell` is the default engine `auto` picks, run in-process as a worker
runs it; `asktell:ENGINE[:key=value+...]` for ablations; `ax`, `optuna-gp`, `tpe` at their library defaults).

Score: each run's best value after b evaluations (best feasible value; hypervolume for several objectives) on
a 0 to 1 scale per problem instance, 0 being the median of `--random-repeats` random-search runs on the same
instance after b evaluations and 1 the optimum (the best value any run found where it is unknown or better,
as on PressureVessel, whose published optimum is for integer-valued thicknesses). A run with
no feasible point counts as the worst feasible value seen on that problem. Seeds pair the methods: seed s is
the same problem instance (rotation, shift) for every method.

The report gives, per family and budget, each method's mean score, the paired difference of `asktell` to each
peer (mean ± s.e. over (problem, seed) pairs, and wins/losses), seconds per suggestion, per-problem tables, and
an ablation table when `asktell:` variants ran.

    python benchmarks/quality.py [--families synthetic,mixed,constrained,multiobjective,tabular]
        [--problems NAME,...] [--methods asktell,ax,optuna-gp,tpe] [--seeds 5] [--budget 80]
        [--checkpoints 20,40,80] [--random-repeats 10] [--parallel 2] [--results runs.jsonl]
        [--include peers.jsonl ...] [--report-only]

With --results every finished run is appended as it ends and runs already there are not repeated, so an
interrupted benchmark resumes, and methods added later are compared against the same peer runs.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import sys
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import RunLog, markdown_table
from benchmarks.methods import runner
from benchmarks.problems import FAMILIES, family_of, problem

warnings.filterwarnings("ignore")
DEFAULT = "asktell"
PEERS = ("ax", "optuna-gp", "tpe")
RANDOM_STRIDE = 1000  # random run r of instance s has seed s + r * RANDOM_STRIDE


@functools.cache
def describe(name: str) -> Any:
    """Seed 0's instance, for what every instance of a problem shares (family, objectives, optimum)."""
    return problem(name, 0)


def instance_seed(name: str, seed: int) -> int:
    return seed % RANDOM_STRIDE if describe(name).seeded else 0


def run_task(task: tuple[str, str, int, int]) -> dict[str, Any]:
    name, method, seed, budget = task
    import torch

    torch.set_num_threads(1)
    instance = problem(name, seed % RANDOM_STRIDE)
    started = time.perf_counter()
    run = runner(method)(instance, method, seed, budget)
    objective = instance.objectives[0]
    sign = 1.0 if objective["goal"] == "minimize" else -1.0
    feasible = [instance.feasible(m) for m in run.evaluations]
    rungs = Counter(str(i.get("rung")) for i in run.info)
    return {
        "problem": name,
        "family": instance.family,
        "method": method,
        "seed": seed,
        "budget": budget,
        "progress": instance.progress(run.evaluations),
        "feasible": feasible,
        # objective values oriented for minimization, for the worst-feasible penalty and unknown optima
        "oriented": [sign * m[objective["name"]] for m in run.evaluations],
        "seconds": run.seconds,
        "rungs": dict(rungs),
        "wall": time.perf_counter() - started,
        "params": run.params,
    }


class Scores:
    """Normalized scores of every run at any budget up to its length. Of runs repeated with several budgets (a
    seeded run's first b evaluations do not depend on its budget) the longest counts."""

    def __init__(self, runs: Iterable[dict[str, Any]]) -> None:
        longest: dict[tuple[str, str, int], dict[str, Any]] = {}
        for run in runs:
            key = (run["problem"], run["method"], run["seed"])
            if key not in longest or run["budget"] > longest[key]["budget"]:
                longest[key] = run
        self.runs = list(longest.values())
        self.by_problem: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for run in self.runs:
            self.by_problem[run["problem"]].append(run)

    def _value(self, run: dict[str, Any], b: int, worst: float, multi: bool) -> float:
        """The run's progress after b evaluations, oriented so that lower is better."""
        value = run["progress"][b - 1]
        if multi:
            return -float(value or 0.0)
        if value is None:
            return worst
        return float(min(v for v, f in zip(run["oriented"][:b], run["feasible"][:b], strict=True) if f))

    def score(self, name: str, method: str, seed: int, b: int) -> float | None:
        runs = self.by_problem[name]
        multi = describe(name).multiobjective
        instance = instance_seed(name, seed)
        mine = [r for r in runs if r["method"] == method and r["seed"] == seed and r["budget"] >= b]
        anchors = [
            r
            for r in runs
            if r["method"] == "random" and instance_seed(name, r["seed"]) == instance and r["budget"] >= b
        ]
        if not mine or not anchors:
            return None
        feasible_values = [v for r in runs for v, f in zip(r["oriented"], r["feasible"], strict=True) if f]
        worst = max(feasible_values) if feasible_values else 0.0
        # The optimum, or the best any run found where that is better (PressureVessel's published optimum is
        # for integer-valued thicknesses; the benchmark's continuous variables reach below it) or unknown.
        same = [r for r in runs if instance_seed(name, r["seed"]) == instance]
        best = min((self._value(r, len(r["progress"]), worst, multi) for r in same), default=math.inf)
        optimum = describe(name).optimum
        if optimum is not None:
            sign = 1.0 if describe(name).objectives[0]["goal"] == "minimize" else -1.0
            best = min(best, -optimum if multi else sign * optimum)
        anchor = statistics.median(self._value(r, b, worst, multi) for r in anchors)
        value = self._value(mine[0], b, worst, multi)
        if anchor - best <= 1e-12 * max(1.0, abs(best)):
            return 1.0 if value <= best else 0.0
        return (anchor - value) / (anchor - best)

    def seeds(self, name: str, method: str) -> list[int]:
        return sorted(r["seed"] for r in self.by_problem[name] if r["method"] == method)


def mean_se(values: list[float]) -> str:
    if not values:
        return "-"
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {se:.2f}"


def report(log: RunLog, problems: list[str], methods: list[str], checkpoints: list[int], seeds: int) -> None:
    scores = Scores(log.runs.values())
    families = [f for f in FAMILIES if any(family_of(p) == f for p in problems)]
    shown = [m for m in methods if m != "random"]

    def paired(family: str, method: str, b: int) -> dict[tuple[str, int], float]:
        out = {}
        for name in problems:
            if family_of(name) != family:
                continue
            for seed in range(seeds):
                value = scores.score(name, method, seed, b)
                if value is not None:
                    out[(name, seed)] = value
        return out

    print("\n## Mean normalized score by family (0 = random search's median, 1 = optimum), ± s.e.")
    rows = []
    for family in families:
        for b in checkpoints:
            cells = [mean_se(list(paired(family, m, b).values())) for m in shown]
            rows.append([family, b, *cells])
    for b in checkpoints:
        cells = []
        for m in shown:
            means = [statistics.mean(v) for f in families if (v := list(paired(f, m, b).values()))]
            cells.append(f"{statistics.mean(means):.2f}" if len(means) == len(families) else "-")
        rows.append(["mean of families", b, *cells])
    print(markdown_table(["family", "budget", *shown], rows))

    default = next((m for m in shown if m == DEFAULT), None)
    if default:
        print(f"\n## {default} minus each peer, paired by problem and seed: mean ± s.e. (wins/losses)")
        rows = []
        for family in families:
            for b in checkpoints:
                mine = paired(family, default, b)
                cells = []
                for peer in [m for m in shown if m != default]:
                    theirs = paired(family, peer, b)
                    keys = sorted(set(mine) & set(theirs))
                    diffs = [mine[k] - theirs[k] for k in keys]
                    wins = sum(d > 1e-9 for d in diffs)
                    losses = sum(d < -1e-9 for d in diffs)
                    cells.append(f"{mean_se(diffs)} ({wins}/{losses})" if diffs else "-")
                rows.append([family, b, *cells])
        print(markdown_table(["family", "budget", *[m for m in shown if m != default]], rows))

    print("\n## Seconds per suggestion: mean (median; max)")
    rows = []
    for family in families:
        cells = []
        for m in shown:
            times = [
                t
                for r in scores.runs
                if r["family"] == family and r["method"] == m and r["problem"] in problems
                for t in r["seconds"]
            ]
            cells.append(
                f"{statistics.mean(times):.2f} ({statistics.median(times):.2f}; {max(times):.1f})" if times else "-"
            )
        rows.append([family, *cells])
    print(markdown_table(["family", *shown], rows))

    variants = [m for m in shown if m.startswith(DEFAULT + ":")]
    if variants and default:
        print(f"\n## Ablation: each variant minus {default}, paired, mean over the family's problems and seeds")
        rows = []
        for variant in variants:
            for family in families:
                cells = []
                for b in checkpoints:
                    mine = paired(family, variant, b)
                    base = paired(family, default, b)
                    keys = sorted(set(mine) & set(base))
                    cells.append(mean_se([mine[k] - base[k] for k in keys]) if keys else "-")
                rows.append([variant, family, *cells])
        print(markdown_table(["variant", "family", *[f"@{b}" for b in checkpoints]], rows))

    print("\n## By problem: mean normalized score at each budget (seeds)")
    for family in families:
        rows = []
        for name in [p for p in problems if family_of(p) == family]:
            for m in shown:
                cells = []
                for b in checkpoints:
                    values = [v for s in range(seeds) if (v := scores.score(name, m, s, b)) is not None]
                    cells.append(f"{statistics.mean(values):.2f}" if values else "-")
                n = len([s for s in scores.seeds(name, m) if s < seeds])
                rows.append([name, m, n, *cells])
        print(f"\n### {family}")
        print(markdown_table(["problem", "method", "seeds", *[f"@{b}" for b in checkpoints]], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--problems", help="problem names (default: every problem of the families)")
    parser.add_argument("--methods", default=",".join([DEFAULT, *PEERS]))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=80)
    parser.add_argument("--checkpoints", default="20,40,80")
    parser.add_argument("--random-repeats", type=int, default=10)
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (one CPU thread each)")
    parser.add_argument("--results", type=Path, help="JSON-lines file that keeps finished runs (resumable)")
    parser.add_argument(
        "--include",
        type=Path,
        nargs="*",
        default=[],
        help="more JSON-lines files whose runs count (and are not repeated), e.g. the peers' runs",
    )
    parser.add_argument("--report-only", action="store_true", help="print the report of the runs in --results")
    args = parser.parse_args()
    families = args.families.split(",")
    problems = args.problems.split(",") if args.problems else [p for f in families for p in FAMILIES[f][1]]
    methods = [m for m in args.methods.split(",") if m != "random"]
    checkpoints = [int(c) for c in args.checkpoints.split(",") if int(c) <= args.budget]

    log = RunLog(args.results, ("problem", "method", "seed", "budget"))
    for path in args.include:
        for key, run in RunLog(path, log.key_fields).runs.items():
            log.runs.setdefault(key, run)
    tasks: list[tuple[str, str, int, int]] = []
    for name in problems:
        instances = range(args.seeds) if describe(name).seeded else range(1)
        tasks += [
            (name, "random", s + r * RANDOM_STRIDE, args.budget) for s in instances for r in range(args.random_repeats)
        ]
    tasks += [(name, m, s, args.budget) for s in range(args.seeds) for name in problems for m in methods]
    longest: dict[tuple[str, str, int], int] = {}
    for name, method, seed, budget in log.runs:
        longest[(name, method, seed)] = max(budget, longest.get((name, method, seed), 0))
    tasks = [t for t in tasks if longest.get(t[:3], 0) < t[3]]  # a longer run of the same seed covers it
    if tasks and not args.report_only:
        with ProcessPoolExecutor(args.parallel) as pool:
            for run in pool.map(run_task, tasks):
                log.add(run)
                last = run["progress"][-1]
                print(
                    f"{run['problem']:22s} {run['method']:24s} seed {run['seed']:5d}: "
                    f"{'-' if last is None else f'{last:.5g}'} ({sum(run['seconds']):.0f} s suggesting)",
                    flush=True,
                )
    report(log, problems, [*methods, "random"], checkpoints, args.seeds)


if __name__ == "__main__":
    main()
