"""The FastAPI application: the REST API and the dashboard, error handlers, limits, and the lifetime of the database
and background tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service import __version__
from service.api import admin, health, studies, trials, workers
from service.api.errors import install_error_handlers
from service.api.limits import BodySizeLimit
from service.api.nul import RefuseNul
from service.config import Settings
from service.core import fleet, tokens
from service.core.authentication import Authenticator
from service.core.stale import sweep_forever
from service.store.db import Database, upgrade
from service.ui import routes as ui_routes
from service.workers.device import configure_threads, resolve_device
from service.workers.runner import Worker, WorkerSettings

log = logging.getLogger(__name__)

AUTH_OFF_WARNING = (
    "AUTHENTICATION IS OFF: anyone who can reach this server has admin rights. Turn it on with "
    "`asktell tokens create --admin` (or ASKTELL_ADMIN_TOKEN) before exposing it."
)
NO_WORKER_WARNING = (
    "NO ENGINE WORKER IS ALIVE: until one runs, studies whose engine fits a model (gp and the "
    "other model engines) get Sobol points past their initial design (source sobol-fallback). "
    "Start one on this database: `asktell worker --database-url ...`."
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await asyncio.to_thread(upgrade, settings.database_url)
        app.state.db = db = Database(settings.database_url, pool_size=settings.pool_size)
        app.state.auth = Authenticator(db, cache_seconds=settings.auth_cache_seconds)
        if settings.admin_token is not None and await tokens.install_token(db, settings.admin_token.get_secret_value()):
            log.info("installed the admin token from ASKTELL_ADMIN_TOKEN (namespace default)")
        if not await app.state.auth.enabled():
            log.warning(AUTH_OFF_WARNING)
        if not settings.runs_embedded_worker and not await fleet.any_live_worker(db):
            log.warning(NO_WORKER_WARNING)
        await db.signals.start()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(sweep_forever(db, settings.stale_sweep_seconds, stop), name="stale-sweep")]
        if settings.runs_embedded_worker:
            device = resolve_device(settings.worker_device)
            await asyncio.to_thread(configure_threads, 1, 1)  # leave a core to the API
            worker = Worker(db, WorkerSettings(device=device, concurrency=1))
            tasks.append(asyncio.create_task(worker.run(stop), name="embedded-engine-worker"))
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await db.dispose()

    app = FastAPI(
        title="asktell",
        version=__version__,
        description="Ask/tell black-box optimization: studies, trials, and suggestions from pluggable engines.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # Routes are matched in order, one by one: the trial routes (ask, tell, report first) carry nearly all traffic.
    for router in (trials.router, studies.router, workers.router, admin.router, health.router, ui_routes.router):
        app.include_router(router)
    app.mount(ui_routes.STATIC, ui_routes.static_files, name="ui-static")
    if settings.cors_origins:  # closed unless origins are named: no wildcard default
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(RefuseNul)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)  # outermost: it also bounds what RefuseNul reads
    return app
