"""The methods the quality benchmark compares, each run as a plain ask/tell loop on one problem instance.

- `asktell` is the service's default for the study (engine `auto`), run in-process exactly as a worker runs
  it: the pure engine gets the study's trials and its own memory from the previous call. `asktell:ENGINE`
  names an engine and `asktell:ENGINE:key=value+key=value` sets engine options too (values are JSON), which
  is how ablations are written: `asktell:gp:center_point=false`.
- `random`: the service's `random` engine (the normalization's anchor).
- `ax`: Ax's `Client` with its default generation strategy; `optuna-gp` and `tpe`: Optuna's GPSampler and
  TPESampler. Every peer runs at its library defaults, seeded; outcome constraints and several objectives
  are declared to each in its own terms, and the objectives' thresholds are Ax's objective thresholds.

Every runner returns the metrics of each evaluation and the seconds each suggestion took.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.problems import Metrics, Params, Problem


@dataclass
class Run:
    params: list[Params] = field(default_factory=list)
    evaluations: list[Metrics] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    info: list[dict[str, Any]] = field(default_factory=list)  # per suggestion: what the method says of it


def parse_asktell(method: str) -> tuple[str, dict[str, Any]]:
    """`asktell[:ENGINE[:key=value+...]]` as (engine, options)."""
    parts = method.split(":", 2)
    engine = parts[1] if len(parts) > 1 and parts[1] else "auto"
    options: dict[str, Any] = {}
    if len(parts) > 2 and parts[2]:
        for item in parts[2].split("+"):
            key, value = item.split("=", 1)
            try:
                options[key] = json.loads(value)
            except json.JSONDecodeError:
                options[key] = value
    return engine, options


def run_asktell(problem: Problem, method: str, seed: int, budget: int) -> Run:
    from service.domain.spec import StudySpec
    from service.domain.trial import TrialState, TrialView
    from service.engines import resolve_engine
    from service.engines.base import SuggestRequest

    engine, options = ("random", {}) if method == "random" else parse_asktell(method)
    spec = StudySpec.model_validate(problem.spec(engine, options, seed))
    resolved = resolve_engine(spec)
    trials: list[TrialView] = []
    run = Run()
    memory: dict[str, Any] = {}
    for number in range(budget):
        request = SuggestRequest(spec, resolved.options, 1, seed, number, trials=list(trials), memory=dict(memory))
        started = time.perf_counter()
        suggested = resolved.engine.suggest(request)
        run.seconds.append(time.perf_counter() - started)
        (params,) = suggested.params
        if suggested.memory is not None:
            memory = suggested.memory
        info = (suggested.info or [{}])[0]
        run.info.append({"rung": suggested.rung, **info})
        metrics = problem.evaluate(params)
        run.params.append(params)
        run.evaluations.append(metrics)
        trials.append(TrialView(number, params, TrialState.COMPLETED, metrics))
    return run


def optuna_params(space: list[dict[str, Any]], trial: Any) -> Params:
    """The trial's values for the parameters of `space`, asked of Optuna in its own terms."""
    params: Params = {}
    for p in space:
        if p["type"] == "categorical":
            params[p["name"]] = trial.suggest_categorical(p["name"], p["choices"])
        elif p["type"] == "int":
            params[p["name"]] = trial.suggest_int(p["name"], p["low"], p["high"], log=p.get("log", False))
        else:
            params[p["name"]] = trial.suggest_float(p["name"], p["low"], p["high"], log=p.get("log", False))
    return params


def _violations(problem: Problem, metrics: Metrics) -> list[float]:
    """Optuna's constraint values: feasible where <= 0."""
    return [
        metrics[c["name"]] - c["bound"] if c["op"] == "<=" else c["bound"] - metrics[c["name"]]
        for c in problem.constraints
    ]


def run_optuna(problem: Problem, method: str, seed: int, budget: int) -> Run:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def constraints(trial: Any) -> list[float]:
        return list(trial.user_attrs["violations"])

    constraints_func = constraints if problem.constraints else None
    sampler = (
        optuna.samplers.TPESampler(seed=seed, constraints_func=constraints_func)
        if method == "tpe"
        else optuna.samplers.GPSampler(seed=seed, constraints_func=constraints_func)
    )
    study = optuna.create_study(sampler=sampler, directions=[o["goal"] for o in problem.objectives])
    run = Run()
    for _ in range(budget):
        started = time.perf_counter()
        trial = study.ask()
        params = optuna_params(problem.params, trial)
        run.seconds.append(time.perf_counter() - started)
        metrics = problem.evaluate(params)
        run.params.append(params)
        run.evaluations.append(metrics)
        if problem.constraints:
            trial.set_user_attr("violations", _violations(problem, metrics))
        study.tell(trial, [metrics[o["name"]] for o in problem.objectives])
    return run


def ax_client(space: list[dict[str, Any]], seed: int) -> Any:
    """Ax's `Client`, seeded and quiet, with the parameters of `space` declared in its own terms."""
    from ax.api.client import Client
    from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig

    client = Client(random_seed=seed)
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("ax")] + ["ax"]:
        logging.getLogger(name).setLevel(logging.ERROR)
    parameters: list[Any] = []
    for p in space:
        if p["type"] == "categorical":
            kind = "str" if isinstance(p["choices"][0], str) else "float"
            parameters.append(
                ChoiceParameterConfig(name=p["name"], values=p["choices"], parameter_type=kind, is_ordered=False)
            )
        else:
            parameters.append(
                RangeParameterConfig(
                    name=p["name"],
                    bounds=(p["low"], p["high"]),
                    parameter_type=p["type"],
                    scaling="log" if p.get("log") else "linear",
                )
            )
    client.configure_experiment(parameters=parameters)
    return client


def run_ax(problem: Problem, method: str, seed: int, budget: int) -> Run:
    client = ax_client(problem.params, seed)
    objective = ", ".join(("-" if o["goal"] == "minimize" else "") + o["name"] for o in problem.objectives)
    constraints = [f"{c['name']} {c['op']} {c['bound']}" for c in problem.constraints]
    constraints += [
        f"{o['name']} {'<=' if o['goal'] == 'minimize' else '>='} {o['threshold']}"
        for o in problem.objectives
        if "threshold" in o
    ]
    client.configure_optimization(objective=objective, outcome_constraints=constraints or None)
    run = Run()
    for _ in range(budget):
        started = time.perf_counter()
        ((index, params),) = client.get_next_trials(max_trials=1).items()
        run.seconds.append(time.perf_counter() - started)
        metrics = problem.evaluate(dict(params))
        run.params.append(dict(params))
        run.evaluations.append(metrics)
        client.complete_trial(trial_index=index, raw_data=dict(metrics))
    return run


RUNNERS: dict[str, Callable[[Problem, str, int, int], Run]] = {
    "ax": run_ax,
    "optuna-gp": run_optuna,
    "tpe": run_optuna,
    "random": run_asktell,
}


def runner(method: str) -> Callable[[Problem, str, int, int], Run]:
    if method.startswith("asktell"):
        return run_asktell
    return RUNNERS[method]
