"""`current_trial()`: the trial a job was started for, from the environment `asktell agent` sets.

A training script that calls it works under the agent (it reports and tells through the SDK) and on its
own (it gets None and uses its defaults), with no flag to switch.
"""

from __future__ import annotations

import os

from asktell.client import Client, Trial

STUDY_VARIABLE = "ASKTELL_STUDY"
TRIAL_VARIABLE = "ASKTELL_TRIAL_ID"


def current_trial(client: Client | None = None) -> Trial | None:
    """The trial named by ASKTELL_STUDY and ASKTELL_TRIAL_ID (its number), on the server of ASKTELL_URL with
    ASKTELL_TOKEN; None when the job was not started for a trial."""
    study, number = os.environ.get(STUDY_VARIABLE), os.environ.get(TRIAL_VARIABLE)
    if not study or not number:
        return None
    client = client or Client()
    return client.get_study(study).trial(int(number))
