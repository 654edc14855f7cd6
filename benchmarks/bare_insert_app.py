"""The ceiling for the tell endpoint: a bare FastAPI app whose one endpoint inserts one row via asyncpg.

    ASKTELL_BARE_DSN=postgresql://postgres@127.0.0.1/db uvicorn benchmarks.bare_insert_app:app
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(os.environ["ASKTELL_BARE_DSN"], min_size=4, max_size=20)
    async with app.state.pool.acquire() as connection:
        await connection.execute("CREATE TABLE IF NOT EXISTS bare_results (id BIGSERIAL PRIMARY KEY, "
                                 "trial INTEGER NOT NULL, value DOUBLE PRECISION NOT NULL)")
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.post("/insert/{trial}")
async def insert(trial: int, request: Request) -> dict[str, int]:
    body = await request.json()
    async with request.app.state.pool.acquire() as connection:
        row_id = await connection.fetchval("INSERT INTO bare_results (trial, value) VALUES ($1, $2) RETURNING id",
                                           trial, float(body["values"]["loss"]))
    return {"id": row_id}
