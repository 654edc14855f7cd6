"""`asktell studies watch STUDY`: a live terminal view of a running study (rich)."""

from __future__ import annotations

import time
from typing import Any

from asktell.client import Client, Study

RECENT = 10
STATES = ("waiting", "active", "paused", "completed", "failed", "infeasible", "stopped")


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _pairs(values: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={_number(v)}" for k, v in (values or {}).items())


def _plain(value: Any) -> Any:
    """A cell shown as it is: names and categorical values like `[red]` are data, not rich markup."""
    from rich.text import Text

    return Text(str(value))


def render(client: Client, study: Study) -> Any:
    """One frame: the study line, trials by state, best trials, live workers and the latest trials."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    study.refresh()
    counts = study.trial_counts or {}
    summary = Table.grid(padding=(0, 2))
    summary.add_row(
        Text(study.name, style="bold"),
        _plain(f"engine {study.engine}"),
        _plain(f"state {study.state}"),
        time.strftime("%H:%M:%S"),
    )
    by_state = Table(title="trials by state", title_justify="left")
    for state in STATES:
        by_state.add_column(state, justify="right")
    by_state.add_row(*[str(counts.get(s, 0)) for s in STATES])

    best = Table(title="best so far", title_justify="left")
    for column in ("trial", "values", "params"):
        best.add_column(column)
    for trial in study.best_trials()[:RECENT]:
        best.add_row(str(trial.number), _plain(_pairs(trial.values)), _plain(_pairs(trial.params)))

    workers = Table(title="engine workers", title_justify="left")
    for column in ("id", "device", "jobs done", "alive"):
        workers.add_column(column)
    for worker in client.workers():
        workers.add_row(
            _plain(worker["id"]), _plain(worker["device"]), str(worker["jobs_done"]), "yes" if worker["alive"] else "no"
        )

    recent = Table(title=f"latest {RECENT} trials", title_justify="left")
    for column in ("trial", "state", "values", "worker", "params"):
        recent.add_column(column)
    for trial in study.trials()[-RECENT:]:
        recent.add_row(
            str(trial.number),
            trial.state,
            _plain(_pairs(trial.values)),
            _plain(trial.worker_id or ""),
            _plain(_pairs(trial.params)),
        )
    return Group(summary, by_state, best, workers, recent)


def watch(client: Client, name: str, interval: float, once: bool) -> None:
    from rich.console import Console
    from rich.live import Live

    study = client.get_study(name)
    console = Console()
    if once:
        console.print(render(client, study))
        return
    with Live(render(client, study), console=console, refresh_per_second=4) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(render(client, study))
        except KeyboardInterrupt:
            pass
