"""A study's pinned engine options as the API answers them: every default filled in, apart from the spec."""

from __future__ import annotations

import httpx

from service.domain.spec import StudySpec
from service.engines import resolve_engine
from tests.support import make_spec


def test_the_study_answer_shows_the_pinned_options(api: httpx.Client, study_name: str) -> None:
    spec = make_spec(engine="auto", engine_options={"pool_max": 3})
    created = api.post("/v1/studies", json={"name": study_name, **spec})
    assert created.status_code == 201, created.text
    shown = api.get(f"/v1/studies/{study_name}").json()
    assert shown["engine"] == "gp" and shown["spec"]["engine_options"] == {"pool_max": 3}
    options = shown["engine_options"]
    assert options["pool_max"] == 3 and options["pool_freshness"] == 1 and options == created.json()["engine_options"]
    assert set(options) == set(resolve_engine(StudySpec.model_validate(spec)).options.model_dump())
    # The same spec again (if_exists=get) is the same study: the pinned options are not part of the spec.
    again = api.post("/v1/studies", json={"name": study_name, "if_exists": "get", **spec})
    assert again.status_code == 200 and again.json()["id"] == shown["id"]
