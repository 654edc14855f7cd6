"""`asktell`: inspect studies and trials on a server; `serve`, `worker` and `db` run the server itself.

The server commands are forwarded to the `asktell-server` package, so one `asktell` command covers both sides
while a training job that only installs this client never pulls in the server's model stack.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from asktell.client import Client
from asktell.errors import AsktellError

SIGPIPE_EXIT = 141  # 128 + SIGPIPE: how a Unix tool whose reader closed the pipe ends
SERVER_COMMANDS = {
    "serve": "run the REST API (needs asktell-server)",
    "worker": "run an engine worker (needs asktell-server)",
    "db": "manage the server's database schema (needs asktell-server)",
    "tokens": "create, list or revoke bearer tokens, on the database (needs asktell-server)",
    "namespaces": "create, list or delete namespaces, on the database (needs asktell-server)",
}


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """Aligned plain-text columns under a dashed rule; numeric columns (header included) right-aligned."""
    cells = [list(header), *[["" if c is None else _cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [bool(rows) and all(_is_number(row[i]) for row in rows if row[i] is not None) for i in range(len(header))]
    lines = [
        "  ".join(
            c.rjust(w) if right else c.ljust(w) for c, w, right in zip(row, widths, numeric, strict=True)
        ).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2)


def _studies_list(client: Client, args: argparse.Namespace) -> str:
    studies = client.list_studies(summary=True)
    if args.json:
        return _dump([s.to_dict() for s in studies])
    # The listing's summary value: a Study's best_value property would ask the server once per study.
    rows = [
        [
            s.name,
            s.engine,
            s.state,
            sum((s.trial_counts or {}).values()),
            s.trial_counts or None,
            s.to_dict().get("best_value"),
            [f"{o['name']} ({o['goal'][:3]})" for o in s.spec["objectives"]],
        ]
        for s in studies
    ]
    return table(rows, ["NAME", "ENGINE", "STATE", "TRIALS", "BY STATE", "BEST", "OBJECTIVES"])


def _studies_show(client: Client, args: argparse.Namespace) -> str:
    study = client.get_study(args.name)
    best = study.best_trials()
    if args.json:
        return _dump({**study.to_dict(), "best_trials": [t.to_dict() for t in best]})
    spec = study.spec
    fields = [
        ("study", study.name),
        ("engine", study.engine),
        ("state", study.state),
        ("trials", _cell(study.trial_counts) or "none"),
    ]
    if spec.get("fidelity"):
        fidelity = spec["fidelity"]
        fields.append(("fidelity", f"{fidelity['name']} from {_cell(fidelity['min'])} to {_cell(fidelity['max'])}"))
    lines = [f"{key:<9} {value}" for key, value in fields]
    params = [
        [p["name"], p["type"], p.get("low"), p.get("high"), "log" if p.get("log") else "", p.get("choices")]
        for p in spec["params"]
    ]
    lines += ["", table(params, ["PARAM", "TYPE", "LOW", "HIGH", "SCALE", "CHOICES"])]
    lines += ["", table([[o["name"], o["goal"]] for o in spec["objectives"]], ["OBJECTIVE", "GOAL"])]
    if spec.get("constraints"):
        rows = [[c["name"], c["op"], c["bound"]] for c in spec["constraints"]]
        lines += ["", table(rows, ["CONSTRAINT", "OP", "BOUND"])]
    if best:
        lines += ["", "best:", table([[t.number, t.values, t.params] for t in best], ["TRIAL", "VALUES", "PARAMS"])]
    return "\n".join(lines)


SPEC_KEYS = {"params", "objectives", "constraints", "fidelity", "engine", "engine_options", "seed"}


def _studies_create(client: Client, args: argparse.Namespace) -> str:
    try:
        spec = json.loads(Path(args.spec).read_text())
    except (OSError, ValueError) as error:
        raise AsktellError(f"cannot read the spec {args.spec}: {error}") from error
    if not isinstance(spec, dict):
        raise AsktellError(f"the spec {args.spec} must be a JSON object with params and objectives")
    unknown = sorted(set(spec) - SPEC_KEYS)
    missing = sorted({"params", "objectives"} - set(spec))
    if unknown or missing:
        problems = ([f"unknown key(s) {', '.join(unknown)}"] if unknown else []) + (
            [f"missing {', '.join(missing)}"] if missing else []
        )
        raise AsktellError(f"the spec {args.spec}: {'; '.join(problems)} (keys: {', '.join(sorted(SPEC_KEYS))})")
    study = client.create_study(args.name, **spec, if_exists=args.if_exists)
    return _dump(study.to_dict()) if args.json else f"{study.name}: engine {study.engine}, {study.state}"


def _studies_watch(client: Client, args: argparse.Namespace) -> str:
    from asktell.watch import watch

    watch(client, args.name, args.interval, args.once)
    return ""


def _agent(client: Client, args: argparse.Namespace) -> str:
    from asktell.agent import AgentOptions, run_agent

    if not args.program:
        raise AsktellError("give the command to run after --, e.g. asktell agent STUDY -- python train.py --lr {lr}")
    gpus = [g for g in (args.gpus or "").split(",") if g]
    parallel = args.parallel or max(len(gpus), 1)
    options = AgentOptions(
        study=args.study,
        command=args.program,
        count=args.count,
        parallel=parallel,
        gpus=gpus,
        grace_seconds=args.grace,
        heartbeat_seconds=args.heartbeat,
        literal_braces=args.literal_braces,
        callbacks=_trackers(args),
    )
    code = run_agent(client, options)
    if code:
        raise SystemExit(code)
    return ""


def _trackers(args: argparse.Namespace) -> tuple[Any, ...]:
    """The loggers --mlflow and --wandb ask for, each from asktell.integrations (its framework's extra)."""
    trackers: list[Any] = []
    try:
        if args.mlflow is not None:
            from asktell.integrations.mlflow import MLflowCallback

            trackers.append(MLflowCallback(args.mlflow or None))
        if args.wandb is not None:
            from asktell.integrations.wandb import WandbCallback

            trackers.append(WandbCallback(args.wandb or None))
    except ImportError as error:
        extra = "mlflow" if "mlflow" in str(error) else "wandb"
        raise AsktellError(f"--{extra} needs its package: pip install 'asktell[{extra}]' ({error})") from error
    return tuple(trackers)


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
        trials = trials[-args.limit :]
    if args.json:
        return _dump([t.to_dict() for t in trials])
    rows = [[t.number, t.state, t.values, t.params, t.worker_id] for t in trials]
    return table(rows, ["NUMBER", "STATE", "VALUES", "PARAMS", "WORKER"])


AGENT_HELP = """\
placeholders (each fills one argument of COMMAND; no shell in between):
  {PARAM}        the trial's value of a parameter of the study, e.g. {lr}
  {trial_id}     the trial's number
  {budget}       the fidelity step to train to (studies with a fidelity)
  {resume_from}  the step a resumed paused trial goes on from (0 for a new run)
  {checkpoint}   the checkpoint the trial last reported (for a resumed run)
  A {name} that names none of these is an error (a typo?) unless --literal-braces;
  a shell's ${VAR} is never a placeholder.

metrics: the program reports by printing lines to stdout
    asktell: step=3 val_loss=0.41 checkpoint=ckpt/7.pt
  or by appending JSON lines to the file named by $ASKTELL_METRICS_FILE
    {"step": 3, "val_loss": 0.41, "checkpoint": "ckpt/7.pt"}
  Values without a step are final values. Exit 0 completes the trial with each metric's
  final, else latest, value; any other exit fails it with the tail of stderr. A stop or
  pause answer to a report ends the program: SIGTERM, then SIGKILL after --grace
  seconds (save a checkpoint on SIGTERM; a paused trial resumes from {checkpoint}).

environment of the program: ASKTELL_URL, ASKTELL_STUDY, ASKTELL_TRIAL_ID,
  ASKTELL_METRICS_FILE, ASKTELL_RETRY_SECONDS (and CUDA_VISIBLE_DEVICES with --gpus);
  asktell.current_trial() in the program reads them.

output: a line per finished trial ("trial 7 stopped at step 4: ..."), the program's
  lines prefixed with [trial N] under --parallel, and a summary at the end.
  Ctrl-C ends the programs and fails their trials (again: without the grace period).
"""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asktell", description="Client of the asktell optimization service.")
    # The options are accepted before or after the sub-command; SUPPRESS keeps a later default from erasing them.
    common = argparse.ArgumentParser(add_help=False)
    for target, default, json_default in ((parser, None, False), (common, argparse.SUPPRESS, argparse.SUPPRESS)):
        target.add_argument(
            "--url", default=default, help="server URL (env ASKTELL_URL, default http://127.0.0.1:8000)"
        )
        target.add_argument("--json", action="store_true", default=json_default, help="machine-readable output")
        target.add_argument(
            "--retry-seconds",
            type=float,
            default=default,
            metavar="SECONDS",
            help="how long to retry while the server is unreachable or restarting "
            "(env ASKTELL_RETRY_SECONDS, default 300)",
        )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in SERVER_COMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)  # its own --help comes from the server

    def leaf(group: Any, name: str, func: Callable[[Client, argparse.Namespace], str], summary: str) -> Any:
        sub = group.add_parser(name, parents=[common], help=summary)
        sub.set_defaults(func=func)
        return sub

    studies = commands.add_parser("studies", help="list, show or delete studies").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    leaf(studies, "list", _studies_list, "every study")
    leaf(studies, "show", _studies_show, "a study's spec, trial counts and best trials").add_argument("name")
    create = leaf(studies, "create", _studies_create, "create a study from a JSON spec file")
    create.add_argument("name")
    create.add_argument("--spec", required=True, help="JSON file: params, objectives, constraints, fidelity, engine...")
    create.add_argument(
        "--if-exists",
        choices=["error", "get"],
        default="get",
        help="an identical existing study is fine (get, the default) or an error",
    )
    watching = leaf(studies, "watch", _studies_watch, "a live view: trials by state, best, workers, latest trials")
    watching.add_argument("name")
    watching.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    watching.add_argument("--once", action="store_true", help="print one frame and exit")
    delete = leaf(studies, "delete", _studies_delete, "delete a study and all its trials")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    trials = commands.add_parser("trials", help="list a study's trials").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    listing = leaf(trials, "list", _trials_list, "a study's trials, oldest first")
    listing.add_argument("study")
    listing.add_argument("--state", action="append", help="only trials in this state (repeatable)")
    listing.add_argument("--limit", type=_positive, help="only the last N trials")
    agent = commands.add_parser(
        "agent",
        parents=[common],
        help="run a command as the evaluation of each trial",
        usage="asktell agent STUDY [options] -- COMMAND [ARG ...]",
        description="Run COMMAND once per trial of STUDY: ask, run, report, tell.",
        epilog=AGENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    agent.set_defaults(func=_agent)
    agent.add_argument("study")
    agent.add_argument(
        "--count", type=_positive, help="trials to run in all (default: until the study stops handing them out)"
    )
    agent.add_argument("--parallel", type=_positive, help="commands at once (default: one per --gpus entry, or 1)")
    agent.add_argument("--gpus", help="comma-separated GPU ids, one slot each, set as CUDA_VISIBLE_DEVICES")
    agent.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="seconds between SIGTERM and SIGKILL when a run is stopped (default 10)",
    )
    agent.add_argument(
        "--heartbeat",
        type=float,
        default=30.0,
        help="seconds between heartbeats of a run that reports nothing (default 30)",
    )
    agent.add_argument(
        "--literal-braces",
        action="store_true",
        help="keep {name}s that name no parameter as they are (code passed inline) instead of refusing",
    )
    agent.add_argument(
        "--mlflow",
        nargs="?",
        const="",
        metavar="TRACKING_URI",
        help="log each trial as an MLflow run (experiment: the study's name) at TRACKING_URI "
        "(default: MLFLOW_TRACKING_URI); needs asktell[mlflow]",
    )
    agent.add_argument(
        "--wandb",
        nargs="?",
        const="",
        metavar="PROJECT",
        help="log each trial as a W&B run of PROJECT (default: the study's name; WANDB_MODE=offline "
        "keeps them on disk); needs asktell[wandb]",
    )
    agent.set_defaults(program=[])
    return parser


def _run_server(argv: list[str]) -> int:
    try:
        from service.cli import main as server_main
    except ModuleNotFoundError as error:
        if error.name not in ("service", "service.cli"):
            raise  # the server is installed but broken: its traceback says more than our hint
        print(f"asktell {argv[0]} needs the server: pip install asktell-server", file=sys.stderr)
        return 2
    return server_main(argv, prog="asktell")


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    program: list[str] = []
    if "--" in args_list:  # everything after the first -- is the agent's command, untouched
        cut = args_list.index("--")
        args_list, program = args_list[:cut], args_list[cut + 1 :]
    parser = build_parser()
    args, unknown = parser.parse_known_args(args_list)
    if program:
        args.program = program
    if args.command in SERVER_COMMANDS:
        return _run_server(args_list[args_list.index(args.command) :])
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        with Client(args.url, retry_seconds=args.retry_seconds) as client:
            output = args.func(client, args)
            if output:
                print(output, flush=True)
    except AsktellError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`asktell studies list | head`): stop quietly, as other command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return SIGPIPE_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())
