"""`asktell-server`: the API, the engine workers, the migrations (the `asktell` CLI forwards to it)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from service.config import Settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.store.db import upgrade
    from service.store.urls import is_sqlite

    if args.database_url:
        os.environ["ASKTELL_DATABASE_URL"] = args.database_url
    settings = Settings()
    if args.workers > 1 and is_sqlite(settings.database_url):
        print("--workers > 1 needs PostgreSQL: an SQLite database is served by one process", file=sys.stderr)
        return 2
    upgrade(settings.database_url)  # once, before any worker process starts
    os.environ["ASKTELL_MIGRATE_ON_START"] = "false"
    print(f"asktell serving on http://{args.host}:{args.port} (database: {_safe(settings.database_url)})",
          file=sys.stderr)
    uvicorn.run("service.api.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level, access_log=args.access_log)
    return 0


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _worker(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from service.store.db import Database
    from service.workers.device import configure_threads, resolve_device
    from service.workers.runner import Worker, WorkerSettings

    url = args.database_url or Settings().database_url
    device = resolve_device(args.device)
    threads = configure_threads(args.concurrency) if device == "cpu" else None
    settings = WorkerSettings(device=device, concurrency=args.concurrency, lease_seconds=args.lease_seconds)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        db = Database(url, pool_size=args.concurrency + 2)
        try:
            await Worker(db, settings).run(stop)
        finally:
            await db.dispose()

    print(f"asktell worker on {device}" + (f" ({threads} CPU threads per job)" if threads else "")
          + f", database {_safe(url)}", file=sys.stderr)
    asyncio.run(main())
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from service.store.db import upgrade

    url = args.database_url or Settings().database_url
    upgrade(url, args.revision)
    print(f"database {_safe(url)} is at revision {args.revision}")
    return 0


def build_parser(prog: str = "asktell-server") -> argparse.ArgumentParser:
    settings = Settings()
    parser = argparse.ArgumentParser(prog=prog, description="asktell server")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the REST API (SQLite in ./asktell.db unless configured)")
    serve.add_argument("--database-url", help="e.g. postgresql+psycopg://user@host/db (env ASKTELL_DATABASE_URL)")
    serve.add_argument("--host", default=settings.host)
    serve.add_argument("--port", type=int, default=settings.port)
    serve.add_argument("--workers", type=int, default=1, help="API processes (PostgreSQL only for more than 1)")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=False)
    serve.set_defaults(func=_serve)

    worker = commands.add_parser("worker", help="run an engine worker (computes model-based suggestions)")
    worker.add_argument("--database-url", help="the API's database (env ASKTELL_DATABASE_URL)")
    worker.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    worker.add_argument("--concurrency", type=int, default=1, help="jobs computed at once")
    worker.add_argument("--lease-seconds", type=float, default=30.0,
                        help="a job whose worker stops renewing for this long is redone elsewhere")
    worker.set_defaults(func=_worker)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    up = db_commands.add_parser("upgrade", help="apply migrations")
    up.add_argument("--database-url")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=_db_upgrade)
    return parser


def main(argv: list[str] | None = None, prog: str = "asktell-server") -> int:
    from service.workers.device import prepare_cpu_environment

    prepare_cpu_environment()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    args = build_parser(prog).parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
