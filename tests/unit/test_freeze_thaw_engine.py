"""Engine freeze_thaw: the warm-up, the basket decision (entropy and EI rules), pending runs (pure, CPU only)."""

from __future__ import annotations

import math

import pytest

from service.domain.spec import Constraint, StudySpec
from service.domain.trial import Measurement, TrialState, TrialView
from service.engines import ENGINES, auto_engine_name, resolve_engine
from service.engines.base import NewRun, Resume, SuggestRequest
from service.engines.freeze_thaw.decision import kendall_tau
from service.engines.freeze_thaw.engine import FreezeThawOptions, increment_of, next_budget
from tests.training import OBJECTIVE, PARAMS, curve_spec, fidelity

FIDELITY = fidelity(30)


def _spec(**options: object) -> StudySpec:
    return curve_spec("freeze_thaw", 30, **options)


def curve(x: float, epoch: float) -> float:
    """Crossing curves: the best asymptote (x = 0.3) is not the fastest starter (large x starts lower)."""
    return 4 * (x - 0.3) ** 2 + (1.2 - x) * math.exp(-epoch / 6)


def _run(number: int, x: float, epochs: int, state: TrialState = TrialState.PAUSED) -> TrialView:
    return TrialView(
        number, {"x": x}, state, None, tuple(Measurement(float(e), {"loss": curve(x, e)}) for e in range(1, epochs + 1))
    )


def _plan(trials: list[TrialView], count: int = 1, **options: object) -> list[Resume | NewRun]:
    spec = _spec(**options)
    resolved = resolve_engine(spec)
    request = SuggestRequest(spec, resolved.options, count, seed=3, sequence_start=len(trials), trials=trials)
    planned = resolved.engine.plan(request)
    assert planned.rung == "freeze-thaw" and "freeze_thaw_hyperparameters" in (planned.memory or {})
    return planned.runs


def test_auto_resolves_a_study_with_a_fidelity_to_freeze_thaw() -> None:
    """One objective and a fidelity: freeze_thaw (the learning-curve benchmark's best); with outcome constraints,
    which no fidelity engine models, Sobol points as before; without a fidelity, the GP engines."""
    spec = StudySpec.model_validate({"params": PARAMS, "objectives": OBJECTIVE, "fidelity": FIDELITY})
    assert auto_engine_name(spec) == "freeze_thaw" and resolve_engine(spec).engine.name == "freeze_thaw"
    constrained = spec.model_copy(update={"constraints": [Constraint(name="memory", op="<=", bound=1.0)]})
    assert auto_engine_name(constrained) == "sobol"
    assert auto_engine_name(spec.model_copy(update={"fidelity": None})) == "gp"


def test_budgets_move_one_increment_at_a_time() -> None:
    spec, options = _spec(rule="entropy"), FreezeThawOptions(rule="entropy")
    assert increment_of(spec, options) == 3.0
    assert next_budget(spec, options, None) == 3.0 and next_budget(spec, options, 27.0) == 30.0
    engine = resolve_engine(spec).engine
    assert engine.first_budget(spec, options) == 3.0
    assert not engine.needs_worker(spec, options, 0, created=3) and engine.needs_worker(spec, options, 0, created=4)


def test_a_hopeless_paused_run_is_not_thawed() -> None:
    runs = [_run(0, 0.3, 9), _run(1, 0.95, 9), _run(2, 0.5, 3), _run(3, 0.05, 3), _run(4, 0.7, 3)]
    for rule in ("entropy", "ei"):
        planned = _plan(runs, rule=rule)
        assert len(planned) == 1
        assert not (isinstance(planned[0], Resume) and planned[0].number == 1), (rule, planned)


def test_several_choices_are_distinct_and_skip_running_runs() -> None:
    runs = [
        _run(0, 0.3, 6, TrialState.ACTIVE),
        _run(1, 0.35, 6),
        _run(2, 0.6, 3),
        _run(3, 0.1, 3),
        _run(4, 0.8, 3),
        _run(5, 0.25, 3, TrialState.COMPLETED),
    ]
    planned = _plan(runs, count=3, rule="entropy")
    resumed = [p.number for p in planned if isinstance(p, Resume)]
    assert len(planned) == 3 and len(set(resumed)) == len(resumed)
    assert 0 not in resumed and 5 not in resumed  # one is being trained elsewhere, one is finished
    for p in planned:
        if isinstance(p, Resume):
            progress = max(m.step for m in runs[p.number].measurements)
            assert p.budget == progress + 3
        else:
            assert p.budget == 3.0 and 0 <= float(p.params["x"]) <= 1


def test_promote_rule_judges_the_sobol_warm_up_at_the_first_rung_unless_told_to_train_it_to_the_end() -> None:
    spec, options = _spec(rule="promote"), FreezeThawOptions(rule="promote")
    engine = resolve_engine(spec).engine
    assert engine.first_budget(spec, options) == 1.0
    assert engine.first_budget(spec, FreezeThawOptions(rule="promote", warmup_to_max=True)) == 30.0  # unjudged


def test_promote_rule_moves_runs_up_the_rungs_by_predicted_final_value() -> None:
    """Rungs as asha's, in whole epochs (1, 3, 10, 30): with nine runs at the first rung, the top three by predicted
    final value may go on, the two already past it are not promoted again, and the third goes to the next rung."""
    spec, options = _spec(rule="promote"), FreezeThawOptions(rule="promote")
    assert next_budget(spec, options, None) == 1.0
    assert next_budget(spec, options, 1.0) == 3.0 and next_budget(spec, options, 2.0) == 3.0
    assert next_budget(spec, options, 10.0) == 30.0
    xs = [0.3, 0.32, 0.28, 0.9, 0.95, 0.05, 0.7, 0.8, 0.6]
    runs = [_run(0, xs[0], 4), _run(1, xs[1], 4), *[_run(n, x, 2) for n, x in enumerate(xs) if n >= 2]]
    (planned,) = _plan(runs, rule="promote")
    assert isinstance(planned, Resume) and planned.number == 2 and planned.budget == 3.0
    # Should another ask resume run 2 first, the worker starts the model's next new run, not a Sobol point.
    assert planned.instead is not None and planned.instead.budget == 1.0
    assert planned.instead.info == {"rule": "promote", "first_rung": 1.0, "instead_of": 2}
    promotion, fresh = _plan(runs, count=2, rule="promote")  # the spare is drawn apart from the plan's new run
    assert isinstance(promotion, Resume) and isinstance(fresh, NewRun) and promotion.instead is not None
    assert promotion.instead.params != fresh.params


def test_promote_rule_starts_distinct_new_runs_near_the_best_asymptote_when_none_is_promoted() -> None:
    """Nothing in the top third of a rung is paused: new configurations, one Thompson draw each, at the first
    rung; the second and third are drawn with the first believed, so the three differ."""
    runs = [
        _run(0, 0.3, 4, TrialState.ACTIVE),
        _run(1, 0.9, 2),
        _run(2, 0.05, 2),
        _run(3, 0.75, 2),
        _run(4, 0.55, 2),
    ]  # the first rung keeps 1 of 5: run 0, trained elsewhere
    planned = _plan(runs, count=3, rule="promote")
    assert all(isinstance(p, NewRun) and p.budget == 1.0 for p in planned)
    xs = [float(p.params["x"]) for p in planned if isinstance(p, NewRun)]
    assert len(set(xs)) == 3
    assert sum(abs(x - 0.3) for x in xs) / 3 < 0.25  # drawn where the model expects low final values


def test_promote_capped_rule_promotes_as_asha_and_starts_model_samples_at_the_first_rung() -> None:
    """`promote_capped` (variant (c)): the promotions are asha's, by the value at the rung (after one epoch x = 0.45
    is ahead of x = 0.3, which ends lower); new runs are the model's Thompson samples, at the first rung."""
    xs = [0.3, 0.45, 0.9, 0.95, 0.05, 0.7, 0.8, 0.6, 0.15]
    runs = [_run(n, x, 2) for n, x in enumerate(xs)]
    asha_spec = StudySpec.model_validate(
        {"params": PARAMS, "objectives": OBJECTIVE, "fidelity": FIDELITY, "engine": "asha"}
    )
    expected = ENGINES["asha"].resumes(asha_spec, resolve_engine(asha_spec).options, runs, 3)
    planned = _plan(runs, count=3, rule="promote_capped")
    promoted = [(p.number, p.budget) for p in planned if isinstance(p, Resume)]
    assert promoted == [(r.number, r.budget) for r in expected]
    fresh = _plan(
        [_run(0, 0.3, 4, TrialState.ACTIVE), _run(1, 0.9, 2), _run(2, 0.05, 2), _run(3, 0.75, 2)],
        count=2,
        rule="promote_capped",
    )
    assert all(
        isinstance(p, NewRun) and p.budget == 1.0 and p.info and p.info["rule"] == "promote_capped" for p in fresh
    )


def test_rank_agreement_leaves_out_pairs_seen_equal() -> None:
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([4, 3, 2, 1], [10, 20, 30, 40]) == -1.0
    assert kendall_tau([1, 2, 3], [5, 5, 9]) == 1.0  # the tied pair (5, 5) tells nothing
    assert kendall_tau([1, 1, 3], [5, 6, 9]) == pytest.approx(2 / 3)  # predicted equal: neither way
    assert kendall_tau([1, 2], [5, 5]) == 0.0


def test_promote_rule_starts_new_runs_past_the_rungs_that_rank_finished_runs_backwards() -> None:
    """Crossing curves: the fast starters end worst, and by epoch 10 the order has turned. Once four runs have
    finished (five here), new runs skip the rungs 1 and 3, whose values rank the final values backwards, and start
    at 10."""

    def crossing(number: int, x: float, epochs: int, state: TrialState) -> TrialView:
        start, end = 0.9 - 0.5 * x, 0.2 + 0.3 * x  # early, larger x is better; at the end, smaller x is
        values = [end + (start - end) * math.exp(-(e - 1) / 4) for e in range(1, epochs + 1)]
        return TrialView(
            number,
            {"x": x},
            state,
            None,
            tuple(Measurement(float(e), {"loss": v}) for e, v in enumerate(values, start=1)),
        )

    finished = [crossing(n, x, 30, TrialState.COMPLETED) for n, x in enumerate([0.1, 0.25, 0.4, 0.55, 0.7])]
    paused = [crossing(5 + n, x, 1, TrialState.PAUSED) for n, x in enumerate([0.8, 0.85, 0.9])]
    (run,) = _plan(finished + paused, rule="promote")
    assert isinstance(run, NewRun) and run.budget == 10.0 and run.info == {"rule": "promote", "first_rung": 10.0}
    assert kendall_tau([0.9 - 0.5 * x for x in (0.1, 0.25, 0.4)], [0.2 + 0.3 * x for x in (0.1, 0.25, 0.4)]) == -1


def test_too_little_data_starts_sobol_runs() -> None:
    spec = _spec(rule="entropy")
    resolved = resolve_engine(spec)
    request = SuggestRequest(spec, resolved.options, 2, seed=1, sequence_start=1, trials=[_run(0, 0.5, 3)])
    planned = resolved.engine.plan(request)
    assert planned.rung == "warm-up" and all(isinstance(p, NewRun) and p.budget == 3.0 for p in planned.runs)


def test_the_warm_up_starts_at_the_centre_of_the_space_when_told_to() -> None:
    """With `center_point`, as under `gp`: the first warm-up run is the centre and the next ones the study's Sobol
    points, whether the warm-up is answered inline or planned by a worker. By default it starts with the Sobol
    points."""
    spec = _spec(rule="promote", center_point=True)
    resolved = resolve_engine(spec)
    engine, options = resolved.engine, resolved.options
    inline = [
        engine.suggest(SuggestRequest(spec, options, 1, seed=1, sequence_start=n)).params[0]["x"] for n in range(3)
    ]
    assert inline[0] == pytest.approx(0.5) and all(x != pytest.approx(0.5) for x in inline[1:])
    planned = engine.plan(SuggestRequest(spec, options, 3, seed=1, sequence_start=0, trials=[]))
    assert planned.rung == "warm-up"
    assert [run.params["x"] for run in planned.runs if isinstance(run, NewRun)] == pytest.approx(inline)
    plain = _spec(rule="promote")
    first = resolve_engine(plain).engine.suggest(
        SuggestRequest(plain, resolve_engine(plain).options, 1, seed=1, sequence_start=0)
    )
    assert first.params[0]["x"] == pytest.approx(inline[1])  # the Sobol sequence's first point
