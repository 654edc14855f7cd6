"""Engine `freeze_thaw`: decide which training run to thaw (resume) or whether to start a new one, from a model of
the learning curves ("Freeze-Thaw Bayesian Optimization", Swersky, Snoek and Adams, 2014). Labels D7-D10, D13 and
D14 refer to docs/decisions.md (the choices the paper leaves open).

At each ask past the warm-up, a worker fits the curve model (freeze_thaw.model) and decides by one of four rules:

- `promote` (default): successive-halving rungs as engine `asha`, with the model in three places: a paused run goes
  on when its predicted final value is in the top 1/eta of its rung; a new configuration is a Thompson sample of
  the model's asymptotes; and new runs start at the lowest rung whose values rank the finished runs' final values
  (Kendall tau of at least `rank_agreement`), so curves that cross are not judged where they mislead. The warm-up
  runs are judged at the rungs like any other; with `warmup_to_max` they train to the max unjudged instead, so the
  check starts from final values that no rung chose, at the price of a few full runs of Sobol points (on the
  benchmark's real curves that price was larger than what it saved).
- `promote_capped`: asha's promotions (the top 1/eta of a rung by the value there) and new runs at the first rung,
  with the model only choosing the new configurations (its Thompson sample).
- `entropy` (the paper's): every run trains `increment` steps at a time and pauses; the worker chooses, among a
  basket of paused runs and fresh candidates, the one whose next increment is expected to tell most about which
  run ends lowest (information gain).
- `ei`: as `entropy`, with the highest expected improvement of the final value per step of training still needed
  (cheaper; D8).

With several workers, runs being trained elsewhere count as pending: their next observation is fantasized at its
predicted mean before choosing (D9). Warm-up: the first `warmup_configs` runs, answered inline, are Sobol points
(with `center_point`, the first is the centre of the space, as under `gp`).

This module holds no torch import (API processes validate options and serve the warm-up); the decision lives in
`freeze_thaw.decision`, imported by workers.
"""

from __future__ import annotations

import importlib
from typing import Literal

from pydantic import Field

from service.domain.spec import StudySpec
from service.engines.asha import AshaOptions, rungs
from service.engines.base import Engine, ModelEngineOptions, Plan, Suggestions, SuggestRequest
from service.engines.sobol import initial_design

PROMOTE_RULES = ("promote", "promote_capped")  # the rules that climb asha's rungs


class FreezeThawOptions(AshaOptions, ModelEngineOptions):
    """asha's `eta` and `min_step` (rule `promote` climbs asha's rungs), `stopping`, the ready pool's `pool_max` and
    `pool_freshness` (a worker plans the next runs ahead, so an ask is answered without waiting for a decision), and
    the model's options."""

    rule: Literal["promote", "promote_capped", "entropy", "ei"] = Field(
        default="promote",
        description="`promote`: successive-halving rungs where a run goes on when its predicted "
        "final value is in the top 1/eta of its rung, new configurations are Thompson samples of the model, and new "
        "runs start at the lowest rung whose values rank the finished runs' final values; `promote_capped`: asha's "
        "promotions (the top 1/eta by the value at the rung) and new runs at the first rung, with new "
        "configurations from the model's Thompson sample; `entropy`: information "
        "gain on which run ends lowest (the paper's); `ei`: expected improvement of the final value per step still "
        "to train. `entropy` and `ei` train `increment` steps per decision.",
    )
    rank_agreement: float = Field(
        default=0.3,
        ge=-1,
        le=1,
        description="`promote`: the Kendall tau between "
        "finished runs' values at a rung and their final values that lets new runs start "
        "at that rung.",
    )
    agreement_runs: int = Field(
        default=4, ge=2, le=1000, description="`promote`: finished runs needed before the first rung is checked."
    )
    warmup_to_max: bool = Field(
        default=False,
        description="`promote`: the warm-up runs (and any Sobol run the "
        "engine falls back to) train to the fidelity's max without being judged at a rung, "
        "so the first-rung check has final values that no rung selected; off, they start "
        "at the first rung like any new run.",
    )
    increment: float | None = Field(
        default=None, gt=0, description="Steps a run trains per decision (default: a tenth of the fidelity's range)."
    )
    warmup_configs: int = Field(default=4, ge=2, le=100, description="Warm-up runs before the first model decision.")
    center_point: bool = Field(
        default=False,
        description="The first warm-up run is the centre of the space, as under `gp`, and the rest Sobol points; "
        "off (the default, measured better on the learning-curve benchmark), every warm-up run is a Sobol point.",
    )
    new_candidates: int = Field(default=3, ge=1, le=20, description="Fresh configurations in the basket.")
    old_candidates: int = Field(default=10, ge=1, le=100, description="Paused runs in the basket.")
    candidate_pool: int = Field(default=512, ge=16, le=16384, description="Sobol points the fresh ones come from.")
    fantasies: int = Field(default=8, ge=2, le=64, description="Fantasized outcomes per basket member (entropy).")
    pmin_samples: int = Field(default=1000, ge=100, le=20000, description="Monte Carlo draws of P_min.")


def increment_of(spec: StudySpec, options: FreezeThawOptions) -> float:
    """Steps per decision: the option, else a tenth of the fidelity's range, whole steps on a whole-step axis."""
    assert spec.fidelity is not None
    if options.increment is not None:
        return options.increment
    tenth = (spec.fidelity.max - spec.fidelity.min) / 10
    return float(max(1, round(tenth))) if spec.fidelity.whole_steps else max(tenth, spec.fidelity.max / 100)


def next_budget(spec: StudySpec, options: FreezeThawOptions, progress: float | None) -> float:
    """The step a run trains to next: one increment past its progress (a new run: the first increment, at least
    the fidelity's min), at most the max; with `rule: promote`, the next rung."""
    assert spec.fidelity is not None
    if options.rule in PROMOTE_RULES:
        steps = rungs(spec, options)
        return next((step for step in steps if progress is None or step > progress + 1e-9), steps[-1])
    target = increment_of(spec, options) if progress is None else progress + increment_of(spec, options)
    return float(min(spec.fidelity.max, max(spec.fidelity.min, target)))


def warmup_budget(spec: StudySpec, options: FreezeThawOptions) -> float:
    """The step a Sobol run (warm-up, fallback) trains to: under `promote` with `warmup_to_max`, the fidelity's
    max, so the first-rung check sees final values no rung selected; else the first budget of a new run."""
    assert spec.fidelity is not None
    if options.rule in PROMOTE_RULES and options.warmup_to_max:
        return spec.fidelity.max
    return next_budget(spec, options, None)


class FreezeThawEngine(Engine[FreezeThawOptions]):
    name = "freeze_thaw"
    Options = FreezeThawOptions
    needs_history = True
    plans_runs = True

    def unsupported_reason(self, spec: StudySpec) -> str | None:
        if spec.fidelity is None:
            return "freeze_thaw needs a fidelity: it models learning curves along a step axis"
        if len(spec.objectives) > 1:
            return "freeze_thaw models one objective; this study has several"
        return None

    def first_budget(self, spec: StudySpec, options: FreezeThawOptions) -> float | None:
        return warmup_budget(spec, options)

    def needs_worker(self, spec: StudySpec, options: FreezeThawOptions, finished: int, created: int = 0) -> bool:
        return created >= options.warmup_configs

    def suggest(self, request: SuggestRequest[FreezeThawOptions]) -> Suggestions:
        """The warm-up (and the fallback when the model fails): Sobol points, after the centre with `center_point`."""
        return Suggestions(initial_design(request, request.options.center_point))

    def plan(self, request: SuggestRequest[FreezeThawOptions]) -> Plan:
        module = importlib.import_module("service.engines.freeze_thaw.decision")
        planned: Plan = module.plan(request)
        return planned
