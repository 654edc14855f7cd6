"""The FastAPI application: routers, error handlers, and the database's lifetime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import __version__
from service.api import health, studies, trials, workers
from service.api.errors import install_error_handlers
from service.config import Settings
from service.store.db import Database, upgrade
from service.ui import routes as ui_routes
from service.workers.device import configure_threads, resolve_device
from service.workers.runner import Worker, WorkerSettings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await asyncio.to_thread(upgrade, settings.database_url)
        app.state.db = Database(settings.database_url, pool_size=settings.pool_size)
        await app.state.db.signals.start()
        stop = asyncio.Event()
        embedded = None
        if settings.runs_embedded_worker:
            device = resolve_device(settings.worker_device)
            await asyncio.to_thread(configure_threads, 1, 1)  # leave a core to the API
            worker = Worker(app.state.db, WorkerSettings(device=device, concurrency=1))
            embedded = asyncio.create_task(worker.run(stop), name="embedded-engine-worker")
        try:
            yield
        finally:
            stop.set()
            if embedded is not None:
                await embedded
            await app.state.db.dispose()

    app = FastAPI(
        title="asktell",
        version=__version__,
        description="Ask/tell black-box optimization: studies, trials, and suggestions from pluggable engines.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for router in (studies.router, trials.router, workers.router, health.router, ui_routes.router):
        app.include_router(router)
    app.mount(ui_routes.STATIC, ui_routes.static_files, name="ui-static")
    return app
