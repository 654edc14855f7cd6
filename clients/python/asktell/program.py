"""What `asktell agent` and the program it runs agree on: the placeholders of the command line, and the
metrics the program prints (`asktell: step=3 val_loss=0.41`) or appends as JSON lines to $ASKTELL_METRICS_FILE.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from asktell.client import Study, Trial

PLACEHOLDER = re.compile(r"(?<!\$)\{([A-Za-z0-9_.:/\-]+)\}")  # a shell's ${VAR} is never one
CHECKPOINT = "checkpoint"  # a report may name where the program saved its state
TRIAL_KEYS = ("trial_id", "budget", "resume_from", "checkpoint")
LINE_PREFIX = "asktell:"


@dataclass(frozen=True)
class Metrics:
    """One batch of values read from the program: a report at `step`, or final values when step is None."""

    step: float | None
    values: dict[str, float]
    checkpoint: str | None = None


def parse_metric_line(line: str) -> Metrics | None:
    """`asktell: step=3 val_loss=0.41` → Metrics(3, {"val_loss": 0.41}); None for any other line."""
    text = line.strip()
    if not text.startswith(LINE_PREFIX):
        return None
    values: dict[str, float] = {}
    checkpoint = None
    for token in text[len(LINE_PREFIX) :].split():
        key, sep, raw = token.partition("=")
        if not sep:
            continue
        if key == CHECKPOINT:
            checkpoint = raw
            continue
        try:
            values[key] = float(raw)
        except ValueError:
            continue
    return _metrics(values, checkpoint)


def parse_metric_json(line: str) -> Metrics | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    values: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            with contextlib.suppress(OverflowError):  # an integer too large for a float
                values[key] = float(value)
    checkpoint = data.get(CHECKPOINT)
    return _metrics(values, checkpoint if isinstance(checkpoint, str) else None)


def _metrics(values: dict[str, float], checkpoint: str | None = None) -> Metrics | None:
    step = values.pop("step", None)
    if step is not None and not math.isfinite(step):
        return None  # no step to report it at, and not meant as final values either
    values = {k: v for k, v in values.items() if math.isfinite(v)}
    return Metrics(step, values, checkpoint if step is not None else None) if values else None


def placeholders(command: list[str]) -> set[str]:
    return {name for arg in command for name in PLACEHOLDER.findall(arg)}


def fill_command(command: list[str], trial: Trial) -> list[str]:
    """The command with each `{name}` of a parameter or trial key replaced; other braces stay as they are
    (so `python -c` code and shell `${VAR}` pass through)."""
    data = trial.to_dict()
    # A parameter named like a trial key wins: the user named it in the search space (the agent warns).
    known: dict[str, Any] = {
        "trial_id": trial.number,
        "budget": data.get("budget"),
        "resume_from": data.get("resume_from"),
        "checkpoint": data.get("checkpoint"),
        **trial.params,
    }

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in known:
            return match.group(0)
        filled = known[name]
        if filled is None:
            return "0" if name == "resume_from" else ""
        if isinstance(filled, float) and filled.is_integer() and name in ("budget", "resume_from"):
            return str(int(filled))
        return str(filled)

    return [PLACEHOLDER.sub(value, arg) for arg in command]


def unknown_placeholders(study: Study, command: list[str]) -> list[str]:
    """Brace names in the command that are neither parameters nor trial keys: typos, or code braces."""
    params = {p["name"] for p in study.spec["params"]}
    return sorted(placeholders(command) - params - set(TRIAL_KEYS))
