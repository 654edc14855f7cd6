"""Service configuration: one home, read from ASKTELL_* environment variables or CLI flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.store.urls import is_sqlite

DEFAULT_DATABASE_URL = "sqlite:///./asktell.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASKTELL_", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL. sqlite:///file.db (embedded default) or postgresql://user@host/db.",
    )
    pool_size: int = Field(default=10, ge=1, description="Connections per API process (PostgreSQL).")
    host: str = "127.0.0.1"
    port: int = 8000
    migrate_on_start: bool = Field(default=True, description="Run `db upgrade` when the server starts.")
    embedded_worker: Literal["auto", "on", "off"] = Field(
        default="auto", description="Run an engine worker inside the API process; auto: on for SQLite.")
    worker_device: str = Field(default="cpu", description="Device of the embedded worker: cpu, cuda or auto.")

    @property
    def runs_embedded_worker(self) -> bool:
        if self.embedded_worker == "auto":
            return is_sqlite(self.database_url)
        return self.embedded_worker == "on"
