"""The ceiling for the tell endpoint: a bare FastAPI app whose one POST endpoint inserts one row via asyncpg.

Nothing else: no validation model, no ORM, no transaction helper. The asyncpg pool holds up to 20
connections, as many as one asktell API process may open (pool_size 10 plus 10 overflow).

    ASKTELL_BARE_DSN=postgresql://postgres@127.0.0.1/db \
        uvicorn benchmarks.bare_insert_app:app --loop uvloop --http httptools
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the pool and create the one table."""
    app.state.pool = await asyncpg.create_pool(os.environ["ASKTELL_BARE_DSN"], min_size=4, max_size=20)
    async with app.state.pool.acquire() as connection:
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS bare_results (id BIGSERIAL PRIMARY KEY, "
            "trial INTEGER NOT NULL, value DOUBLE PRECISION NOT NULL)"
        )
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    """Ready once the lifespan has opened the pool."""
    return {"status": "ok"}


@app.post("/insert/{trial}")
async def insert(trial: int, request: Request) -> dict[str, int]:
    """Insert one row (the trial number and the body's `values.loss`) and return its id."""
    body = await request.json()
    async with request.app.state.pool.acquire() as connection:
        row_id = await connection.fetchval(
            "INSERT INTO bare_results (trial, value) VALUES ($1, $2) RETURNING id", trial, float(body["values"]["loss"])
        )
    return {"id": row_id}
