"""`lrmscope doctor`: check the install and the database, and say what to fix."""

from __future__ import annotations

import argparse
from pathlib import Path

from lrmscope.cli.options import add_db_option


def register(commands) -> None:
    parser = commands.add_parser(
        "doctor",
        help="check the install (llama.cpp build, AMX, threads, models, torch) and the database",
        description="Check Python, llama-cpp-python's build (CPU or CUDA, its system info, the "
        "AMX repacking crash), threads, the embedded model, torch and transformers, and the "
        "database (writable, schema version). One line each: ok, warn or fail, and what to fix. "
        "Exit code 1 when a check fails. No network.",
    )
    add_db_option(parser)
    parser.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from lrmscope.core.doctor import run_checks
    from lrmscope.store import default_db_path
    from lrmscope.text import visible

    db_path = Path(args.db).expanduser() if args.db else default_db_path()
    checks = run_checks(db_path, debug=args.debug)
    for check in checks:
        line = f"{check.status:<4} {check.name}: {check.detail}"
        if check.fix:
            line += f" (fix: {check.fix})"
        print(visible(line.replace("\n", " ")), flush=True)
    failed = sum(check.status == "fail" for check in checks)
    warned = sum(check.status == "warn" for check in checks)
    print(f"{len(checks) - failed - warned} ok, {warned} warnings, {failed} failures")
    return 1 if failed else 0
