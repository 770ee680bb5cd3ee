"""The `lrmscope` command line."""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
from collections.abc import Sequence
from importlib import import_module

from lrmscope import __version__
from lrmscope.errors import LrmscopeError
from lrmscope.store import db as store_db

# The commands, in the order `lrmscope --help` lists them: modules of lrmscope/cli/commands/,
# each with `register(commands)`, which adds its parser and sets its function.
COMMANDS = (
    "chat",
    "compare",
    "generate",
    "eval",
    "judge",
    "metrics",
    "export",
    "report",
    "review",
    "models",
    "doctor",
)
REGISTERED_BY = {"judges": "judge"}  # commands a module of another name registers


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, exit code 2. No abbreviated options: argparse would
    take `--api` as `--api-key` without a word."""

    def __init__(self, **kwargs) -> None:
        super().__init__(allow_abbrev=False, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of the one `argv` names (its first word that is not an
    option): importing every command's module costs a tenth of a second that `lrmscope metrics`
    would spend for nothing. Without a known command (`--help`, a typo), all of them."""
    parser = _Parser(
        prog="lrmscope",
        description="A terminal workbench for the safety of reasoning language models.",
    )
    parser.add_argument("--version", action="version", version=f"lrmscope {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and llama.cpp's log on errors"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    word = next((arg for arg in argv or () if not arg.startswith("-")), None)
    named = REGISTERED_BY.get(word or "", word)
    for module in (named,) if named in COMMANDS else COMMANDS:
        import_module(f"lrmscope.cli.commands.{module}").register(commands)
    return parser


# -- entry point ---------------------------------------------------------------------------------


def _one_line(message: str) -> str:
    """An error message as one inert line: it may quote paths or a model's template."""
    from lrmscope.text import visible

    return visible(message.replace("\n", " "))


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except LrmscopeError as exc:
        if args.debug:
            raise
        print(f"lrmscope: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lrmscope: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug or os.environ.get("LRMSCOPE_DEBUG"):
            raise
        problem = _database_problem(args, exc)
        if problem is not None:
            print(f"lrmscope: error: {_one_line(problem)}", file=sys.stderr)
            return 2
        print(
            f"lrmscope: internal error: {type(exc).__name__}: {_one_line(str(exc))} (run with "
            "--debug for the traceback, and report it)",
            file=sys.stderr,
        )
        return 1


def _database_problem(args: argparse.Namespace, exc: Exception) -> str | None:
    """A database error that the user's environment caused (another writer holding the lock, a
    full or failing disk), said as one line naming the fix; None for any other error."""
    if not isinstance(exc, sqlite3.OperationalError):
        return None
    text = str(exc)
    if "locked" in text:
        return (
            f"the database is locked by another writer (waited {store_db.BUSY_TIMEOUT_S} s); let "
            "it finish or use another database file"
        )
    if "full" in text or "disk I/O error" in text:
        path = getattr(args, "db", None) or getattr(args, "database", None)
        if path is None and hasattr(args, "db"):
            path = store_db.default_db_path()
        return (
            f"cannot write to the database {path or ''} ({text}): its disk is full or failing; "
            "free space on it (what was saved before is kept) or choose another database file"
        )
    return None
