"""Learning curves: freeze_thaw (rules promote, promote_capped, entropy and ei; and promote with its warm-up runs
trained to the max unjudged, `warmup_to_max: true`) and asha_bo (its default, `log_ei`, and BOHB's `top_rung`) against
asha, gp with median stopping, and random with full training.

Four problems, budget counted in training epochs consumed (20 x the max epochs), 1 and 4 asynchronous workers:

- `synthetic`: curves y(t) = a(x) + (1 - a(x)) * exp(-r(x) * t) + noise, with the best asymptote far from the
  fastest starter (crossing curves); x in [0, 1]^3, 27 epochs.
- `sgd`: scikit-learn's SGDClassifier (log loss, invscaling learning rate) trained with partial_fit on the bundled
  digits data, validation error per epoch, over alpha, eta0 and power_t; 27 epochs. The curves are computed once
  for 400 Sobol configurations (benchmarks/data/sgd_digits_curves.json, about a minute; committed) and a suggested
  configuration trains as its nearest table entry no earlier trial took, so runs are cheap (a model that keeps
  proposing points next to its best would otherwise train one table entry over and over). The validation set is
  a 30% hold-out of 540 samples, so errors come in steps of 1/540 and the best entries are one or two samples
  apart: only 2 of the 400 reach the best final error, 15/540.
- `sgd-cv`: the same configurations and training, with 5-fold cross-validated error (each fold trains its own
  model; the error counts the mistakes on all 1,797 samples, steps of 1/1797): a finer measure of the same
  problem, where finding the best configuration is less a matter of which of a few near-ties a run hits
  (benchmarks/data/sgd_digits_cv_curves.json, about 7 minutes; committed).
- `mlp-cv`: scikit-learn's MLPClassifier (one hidden layer, adam, minibatches of 64) on the same data, over
  learning_rate_init, alpha and the hidden width (8 to 256, all log-scaled); 27 epochs, 5-fold cross-validated
  error as `sgd-cv`, 400 Sobol configurations (benchmarks/data/mlp_digits_cv_curves.json, about 6 minutes;
  committed). Small learning rates start slowly and large ones plateau early or bounce, so curves cross.
- `mlp-reg-cv`: scikit-learn's MLPRegressor with the same parameters on the diabetes data (442 samples), 5-fold
  cross-validated, the error being 1 - R² of the out-of-fold predictions (benchmarks/data/mlp_diabetes_cv_curves.json,
  about 2 minutes; committed). Most configurations overfit: the error of 62% of them is lowest before the last
  epoch, and the best final error, 0.483, is 0.08 below the median's.

Peers, one worker, each at its library defaults (`ax`, `optuna-gp`, `tpe`): a configuration trains epoch by epoch,
the peer hears each epoch's error and may stop the run there (Ax's `Client` with the early-stopping strategy it
chooses itself, a percentile rule; Optuna's `create_study` with its default median pruner), and the next starts.
`asktell` is the service's default for such a study (engine `auto`).

The service's rules are simulated in-process exactly as `core` applies them (no database): a trial trains to its
budget and pauses there (below the fidelity's max), the engine's stopping rule may stop it, asks resume what the
engine chooses (`resumes` for asha, a worker's `plan` for freeze_thaw), and a trial at the max is told. Each
worker trains one epoch per time unit, so with 4 workers completions interleave.

    python benchmarks/learning_curves.py [--seeds 5] [--workers 1,4]
        [--problems synthetic,sgd,sgd-cv,mlp-cv,mlp-reg-cv]
        [--methods freeze_thaw-promote,freeze_thaw-promote-capped,freeze_thaw-promote-warmup-to-max,
                   freeze_thaw-entropy,freeze_thaw-ei,freeze_thaw-promote-center,asha,asha_bo,asha_bo-log_ei,
                   asha_bo-top_rung,gp-median,random,asktell,ax,optuna-gp,tpe]
        [--parallel 2] [--results runs.jsonl] [--report]

(`--report` prints the tables of what --results holds and runs nothing.)

Reported: best final validation error (a trial trained to the max epochs) at the end, ± s.e.; how many seeds reached
asha's final error (its mean over seeds at the end of the budget), and the epochs that took (median over seeds, a
seed that never reached it counted as never; "-" when most never did), also as a share of the budget, which is what
asha spent on it; stricter, seed by seed: how many reached the final error asha found with the same seed, and the
median share of the epochs asha itself needed to find it; configurations started and runs trained to the max (mean
over seeds); and engine seconds per decision (an ask, or a report heard).

Then one table for all cases, on the seeds every method ran: each method's mean best final error at 25, 50, 75 and
100% of the budget, the share of the budget at which the median seed reached asha's final error, and whether that is
within 60% (of the budget, the epochs asha spent on it); and, per method, the cases where it was at or below asha,
and at or below gp with median stopping, at every one of those shares.

Last, with one worker and `random` among the methods, the quality benchmark's scale (benchmarks/quality.py): at each
share of the budget, 0 is random search's median best final error and 1 the problem's optimum (the best table
entry's final error; the synthetic curve's minimum), per problem and over the family, and `asktell` minus each
other method, paired by problem and seed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks.harness import RunLog, markdown_table, mean_and_error
from benchmarks.methods import ax_client, optuna_params

warnings.filterwarnings("ignore")
MAX_EPOCHS = 27
BUDGET_FACTOR = 20
DATA = Path(__file__).resolve().parent / "data"
SGD_PARAMS = [
    {"name": "alpha", "type": "float", "low": 1e-7, "high": 1e-1, "log": True},
    {"name": "eta0", "type": "float", "low": 1e-4, "high": 1.0, "log": True},
    {"name": "power_t", "type": "float", "low": 0.05, "high": 0.95},
]
MLP_PARAMS = [
    {"name": "learning_rate_init", "type": "float", "low": 1e-4, "high": 0.3, "log": True},
    {"name": "alpha", "type": "float", "low": 1e-6, "high": 1e-1, "log": True},
    {"name": "width", "type": "float", "low": 8, "high": 256, "log": True},
]
FAMILY_PARAMS = {"sgd": SGD_PARAMS, "mlp": MLP_PARAMS, "mlp-reg": MLP_PARAMS}


class Table(NamedTuple):
    """A real-curve problem's precomputed table: its file, the cross-validation folds (None: the 30% hold-out) and
    the model family trained (a key of FAMILY_PARAMS)."""

    path: Path
    folds: int | None
    family: str


TABLES = {
    "sgd": Table(DATA / "sgd_digits_curves.json", None, "sgd"),
    "sgd-cv": Table(DATA / "sgd_digits_cv_curves.json", 5, "sgd"),
    "mlp-cv": Table(DATA / "mlp_digits_cv_curves.json", 5, "mlp"),
    "mlp-reg-cv": Table(DATA / "mlp_diabetes_cv_curves.json", 5, "mlp-reg"),
}
METHODS = {
    "freeze_thaw-promote": ("freeze_thaw", {"rule": "promote"}),
    "freeze_thaw-promote-center": ("freeze_thaw", {"rule": "promote", "center_point": True}),
    "freeze_thaw-promote-capped": ("freeze_thaw", {"rule": "promote_capped"}),
    "freeze_thaw-promote-warmup-to-max": ("freeze_thaw", {"rule": "promote", "warmup_to_max": True}),
    "freeze_thaw-entropy": ("freeze_thaw", {"rule": "entropy"}),
    "freeze_thaw-ei": ("freeze_thaw", {"rule": "ei"}),
    "asha": ("asha", {}),
    "asha_bo": ("asha_bo", {}),
    "asha_bo-log_ei": ("asha_bo", {"acquisition": "log_ei"}),
    "asha_bo-top_rung": ("asha_bo", {"model": "top_rung"}),
    "gp-median": ("gp", {"stopping": "median"}),
    "random": ("random", {}),
    "asktell": ("auto", {}),
}
PEERS = ("ax", "optuna-gp", "tpe")  # each at its library defaults, one worker: see run_peer


class Problem:
    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        self.noise = np.random.default_rng(seed + 1000)
        if name == "synthetic":
            self.params = [{"name": f"x{i}", "type": "float", "low": 0.0, "high": 1.0} for i in range(3)]
        else:
            self.params = FAMILY_PARAMS[TABLES[name].family]
            table = curve_table(name)
            self.units = np.array(table["units"])
            self.curves = np.array(table["errors"])
            self.taken: set[int] = set()

    def spec(self, engine: str, options: dict[str, Any]) -> dict[str, Any]:
        return {
            "params": self.params,
            "objectives": [{"name": "error", "goal": "minimize"}],
            "fidelity": {"name": "epoch", "min": 1, "max": MAX_EPOCHS},
            "engine": engine,
            "engine_options": options,
        }

    def place(self, unit: np.ndarray) -> np.ndarray:
        """Where a new trial trains. On a table problem, the nearest table entry no other trial took: the table is
        a coarse sample of a continuous space, where two nearby configurations are two training runs with their
        own validation errors, not one run counted twice (a cell is about 0.14 wide on each unit axis)."""
        if self.name == "synthetic":
            return unit
        distance = np.abs(self.units - unit).max(axis=1)
        distance[list(self.taken)] = np.inf
        nearest = int(distance.argmin())
        self.taken.add(nearest)
        return self.units[nearest]

    def value(self, unit: np.ndarray, epoch: int) -> float:
        if self.name == "synthetic":
            return synthetic_curve(unit, epoch) + float(self.noise.normal(0, 0.005))
        nearest = int(np.abs(self.units - unit).max(axis=1).argmin())
        return float(self.curves[nearest][epoch - 1])


def synthetic_curve(unit: np.ndarray, epoch: float) -> float:
    """The synthetic problem's noise-free validation error after `epoch` epochs at a point of the unit cube."""
    a = 0.05 + 0.6 * (unit[0] - 0.3) ** 2 + 0.4 * (unit[1] - 0.6) ** 2 + 0.1 * unit[2]
    rate = 0.12 + 0.6 * unit[0] * unit[2]  # the best asymptote (x0 = 0.3) learns slower than large x0
    return float(a + (1 - a) * math.exp(-rate * epoch))


def optimum(problem: str) -> float:
    """The lowest final error the problem holds: the best table entry's, or the synthetic curve's minimum at the
    max epochs (a grid, then a local search from its best point)."""
    if problem != "synthetic":
        return float(np.array(curve_table(problem)["errors"])[:, -1].min())
    from scipy.optimize import minimize

    axis = np.linspace(0, 1, 21)
    grid = np.stack(np.meshgrid(axis, axis, axis), axis=-1).reshape(-1, 3)
    start = min(grid, key=lambda u: synthetic_curve(u, MAX_EPOCHS))
    found = minimize(lambda u: synthetic_curve(u, MAX_EPOCHS), start, bounds=[(0, 1)] * 3, method="L-BFGS-B")
    return float(found.fun)


def curve_table(problem: str) -> dict[str, Any]:
    """The problem's committed curve table, built (and written) first if it is missing."""
    path, folds, family = TABLES[problem]
    if path.exists():
        loaded: dict[str, Any] = json.loads(path.read_text())
        return loaded
    print(f"computing the {problem} learning-curve table once...", flush=True)
    return build_table(path, folds, family)


def _classifier(family: str, unit: np.ndarray) -> Any:
    """The scikit-learn model a table entry trains: SGDClassifier (log loss, invscaling learning rate) or a
    one-hidden-layer MLPClassifier (adam, minibatches of 64), at a point of the unit cube."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    if family == "sgd":  # decoded as when its tables were built, so they rebuild byte for byte
        alpha, eta0, power_t = 10 ** (-7 + 6 * unit[0]), 10 ** (-4 + 4 * unit[1]), 0.05 + 0.9 * unit[2]
        return SGDClassifier(
            loss="log_loss", alpha=alpha, learning_rate="invscaling", eta0=eta0, power_t=power_t, random_state=0
        )
    rate, alpha, width = (p["low"] * (p["high"] / p["low"]) ** u for p, u in zip(MLP_PARAMS, unit, strict=True))
    mlp = MLPRegressor if family == "mlp-reg" else MLPClassifier
    return mlp(hidden_layer_sizes=(round(width),), learning_rate_init=rate, alpha=alpha, batch_size=64, random_state=0)


def build_table(path: Path, folds: int | None, family: str, count: int = 400) -> dict[str, Any]:
    """Train the `family`'s model one epoch at a time (partial_fit) for 27 epochs, for `count` Sobol
    configurations, and cache the validation error per epoch at `path`. The classifiers learn scikit-learn's digits:
    the error rate on a stratified 30% hold-out when `folds` is None, else the mistakes of `folds` models, each
    validated on its own fold, over all samples. The regressor (`mlp-reg`) learns the diabetes data, standardized
    on each training fold, and its error is the folds' squared errors over all samples divided by the targets'
    total sum of squares (1 - R² of the out-of-fold predictions)."""
    from scipy.stats import qmc
    from sklearn.datasets import load_diabetes, load_digits
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
    from sklearn.preprocessing import StandardScaler

    regression = family == "mlp-reg"
    x, y = load_diabetes(return_X_y=True) if regression else load_digits(return_X_y=True)
    if folds is None:
        splits = [train_test_split(np.arange(len(y)), test_size=0.3, random_state=0, stratify=y)]
    elif regression:
        splits = list(KFold(folds, shuffle=True, random_state=0).split(x))
    else:
        splits = list(StratifiedKFold(folds, shuffle=True, random_state=0).split(x, y))
    total = float(((y - y.mean()) ** 2).sum()) if regression else float(sum(len(valid) for _, valid in splits))
    units = qmc.Sobol(3, scramble=True, seed=0).random(count)
    errors = []
    classes = np.unique(y)
    for u in units:
        mistakes = np.zeros(MAX_EPOCHS)
        for train, valid in splits:
            scaler = StandardScaler().fit(x[train])
            x_train, x_valid = scaler.transform(x[train]), scaler.transform(x[valid])
            model = _classifier(family, u)
            center, scale = y[train].mean(), y[train].std()
            for epoch in range(MAX_EPOCHS):
                if regression:
                    model.partial_fit(x_train, (y[train] - center) / scale)
                    predicted = model.predict(x_valid) * scale + center
                    mistakes[epoch] += float(((predicted - y[valid]) ** 2).sum())
                else:
                    model.partial_fit(x_train, y[train], classes=classes)
                    mistakes[epoch] += (model.predict(x_valid) != y[valid]).sum()
        errors.append([round(float(m) / total, 5) for m in mistakes])
    table = {"units": units.round(6).tolist(), "errors": errors}
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(table))
    return table


@dataclass
class SimTrial:
    number: int
    params: dict[str, Any]
    unit: np.ndarray
    budget: float
    state: str = "active"
    steps: list[tuple[int, float]] = field(default_factory=list)


class PeerStudy:
    """A peer at its library defaults, one trial at a time: it suggests a configuration, hears the validation error
    after each epoch and says whether to stop the run there. Ax's `Client` picks its default early-stopping
    strategy (a percentile rule) when asked `should_stop_trial_early`; Optuna's `create_study` comes with its
    default pruner (the median rule) for GPSampler and TPESampler alike."""

    def __init__(self, method: str, params: list[dict[str, Any]], seed: int) -> None:
        self.method, self.params = method, params
        if method == "ax":
            self.client = ax_client(params, seed)
            self.client.configure_optimization(objective="-error")
        else:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            sampler = optuna.samplers.TPESampler(seed=seed) if method == "tpe" else optuna.samplers.GPSampler(seed=seed)
            self.study = optuna.create_study(sampler=sampler, direction="minimize")

    def ask(self) -> tuple[Any, dict[str, Any]]:
        """A new configuration and the peer's handle on it."""
        if self.method == "ax":
            ((index, params),) = self.client.get_next_trials(max_trials=1).items()
            return index, dict(params)
        trial = self.study.ask()
        return trial, optuna_params(self.params, trial)

    def report(self, handle: Any, epoch: int, error: float) -> bool:
        """Hear an intermediate value; True where the peer stops the run (and has marked it stopped)."""
        if self.method == "ax":
            self.client.attach_data(handle, {"error": error}, progression=epoch)
            if self.client.should_stop_trial_early(handle):
                self.client.mark_trial_early_stopped(handle)
                return True
            return False
        import optuna

        handle.report(error, epoch)
        if handle.should_prune():
            self.study.tell(handle, state=optuna.trial.TrialState.PRUNED)
            return True
        return False

    def complete(self, handle: Any, epoch: int, error: float) -> None:
        if self.method == "ax":
            self.client.complete_trial(handle, {"error": error}, progression=epoch)
        else:
            self.study.tell(handle, error)


def run_peer(problem: Problem, method: str, seed: int) -> dict[str, Any]:
    """One worker's run of a peer: each configuration trains epoch by epoch until the peer stops it or it reaches
    the max epochs, and the next starts; the budget counts epochs as for the service's engines."""
    from service.domain.spec import StudySpec
    from service.engines.encoding import to_unit

    spec = StudySpec.model_validate(problem.spec("random", {}))
    peer = PeerStudy(method, problem.params, seed)
    budget_epochs = BUDGET_FACTOR * MAX_EPOCHS
    used, best_final = 0, math.inf
    history: list[tuple[int, float]] = []
    ask_seconds: list[float] = []
    report_seconds: list[float] = []
    trained: list[int] = []
    completed = 0
    while used < budget_epochs:
        started = time.perf_counter()
        handle, params = peer.ask()
        ask_seconds.append(time.perf_counter() - started)
        unit = problem.place(to_unit(spec, [params])[0])
        trained.append(0)
        for epoch in range(1, MAX_EPOCHS + 1):
            if used >= budget_epochs:
                break
            error = problem.value(unit, epoch)
            used += 1
            trained[-1] = epoch
            if epoch == MAX_EPOCHS:
                peer.complete(handle, epoch, error)
                completed += 1
                if error < best_final:
                    best_final = error
                    history.append((used, best_final))
                break
            started = time.perf_counter()
            stopped = peer.report(handle, epoch, error)
            report_seconds.append(time.perf_counter() - started)
            if stopped:
                break
    return {
        "history": history,
        "final": best_final if math.isfinite(best_final) else None,
        "epochs": used,
        **_timings(ask_seconds, report_seconds),
        "configs": len(trained),
        "completed": completed,
        "epochs_per_config": sorted(trained, reverse=True),
    }


def run_task(task: tuple[str, str, int, int]) -> dict[str, Any]:
    import torch

    from service.domain.spec import StudySpec
    from service.domain.trial import Measurement, TrialState, TrialView
    from service.engines import resolve_engine
    from service.engines.base import Action, NewRun, SuggestRequest
    from service.engines.encoding import to_unit

    torch.set_num_threads(1)
    problem_name, method, seed, workers = task
    problem = Problem(problem_name, seed)
    if method in PEERS:
        return {"problem": problem_name, "method": method, "seed": seed, "workers": workers} | run_peer(
            problem, method, seed
        )
    engine_name, options = METHODS[method]
    spec = StudySpec.model_validate(problem.spec(engine_name, options))
    resolved = resolve_engine(spec)
    engine, opts = resolved.engine, resolved.options
    trials: dict[int, SimTrial] = {}
    memory: dict[str, Any] = {}
    budget_epochs = BUDGET_FACTOR * MAX_EPOCHS
    used, best_final = 0, math.inf
    history: list[tuple[int, float]] = []  # (epochs used, best final error) when it improves
    ask_seconds: list[float] = []
    report_seconds: list[float] = []
    holding: list[int | None] = [None] * workers

    def views() -> list[TrialView]:
        state = {
            "active": TrialState.ACTIVE,
            "paused": TrialState.PAUSED,
            "completed": TrialState.COMPLETED,
            "stopped": TrialState.STOPPED,
        }
        return [
            TrialView(
                t.number,
                t.params,
                state[t.state],
                {"error": t.steps[-1][1]} if t.state == "completed" else None,
                tuple(Measurement(float(e), {"error": v}) for e, v in t.steps),
            )
            for t in trials.values()
        ]

    def new_trial(params: dict[str, Any], budget: float) -> int:
        number = len(trials)
        trials[number] = SimTrial(number, params, problem.place(to_unit(spec, [params])[0]), budget)
        return number

    def ask() -> int:
        started = time.perf_counter()
        try:
            if engine.resumes_paused:
                for choice in engine.resumes(spec, opts, views(), 1):
                    trial = trials[choice.number]
                    trial.state, trial.budget = "active", choice.budget
                    return trial.number
            finished = sum(t.state in ("completed", "stopped") for t in trials.values())
            request = SuggestRequest(spec, opts, 1, seed, len(trials), trials=views(), memory=dict(memory))
            if engine.plans_runs and engine.needs_worker(spec, opts, finished, created=len(trials)):
                planned = engine.plan(request)
                (choice,) = planned.runs
                memory.update(planned.memory or {})
                if isinstance(choice, NewRun):
                    return new_trial(choice.params, choice.budget)
                trial = trials[choice.number]
                trial.state, trial.budget = "active", choice.budget
                return trial.number
            suggested = engine.suggest(request)
            (params,) = suggested.params
            memory.update(suggested.memory or {})
            return new_trial(params, engine.first_budget(spec, opts) or MAX_EPOCHS)
        finally:
            ask_seconds.append(time.perf_counter() - started)

    while used < budget_epochs:
        for w in range(workers):
            if holding[w] is None:
                holding[w] = ask()
        for w in range(workers):  # every worker trains one epoch of its trial
            if used >= budget_epochs:
                break
            trial = trials[holding[w]]  # type: ignore[index]
            epoch = (trial.steps[-1][0] if trial.steps else 0) + 1
            trial.steps.append((epoch, problem.value(trial.unit, epoch)))
            used += 1
            decision = None
            if epoch < MAX_EPOCHS:
                current = views()
                started = time.perf_counter()
                decision = engine.decide(spec, opts, next(v for v in current if v.number == trial.number), current)
                report_seconds.append(time.perf_counter() - started)
            if epoch >= MAX_EPOCHS:
                trial.state = "completed"
                if trial.steps[-1][1] < best_final:
                    best_final = trial.steps[-1][1]
                    history.append((used, best_final))
            elif decision is not None and decision.action is Action.STOP:
                trial.state = "stopped"
            elif epoch >= trial.budget:
                trial.state = "paused"
            else:
                continue
            holding[w] = None
    return {
        "problem": problem_name,
        "method": method,
        "seed": seed,
        "workers": workers,
        "history": history,
        "final": best_final if math.isfinite(best_final) else None,
        "epochs": used,
        **_timings(ask_seconds, report_seconds),
        "configs": len(trials),
        "completed": sum(t.state == "completed" for t in trials.values()),
        "epochs_per_config": sorted((len(t.steps) for t in trials.values()), reverse=True),
    }


def _timings(ask_seconds: list[float], report_seconds: list[float]) -> dict[str, float | int]:
    """Mean engine seconds per ask (a new configuration or a resumed run), per report (an intermediate value heard,
    and whether to stop there), and per decision of either kind; a library that decides little when it hears a
    value has a cheap mean decision even where its asks are slow, so the three are kept apart."""
    decisions = ask_seconds + report_seconds
    return {
        "seconds_per_ask": float(np.mean(ask_seconds)) if ask_seconds else 0.0,
        "seconds_per_report": float(np.mean(report_seconds)) if report_seconds else 0.0,
        "seconds_per_decision": float(np.mean(decisions)) if decisions else 0.0,
        "decisions": len(decisions),
        "asks": len(ask_seconds),
    }


def _epochs_to_reach(run: dict[str, Any], target: float) -> int | None:
    return next((used for used, best in run["history"] if best <= target + 1e-12), None)


def _best_by(run: dict[str, Any], epochs: float) -> float | None:
    """The best final error a run had found once it had used `epochs` (None: no run trained to the max yet)."""
    found = [best for used, best in run["history"] if used <= epochs]
    return min(found) if found else None


BUDGET_SHARES = (0.25, 0.5, 0.75, 1.0)
REACH_SHARE = 0.6  # the target: asha's final error within this share of asha's epochs


def budget_table(
    runs: list[dict[str, Any]], problems: list[str], worker_counts: list[int], methods: list[str], seeds: int
) -> str:
    """The issue's table: per problem and worker count, on the seeds every method ran, each method's mean best final
    error at 25, 50, 75 and 100% of the budget (a seed with no run at the max yet is left out of that mean, and the
    count says so); whether the median seed reached asha's final error (its mean over seeds) within 60% of the
    budget, which is the epochs asha spent; and, per method, in how many cases it was at or below asha and at or
    below gp with median stopping at every budget share."""
    budget = BUDGET_FACTOR * MAX_EPOCHS
    rows: list[list[object]] = []
    tally: dict[str, list[int]] = {m: [0, 0, 0, 0] for m in methods}  # cases, <= asha, <= gp-median, reached
    for problem in problems:
        for workers in worker_counts:
            case = {
                m: [
                    r
                    for r in runs
                    if (r["problem"], r["method"], r["workers"]) == (problem, m, workers) and r["seed"] < seeds
                ]
                for m in methods
            }
            shared = set.intersection(*[{r["seed"] for r in found} for found in case.values() if found] or [set()])
            case = {m: [r for r in found if r["seed"] in shared] for m, found in case.items()}  # paired by seed
            means: dict[str, list[float]] = {}
            for method, found in case.items():
                if not found:
                    continue
                cells: list[object] = [problem, workers, method, len(found)]
                means[method] = []
                for share in BUDGET_SHARES:
                    values = [v for r in found if (v := _best_by(r, share * budget)) is not None]
                    means[method].append(float(np.mean(values)) if values else math.inf)
                    cells.append(
                        f"{np.mean(values):.4f}"
                        + ("" if len(values) == len(found) else f" ({len(values)}/{len(found)})")
                        if values
                        else "-"
                    )
                rows.append(cells)
            asha_finals = [r["final"] for r in case.get("asha", []) if r["final"] is not None]
            target = float(np.mean(asha_finals)) if asha_finals else None
            for method, found in case.items():
                if not found or target is None:
                    continue
                reach = [_epochs_to_reach(r, target) for r in found]
                median = float(np.median([math.inf if e is None else e for e in reach]))
                reached = median <= REACH_SHARE * budget
                row = next(row for row in rows if row[:3] == [problem, workers, method])
                row.append(f"{median / budget:.0%}" if math.isfinite(median) else "never")
                row.append("yes" if reached else "no")
                counts = tally[method]
                counts[0] += 1
                for k, other in ((1, "asha"), (2, "gp-median")):
                    if other in means and all(a <= b + 1e-12 for a, b in zip(means[method], means[other], strict=True)):
                        counts[k] += 1
                counts[3] += reached
    header = [
        "problem",
        "workers",
        "method",
        "seeds",
        *[f"{share:.0%}" for share in BUDGET_SHARES],
        "asha's final reached at",
        "within 60%",
    ]
    rows = [row + ["", ""][len(row) - len(header) + 2 :] if len(row) < len(header) else row for row in rows]
    summary = markdown_table(
        ["method", "cases", "<= asha at every share", "<= gp-median at every share", "asha's final within 60%"],
        [[m, c[0], c[1], c[2], c[3]] for m, c in tally.items() if c[0]],
    )
    return (
        f"mean best final error at each share of the budget ({budget} epochs); asha's final error is its mean "
        f"over seeds at the end\n{markdown_table(header, rows)}\n\n{summary}"
    )


def normalized_scores(
    runs: list[dict[str, Any]], problems: list[str], methods: list[str], seeds: int
) -> dict[tuple[str, str, int], list[float]]:
    """The quality benchmark's scale on one worker's runs: per (problem, method, seed), at each share of the budget,
    0 for random search's median best final error (over its seeds) and 1 for the problem's optimum, or the best
    final error any run found where that is lower (the synthetic problem's observations are noisy). A run with no
    configuration trained to the max yet counts the worst first final error of the methods compared."""
    budget = BUDGET_FACTOR * MAX_EPOCHS
    scores: dict[tuple[str, str, int], list[float]] = {}
    for problem in problems:
        found = [
            r
            for r in runs
            if r["problem"] == problem and r["workers"] == 1 and r["seed"] < seeds and r["method"] in methods
        ]
        anchors = [r for r in found if r["method"] == "random"]
        if not anchors or not any(r["history"] for r in found):
            continue
        worst = max(r["history"][0][1] for r in found if r["history"])
        best = min([optimum(problem), *(r["final"] for r in found if r["final"] is not None)])

        def value(run: dict[str, Any], share: float, worst: float = worst) -> float:
            reached = _best_by(run, share * budget)
            return worst if reached is None else reached

        for run in found:
            scores[(problem, run["method"], run["seed"])] = [
                _scaled(value(run, share), float(np.median([value(r, share) for r in anchors])), best)
                for share in BUDGET_SHARES
            ]
    return scores


def _scaled(value: float, anchor: float, best: float) -> float:
    """`value` on the 0 (`anchor`) to 1 (`best`) scale, as benchmarks/quality.py scores: where random search's
    median already is the best, reaching it scores 1 and anything else 0."""
    if anchor - best <= 1e-12 * max(1.0, abs(best)):
        return 1.0 if value <= best else 0.0
    return (anchor - value) / (anchor - best)


def score_report(runs: list[dict[str, Any]], problems: list[str], methods: list[str], seeds: int) -> str:
    """Per problem and for the whole family, each method's mean normalized score at each share of the budget; then
    the service's default (`asktell`) minus each other method, paired by problem and seed; and engine seconds per
    ask (a new configuration or a resumed run), per report (an intermediate value heard) and per decision of either
    kind."""
    scores = normalized_scores(runs, problems, methods, seeds)
    shown = [m for m in methods if m != "random"]
    shares = [f"{share:.0%}" for share in BUDGET_SHARES]
    rows: list[list[object]] = []
    for problem in [*problems, "family"]:
        for method in shown:
            found = [v for (p, m, _), v in scores.items() if m == method and problem in (p, "family")]
            if found:
                cells = [mean_and_error([v[i] for v in found], 2) for i in range(len(BUDGET_SHARES))]
                timed = [
                    r
                    for r in runs
                    if r["method"] == method and r["workers"] == 1 and problem in (r["problem"], "family")
                ]
                seconds = [
                    f"{np.mean([r[key] for r in timed]):.3f}" if all(key in r for r in timed) else "-"
                    for key in ("seconds_per_ask", "seconds_per_report", "seconds_per_decision")
                ]
                rows.append([problem, method, len(found), *cells, *seconds])
    text = "normalized score, one worker (0 = random search's median best final error, 1 = the optimum), ± s.e.\n"
    text += markdown_table(["problem", "method", "runs", *shares, "s/ask", "s/report", "s/decision"], rows)
    if "asktell" in shown:
        rows = []
        for peer in [m for m in shown if m != "asktell"]:
            keys = [(p, s) for (p, m, s) in scores if m == "asktell" and (p, peer, s) in scores]
            cells = []
            for i in range(len(BUDGET_SHARES)):
                diffs = [scores[(p, "asktell", s)][i] - scores[(p, peer, s)][i] for p, s in keys]
                wins, losses = sum(d > 1e-9 for d in diffs), sum(d < -1e-9 for d in diffs)
                cells.append(f"{mean_and_error(diffs, 2)} ({wins}/{losses})" if diffs else "-")
            rows.append([peer, len(keys), *cells])
        text += "\n\nasktell minus each method, paired by problem and seed: mean ± s.e. (wins/losses)\n"
        text += markdown_table(["method", "pairs", *shares], rows)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--problems", default=",".join(["synthetic", *TABLES]))
    parser.add_argument("--methods", default=",".join([*METHODS, *PEERS]))
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--results", type=Path)
    parser.add_argument("--report", action="store_true", help="print the tables of the runs in --results, run none")
    args = parser.parse_args()
    problems, methods = args.problems.split(","), args.methods.split(",")
    worker_counts = [int(w) for w in args.workers.split(",")]
    for problem in problems:  # before the pool, so its processes do not each build a missing table
        if problem in TABLES:
            curve_table(problem)
    log = RunLog(args.results, ("problem", "method", "seed", "workers"))
    # Seed by seed, so an interrupted run has every problem and method for its first seeds.
    tasks = [
        (p, m, s, w)
        for s in range(args.seeds)
        for p in problems
        for w in worker_counts
        for m in methods
        if (p, m, s, w) not in log and not args.report and (w == 1 or m not in PEERS)
    ]
    with ProcessPoolExecutor(args.parallel) as pool:
        for run in pool.map(run_task, tasks):
            log.add(run)
            print(
                f"{run['problem']:10s} {run['method']:12s} seed {run['seed']} workers {run['workers']}: final "
                f"{run['final']} ({run['seconds_per_decision']:.2f} s per decision)",
                flush=True,
            )

    for problem in problems:
        for workers in worker_counts:
            runs = {
                m: sorted(
                    (
                        r
                        for r in log.runs.values()
                        if (r["problem"], r["method"], r["workers"]) == (problem, m, workers) and r["seed"] < args.seeds
                    ),
                    key=lambda r: r["seed"],
                )
                for m in methods
            }
            asha = {r["seed"]: r for r in runs.get("asha", [])}
            asha_finals = [r["final"] for r in asha.values() if r["final"] is not None]
            target = float(np.mean(asha_finals)) if asha_finals else None
            budget = BUDGET_FACTOR * MAX_EPOCHS
            rows = []
            for method in methods:
                found = runs[method]
                if not found:
                    continue
                finals = [r["final"] for r in found if r["final"] is not None]
                to_target = [_epochs_to_reach(r, target) if target is not None else None for r in found]
                epochs = float(np.median([math.inf if e is None else e for e in to_target]))
                reach = [
                    _epochs_to_reach(r, asha[r["seed"]]["final"])
                    for r in found
                    if r["seed"] in asha and asha[r["seed"]]["final"] is not None
                ]
                asha_epochs = [
                    _epochs_to_reach(asha[r["seed"]], asha[r["seed"]]["final"])
                    for r in found
                    if r["seed"] in asha and asha[r["seed"]]["final"] is not None
                ]
                share = [e / a if e is not None else math.inf for e, a in zip(reach, asha_epochs, strict=True) if a]
                median_share = float(np.median(share)) if share else math.inf
                rows.append(
                    [
                        method,
                        len(found),
                        mean_and_error(finals, 4) if finals else "-",
                        f"{sum(e is not None for e in to_target)}/{len(found)}",
                        f"{epochs:.0f}" if math.isfinite(epochs) else "-",
                        f"{epochs / budget:.0%}" if math.isfinite(epochs) else "-",
                        f"{sum(e is not None for e in reach)}/{len(reach)}",
                        f"{median_share:.0%}" if math.isfinite(median_share) else "-",
                        f"{np.mean([r['configs'] for r in found]):.0f}",
                        f"{np.mean([r['completed'] for r in found]):.1f}",
                        f"{np.mean([r['seconds_per_decision'] for r in found]):.3f}",
                    ]
                )
            print(
                f"\n{problem}, {workers} worker(s), budget {budget} epochs: best final error (trained to the max) "
                f"± s.e.; asha's final error (mean over seeds) {target:.4f}"
                if target is not None
                else ""
            )
            print(
                markdown_table(
                    [
                        "method",
                        "seeds",
                        "final error",
                        "reached asha's final",
                        "epochs (median)",
                        "of the budget",
                        "reached asha's seed",
                        "of asha's epochs to it",
                        "configs",
                        "trained to the max",
                        "s/decision",
                    ],
                    rows,
                )
            )
    print()
    print(budget_table(list(log.runs.values()), problems, worker_counts, methods, args.seeds))
    if 1 in worker_counts and "random" in methods:
        print()
        print(score_report(list(log.runs.values()), problems, methods, args.seeds))


if __name__ == "__main__":
    main()
