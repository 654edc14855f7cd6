"""The median stopping rule through the API on each backend."""

from __future__ import annotations

import httpx

from service.domain.spec import StudySpec

SPEC = StudySpec.model_validate(
    {
        "params": [{"name": "x", "type": "float", "low": 0, "high": 1}],
        "objectives": [{"name": "loss", "goal": "minimize"}],
        "fidelity": {"name": "epoch", "min": 1, "max": 10},
        "engine": "random",
        "engine_options": {"stopping": "median", "stopping_min_trials": 3, "stopping_grace": 2},
    }
)


def test_stopping_through_the_api(api: httpx.Client, study_name: str) -> None:
    body = {"name": study_name, **SPEC.model_dump(mode="json")}
    assert api.post("/v1/studies", json=body).status_code == 201
    trials = api.post(f"/v1/studies/{study_name}/ask", json={"count": 4}).json()["trials"]
    for trial, losses in zip(trials, ([1.0, 0.8, 0.6], [0.9, 0.5, 0.4], [1.2, 1.0, 0.9]), strict=False):
        for epoch, loss in enumerate(losses, start=1):
            answer = api.post(
                f"/v1/studies/{study_name}/trials/{trial['number']}/report",
                json={"step": epoch, "values": {"loss": loss}},
            ).json()
            assert answer["action"] == "continue"
        api.post(
            f"/v1/studies/{study_name}/trials/{trial['number']}/tell", json={"values": {"loss": losses[-1]}}
        ).raise_for_status()
    last = trials[3]["number"]
    assert (
        api.post(f"/v1/studies/{study_name}/trials/{last}/report", json={"step": 1, "values": {"loss": 3.0}}).json()[
            "action"
        ]
        == "continue"
    )
    answer = api.post(
        f"/v1/studies/{study_name}/trials/{last}/report", json={"step": 2, "values": {"loss": 2.0}}
    ).json()
    assert answer["action"] == "stop" and "median" in answer["reason"]
    assert answer["trial"]["state"] == "stopped" and answer["trial"]["values"] == {"loss": 2.0}
