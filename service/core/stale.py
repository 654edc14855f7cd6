"""Trials whose training job went silent: failed as stale after the study's `stale_after` (or paused again
when they were resumed from a checkpoint), and re-queued under `retry_failed`.

Every API process sweeps on a timer; the sweep is a set of conditional UPDATEs, so replicas sweeping at the
same moment cannot fail a trial twice or miss a late heartbeat.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from datetime import timedelta

from service.core.trials import retry_if_failed
from service.engines import resolve_engine
from service.store import studies as study_store
from service.store import trials as trial_store
from service.store.db import Database
from service.store.models import utcnow

log = logging.getLogger(__name__)

SHORTEST_STALE_AFTER = timedelta(seconds=1)  # the lowest stale_after a spec accepts


async def sweep(db: Database) -> int:
    """One pass over silent active trials; returns how many were failed or paused."""
    now = utcnow()
    async with db.transaction() as conn:
        silent = await trial_store.silent_active_trials(conn, now - SHORTEST_STALE_AFTER)
        if not silent:
            return 0
        studies = await study_store.studies_by_id(conn, sorted({study_id for _, study_id, _ in silent}))
    by_study: dict[int, list[int]] = defaultdict(list)
    for trial_id, study_id, seen in silent:
        study = studies.get(study_id)
        if study is not None and seen < now - timedelta(seconds=study.spec.stale_after):
            by_study[study_id].append(trial_id)
    given_up = 0
    for study_id, trial_ids in by_study.items():
        study = studies[study_id]
        cutoff = now - timedelta(seconds=study.spec.stale_after)
        reason = f"stale: no report or heartbeat for {study.spec.stale_after:g} s"
        resolved = resolve_engine(study.spec, study.engine, study.engine_options) if study.spec.retry_failed else None
        async with db.transaction() as conn:
            for trial_id in trial_ids:
                trial = await trial_store.give_up_if_silent(conn, trial_id, cutoff, reason=reason)
                if trial is None:
                    continue
                given_up += 1
                retry = await retry_if_failed(conn, study, resolved, trial) if resolved is not None else None
                log.info(
                    "study %s trial %d went silent: %s%s",
                    study.name,
                    trial.number,
                    trial.state,
                    f", re-queued as trial {retry.number}" if retry else "",
                )
    return given_up


async def sweep_forever(db: Database, interval: float, stop: asyncio.Event) -> None:
    """Sweep every `interval` seconds (with jitter, so replicas spread out) until `stop` is set."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval * random.uniform(0.8, 1.2))
            return
        except TimeoutError:
            pass
        try:
            await sweep(db)
        except Exception:  # a database hiccup must not end the sweeping; the next pass retries
            log.exception("stale-trial sweep failed")
