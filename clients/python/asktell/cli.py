"""`asktell`: inspect studies and trials on a server; `serve`, `worker` and `db` run the server itself."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from asktell.client import Client
from asktell.errors import AsktellError

SERVER_COMMANDS = ("serve", "worker", "db")


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """Aligned plain-text columns, numbers right-aligned."""
    cells = [[str(h) for h in header], *[["" if c is None else _cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(_is_number(row[i]) for row in rows if row[i] is not None) and bool(rows)
               for i in range(len(header))]
    lines = []
    for r, row in enumerate(cells):
        parts = [c.rjust(w) if numeric[i] and r else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                             strict=True))]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    return str(value)


def _studies_list(client: Client, args: argparse.Namespace) -> str:
    studies = client.list_studies()
    if args.json:
        return json.dumps([s.to_dict() for s in studies], indent=2)
    rows = [[s.name, s.engine, s.state, len(s.spec["params"]), ", ".join(o["name"] for o in s.spec["objectives"])]
            for s in studies]
    return table(rows, ["NAME", "ENGINE", "STATE", "PARAMS", "OBJECTIVES"])


def _studies_show(client: Client, args: argparse.Namespace) -> str:
    study = client.get_study(args.name)
    if args.json:
        return json.dumps(study.to_dict(), indent=2)
    spec = study.spec
    lines = [f"study     {study.name}", f"engine    {study.engine}", f"state     {study.state}",
             "trials    " + (", ".join(f"{k}: {v}" for k, v in (study.trial_counts or {}).items()) or "none"), ""]
    params = [[p["name"], p["type"], p.get("low"), p.get("high"), "log" if p.get("log") else "",
               ", ".join(map(str, p.get("choices") or []))] for p in spec["params"]]
    lines += [table(params, ["PARAM", "TYPE", "LOW", "HIGH", "SCALE", "CHOICES"]), ""]
    lines.append(table([[o["name"], o["goal"]] for o in spec["objectives"]], ["OBJECTIVE", "GOAL"]))
    best = study.best_trials()
    if best:
        lines += ["", "best:", table([[t.number, t.values, t.params] for t in best], ["TRIAL", "VALUES", "PARAMS"])]
    return "\n".join(lines)


def _studies_delete(client: Client, args: argparse.Namespace) -> str:
    if not args.yes:
        if not sys.stdin.isatty():
            raise AsktellError("refusing to delete without --yes when not interactive")
        if input(f"delete study {args.name!r} and all its trials? [y/N] ").strip().lower() != "y":
            return "kept"
    client.delete_study(args.name)
    return f"deleted {args.name}"


def _trials_list(client: Client, args: argparse.Namespace) -> str:
    trials = client.get_study(args.study).trials(state=args.state)
    if args.limit:
        trials = trials[-args.limit:]
    if args.json:
        return json.dumps([t.to_dict() for t in trials], indent=2)
    rows = [[t.number, t.state, t.values, t.params, t.worker_id] for t in trials]
    return table(rows, ["NUMBER", "STATE", "VALUES", "PARAMS", "WORKER"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asktell", description="asktell optimization service client")
    parser.add_argument("--url", help="server URL (env ASKTELL_URL, default http://127.0.0.1:8000)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in SERVER_COMMANDS:
        commands.add_parser(name, help=f"server: asktell {name} --help", add_help=False)

    studies = commands.add_parser("studies", help="list, show or delete studies").add_subparsers(
        dest="action", required=True)
    studies.add_parser("list").set_defaults(func=_studies_list)
    show = studies.add_parser("show")
    show.add_argument("name")
    show.set_defaults(func=_studies_show)
    delete = studies.add_parser("delete")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(func=_studies_delete)

    trials = commands.add_parser("trials", help="list a study's trials").add_subparsers(dest="action", required=True)
    listing = trials.add_parser("list")
    listing.add_argument("study")
    listing.add_argument("--state", action="append", help="only these states (repeatable)")
    listing.add_argument("--limit", type=int, help="only the last N")
    listing.set_defaults(func=_trials_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in SERVER_COMMANDS:
        try:
            from service.cli import main as server_main
        except ModuleNotFoundError as error:
            if error.name != "service":
                raise
            print(f"asktell {args_list[0]} needs the server: pip install asktell-server", file=sys.stderr)
            return 2
        return server_main(args_list, prog="asktell")
    args = build_parser().parse_args(args_list)
    try:
        with Client(args.url) as client:
            print(args.func(client, args))
    except AsktellError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
