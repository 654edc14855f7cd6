"""Path parameters with the ranges their database columns hold: a number beyond them is a 422, not a 500."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

TrialNumber = Annotated[int, Path(ge=0, le=2**31 - 1, description="The trial's number in its study.")]
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
