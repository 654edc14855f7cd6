"""Engine `egreedy`: epsilon-greedy Bayesian optimization, asynchronous AEGiS and the two rules of
"Greed is Good" (De Ath et al., 2021). Labels D3 and D4 refer to docs/decisions.md.

Each suggestion comes from one branch, chosen at random and recorded with the trial
(`engine_info["branch"]`):
- `exploit`: the maximizer of the GP posterior mean;
- `thompson`: the maximizer of one posterior sample path;
- `pareto`: a uniform draw from the approximate Pareto front of (posterior mean, posterior std);
- `random`: a uniform draw from the whole space.

Variants (`engine_options.variant`):
- `aegis` (default; "Asynchronous epsilon-Greedy Bayesian Optimisation", De Ath et al., 2021): exploit with
  probability 1 - 2·eps, else Thompson or Pareto half and half (eta). While the first W selections fill the
  workers, only the very first one may exploit. eps defaults to the paper's min(1/sqrt(d), 0.5) above d = 4;
  up to d = 4 the paper's rule gives 0.5, which never exploits, and eps defaults to 0.1 instead (D3; the
  regrets that settled it: README, "Engine defaults the benchmarks chose"). `epsilon: 0.5` restores the faithful rule.
- `eps_pf` / `eps_rs` ("Greed is Good", De Ath et al., 2021): exploit with probability 1 - eps, else a
  random point of the Pareto front (`eps_pf`) or of the whole space (`eps_rs`); eps defaults to 0.1.

Concurrency (D4): the model is conditioned on pending trials by Kriging believer before any branch, which
shrinks the posterior std there (Thompson and Pareto draws move away); the posterior mean is unchanged by
that conditioning, so an exploit point within `EXPLOIT_TOLERANCE` of a pending trial is re-rolled as a
Thompson draw (`engine_info["rerolled"]`), and two concurrent asks never share an exploit point.
Failed trials are left out of the model (the paper's rule has no failure model).

No torch import here; workers import `egreedy.model` for model-based suggestions.
"""

from __future__ import annotations

import math
import random
from typing import Literal

from pydantic import Field

from service.domain.spec import StudySpec
from service.engines.gp.engine import GPOptions, ModelEngine

Variant = Literal["aegis", "eps_pf", "eps_rs"]
Branch = Literal["exploit", "thompson", "pareto", "random"]
GREEDY_EPSILON = 0.1  # "Greed is Good": the reference runs use eps = 0.1
SMALL_DIMENSION = 4  # up to here AEGiS's own eps is 0.5: it would never exploit
EXPLOIT_TOLERANCE = 1e-2  # normalized L-infinity distance at which an exploit point duplicates a pending one


class EGreedyOptions(GPOptions):
    variant: Variant = Field(default="aegis", description="aegis (asynchronous), eps_pf or eps_rs.")
    epsilon: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Exploration probability: aegis explores with 2·eps (default "
        "min(1/sqrt(d), 0.5) above d = 4, else 0.1); eps_pf and eps_rs "
        "with eps (default 0.1).",
    )
    eta: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="aegis: share of exploration done by Thompson sampling (the rest draws from the Pareto front).",
    )
    workers: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="aegis warm-up: selections while workers fill up, during which only "
        "the first may exploit (default: the trials running at the time).",
    )
    pareto_points: int = Field(
        default=1000,
        ge=10,
        le=100_000,
        description="Sobol points per dimension scored to approximate the Pareto front (capped at 20,000 in all).",
    )


def default_epsilon(variant: Variant, dimension: int) -> float:
    """The paper's eps for aegis, except up to SMALL_DIMENSION where its 0.5 never exploits (D3)."""
    if variant == "aegis" and dimension > SMALL_DIMENSION:
        return min(1.0 / math.sqrt(dimension), 0.5)
    return GREEDY_EPSILON


def choose_branch(
    variant: Variant, epsilon: float, eta: float, selections: int, workers: int, rng: random.Random
) -> Branch:
    """The branch of one selection; `selections` counts the study's earlier model selections (t)."""
    if variant == "aegis":
        if (selections == 0 and epsilon < 0.5) or (selections > workers and rng.random() < 1 - 2 * epsilon):
            return "exploit"
        return "thompson" if rng.random() < eta else "pareto"
    if rng.random() < 1 - epsilon:
        return "exploit"
    return "pareto" if variant == "eps_pf" else "random"


class EGreedyEngine(ModelEngine[EGreedyOptions]):
    name = "egreedy"
    model_module = "service.engines.egreedy.model"
    Options = EGreedyOptions

    def unsupported_reason(self, spec: StudySpec) -> str | None:
        if len(spec.objectives) > 1:
            return "egreedy optimizes one objective; use engine 'multiobjective' for several"
        if spec.constraints:
            return "egreedy does not model outcome constraints; use engine 'constrained'"
        return None
