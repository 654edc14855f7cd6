"""The trials table's state (sort, filters, page) as URL query parameters, and its rendered rows."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from service.domain.trial import TrialState
from service.store.browsing import Range, TrialQuery
from service.store.records import StudyRecord, TrialRecord

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class TableParams:
    sort: str = "number"
    descending: bool = False
    states: tuple[str, ...] = ()
    range_field: str = ""
    range_min: str = ""
    range_max: str = ""
    page: int = 1
    page_size: int = PAGE_SIZE

    @classmethod
    def parse(cls, query: Any) -> TableParams:
        """From request query parameters; anything malformed falls back to its default."""

        def number(name: str, default: int, low: int, high: int) -> int:
            try:
                return min(max(int(query.get(name, default)), low), high)
            except ValueError:
                return default

        states = tuple(s for s in query.getlist("state") if s in TrialState._value2member_map_)
        return cls(
            sort=query.get("sort", "number"),
            descending=query.get("desc", "0") == "1",
            states=states,
            range_field=query.get("range_field", ""),
            range_min=query.get("range_min", "").strip(),
            range_max=query.get("range_max", "").strip(),
            page=number("page", 1, 1, 10**9),
            page_size=number("page_size", PAGE_SIZE, 1, MAX_PAGE_SIZE),
        )

    def query(self) -> TrialQuery:
        ranges = []
        low, high = _float(self.range_min), _float(self.range_max)
        if self.range_field and (low is not None or high is not None):
            ranges.append(Range(self.range_field, low, high))
        return TrialQuery(
            states=[TrialState(s) for s in self.states],
            ranges=ranges,
            sort=self.sort,
            descending=self.descending,
            offset=(self.page - 1) * self.page_size,
            limit=self.page_size,
        )

    def encode(self, **changes: Any) -> str:
        values = {**self.__dict__, **changes}
        pairs: list[tuple[str, Any]] = [("sort", values["sort"]), ("desc", 1 if values["descending"] else 0)]
        pairs += [("state", s) for s in values["states"]]
        for key in ("range_field", "range_min", "range_max"):
            if values[key]:
                pairs.append((key, values[key]))
        pairs += [("page", values["page"]), ("page_size", values["page_size"])]
        return urlencode(pairs)


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    url: str


@dataclass(frozen=True)
class Row:
    number: int
    state: str
    cells: list[str]
    source: str


@dataclass
class TableView:
    sort: str
    descending: bool
    states: tuple[str, ...]
    range_field: str
    range_min: str
    range_max: str
    fields: list[Column]
    columns: list[Column]
    rows: list[Row]
    total: int
    page: int
    pages: int
    fragment_url: str
    prev_url: str | None = None
    next_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _source(trial: TrialRecord) -> str:
    """The engine that produced the trial, with the branch of a randomized rule (engine egreedy) when it said."""
    branch = (trial.engine_info or {}).get("branch")
    return f"{trial.source} · {branch}" if branch else trial.source


def table_view(
    study: StudyRecord, trials: list[TrialRecord], total: int, params: TableParams, study_url: str, fragment_url: str
) -> TableView:
    spec = study.spec
    keys = (
        [("number", "#"), ("state", "state")]
        + [(f"param:{p.name}", p.name) for p in spec.params]
        + [(f"value:{m}", m) for m in spec.metric_names]
    )

    def sort_url(key: str) -> str:
        descending = not params.descending if key == params.sort else False
        return f"{study_url}?{params.encode(sort=key, descending=descending, page=1)}#trials-section"

    columns = [Column(key, label, sort_url(key)) for key, label in keys] + [Column("source", "source", "")]
    fields = [
        Column(key, label, "")
        for key, label in keys
        if key.startswith(("param:", "value:")) and not (key.startswith("param:") and spec.param(key[6:]).choices)
    ]
    rows = [
        Row(
            t.number,
            t.state.value,
            [_cell(t.params.get(p.name)) for p in spec.params]
            + [_cell((t.values or {}).get(m)) for m in spec.metric_names],
            _source(t),
        )
        for t in trials
    ]
    pages = max(1, math.ceil(total / params.page_size))
    page = min(params.page, pages)

    def page_url(number: int) -> str:
        return f"{study_url}?{params.encode(page=number)}#trials-section"

    return TableView(
        params.sort,
        params.descending,
        params.states,
        params.range_field,
        params.range_min,
        params.range_max,
        fields,
        columns,
        rows,
        total,
        page,
        pages,
        f"{fragment_url}?{params.encode()}",
        prev_url=page_url(page - 1) if page > 1 else None,
        next_url=page_url(page + 1) if page < pages else None,
    )
