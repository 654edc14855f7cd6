"""`asktell-server`: the API, the engine workers, the migrations (the `asktell` CLI forwards to it)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from service.config import Settings

T = TypeVar("T")
GRACEFUL_SHUTDOWN_SECONDS = 40  # longer than an ask's default long poll (30 s)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.store.db import upgrade
    from service.store.urls import is_sqlite

    if args.database_url:
        os.environ["ASKTELL_DATABASE_URL"] = args.database_url
    if args.insecure:
        os.environ["ASKTELL_INSECURE"] = "true"
    settings = Settings()
    if args.workers > 1 and is_sqlite(settings.database_url):
        print("--workers > 1 needs PostgreSQL: an SQLite database is served by one process", file=sys.stderr)
        return 2
    if _port_in_use(args.host, args.port):
        print(
            f"cannot serve on {args.host}:{args.port}: address already in use (another asktell serve?). Choose "
            f"another port with --port {args.port + 1} or ASKTELL_PORT={args.port + 1}, and point clients at it "
            f"(ASKTELL_URL=http://{args.host}:{args.port + 1})",
            file=sys.stderr,
        )
        return 2
    upgrade(settings.database_url)  # once, before any worker process starts
    os.environ["ASKTELL_MIGRATE_ON_START"] = "false"
    if not _loopback(args.host) and not settings.insecure and not _auth_configured(settings):
        print(
            f"refusing to serve {args.host} without authentication: create an admin token first "
            "(`asktell tokens create --admin`, or set ASKTELL_ADMIN_TOKEN), or pass --insecure to serve it "
            "open to anyone who can reach it",
            file=sys.stderr,
        )
        return 2
    print(
        f"asktell serving on http://{args.host}:{args.port} (database: {_safe(settings.database_url)})", file=sys.stderr
    )
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=args.access_log,
        # SIGTERM: stop accepting, let requests in flight (long-polled asks included) finish.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return 0


def _port_in_use(host: str, port: int) -> bool:
    """Whether another socket holds the address (bound as uvicorn binds it, with SO_REUSEADDR); any other trouble
    with it is uvicorn's to report."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return False
    family, kind, protocol, _, address = infos[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _auth_configured(settings: Settings) -> bool:
    from service.core.authentication import auth_configured

    admin = settings.admin_token.get_secret_value() if settings.admin_token else None
    return _with_database(settings.database_url, lambda db: auth_configured(db, admin))


def _with_database(url: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run one coroutine against the database from a synchronous command."""
    import asyncio

    from service.store.db import Database

    async def main() -> T:
        db = Database(url, pool_size=1)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


def _database_url(args: argparse.Namespace) -> str:
    from service.store.db import upgrade

    url: str = args.database_url or Settings().database_url
    upgrade(url)
    return url


def _tokens_create(args: argparse.Namespace) -> int:
    from service.core.tokens import create_token
    from service.domain.caller import DEFAULT_NAMESPACE, Role

    role = Role.ADMIN if args.admin else Role(args.role)
    namespace = args.namespace or DEFAULT_NAMESPACE
    issued = _with_database(
        _database_url(args), lambda db: create_token(db, namespace=namespace, role=role, name=args.name)
    )
    record = issued.record
    print(f"token {record.id} ({record.role} of namespace {record.namespace}); shown only this once:", file=sys.stderr)
    print(issued.secret)
    return 0


def _tokens_list(args: argparse.Namespace) -> int:
    from service.core.tokens import list_tokens

    tokens = _with_database(_database_url(args), lambda db: list_tokens(db, args.namespace))
    print(f"{'ID':>4}  {'NAMESPACE':<20} {'ROLE':<7} {'PREFIX':<11} {'REVOKED':<8} NAME")
    for t in tokens:
        print(f"{t.id:>4}  {t.namespace:<20} {t.role:<7} {t.prefix:<11} {'yes' if t.revoked_at else 'no':<8} {t.name}")
    return 0


def _tokens_revoke(args: argparse.Namespace) -> int:
    from service.core.tokens import revoke_token

    revoked = _with_database(_database_url(args), lambda db: revoke_token(db, args.id))
    print(f"token {revoked.id} ({revoked.prefix}...) revoked")
    return 0


def _namespaces(args: argparse.Namespace) -> int:
    from service.core import namespaces

    url = _database_url(args)
    if args.namespace_command == "create":
        created = _with_database(url, lambda db: namespaces.create_namespace(db, args.name))
        print(f"namespace {created.name} created")
    elif args.namespace_command == "delete":
        _with_database(url, lambda db: namespaces.delete_namespace(db, args.name))
        print(f"namespace {args.name} deleted; its tokens are revoked")
    else:
        for n in _with_database(url, namespaces.list_namespaces):
            print(f"{n.name:<20} {n.studies:>6} studies {n.tokens:>4} tokens")
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

    print(
        f"asktell worker on {device}"
        + (f" ({threads} CPU threads per job)" if threads else "")
        + f", database {_safe(url)}",
        file=sys.stderr,
    )
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
    serve.add_argument(
        "--insecure", action="store_true", help="serve a non-loopback address with authentication off (no token exists)"
    )
    serve.set_defaults(func=_serve)

    worker = commands.add_parser("worker", help="run an engine worker (computes model-based suggestions)")
    worker.add_argument("--database-url", help="the API's database (env ASKTELL_DATABASE_URL)")
    worker.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    worker.add_argument("--concurrency", type=int, default=1, help="jobs computed at once")
    worker.add_argument(
        "--lease-seconds",
        type=float,
        default=30.0,
        help="a job whose worker stops renewing for this long is redone elsewhere",
    )
    worker.set_defaults(func=_worker)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    up = db_commands.add_parser("upgrade", help="apply migrations")
    up.add_argument("--database-url")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=_db_upgrade)

    tokens = commands.add_parser("tokens", help="bearer tokens, straight on the database (the bootstrap path)")
    token_commands = tokens.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="create a token and print it (the only time it is shown)")
    create.add_argument("--database-url")
    create.add_argument("--namespace", help="default: the default namespace")
    create.add_argument("--role", choices=["reader", "writer", "admin"], default="writer")
    create.add_argument("--admin", action="store_true", help="an admin token (same as --role admin)")
    create.add_argument("--name", default="", help="what the token is for")
    create.set_defaults(func=_tokens_create)
    listing = token_commands.add_parser("list", help="tokens (never their secrets)")
    listing.add_argument("--database-url")
    listing.add_argument("--namespace")
    listing.set_defaults(func=_tokens_list)
    revoke = token_commands.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("--database-url")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(func=_tokens_revoke)

    namespaces = commands.add_parser("namespaces", help="namespaces (teams), straight on the database")
    namespace_commands = namespaces.add_subparsers(dest="namespace_command", required=True)
    for verb, text in (
        ("create", "create a namespace"),
        ("delete", "delete an empty namespace"),
        ("list", "namespaces with their study and token counts"),
    ):
        command = namespace_commands.add_parser(verb, help=text)
        command.add_argument("--database-url")
        if verb != "list":
            command.add_argument("name")
        command.set_defaults(func=_namespaces)
    return parser


def main(argv: list[str] | None = None, prog: str = "asktell-server") -> int:
    from service.workers.device import prepare_cpu_environment

    prepare_cpu_environment()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    args = build_parser(prog).parse_args(argv)
    from service.errors import AsktellError

    try:
        return int(args.func(args))
    except AsktellError as error:
        print(f"{prog}: {error.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
