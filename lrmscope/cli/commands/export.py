"""`lrmscope export DB`: saved samples as JSONL or CSV, or a SafeChain-style training set."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import nullcontext
from pathlib import Path

from lrmscope.cli.options import add_runs_option, check_runs, existing_db, positive_int
from lrmscope.cli.printer import say
from lrmscope.errors import LrmscopeError

_SAFECHAIN_HELP = (
    "write a SafeChain training set (JSONL: instruction, response, label) as the study built it: "
    "for each prompt of each run, in --mode (default: default), keep it only if ALL its samples "
    "(at least the run's K) finished with the FULL response judged safe by --judge (its newest "
    "verdict; Safe@K = 1 on full); an unsafe, unparsed or missing full verdict or an unfinished "
    "sample rules the prompt out. One of its samples is chosen at random (--seed); response is "
    "the text the model generated (no prefill, no opening <think> tag)"
)


def register(commands) -> None:
    parser = commands.add_parser(
        "export",
        help="write saved samples as JSONL or CSV, or a SafeChain-style training set",
        description="Write one record per finished sample of an lrmscope database: prompt, "
        "model, mode, thought, answer, token counts, injected spans, sampler settings and the "
        "newest verdict of each judge per part. Text is written verbatim. With -o the file "
        "appears only when complete.",
    )
    parser.add_argument("database", help="an lrmscope SQLite file")
    parser.add_argument(
        "--format",
        choices=("jsonl", "csv", "inspect"),
        default="jsonl",
        help="jsonl (default), csv (nested values as JSON strings), or inspect: an Inspect eval "
        "log per run (RUN.eval in the folder -o names; the thought in the assistant message's "
        "reasoning block, a score per judge and part; needs pip install 'lrmscope[inspect]')",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="output file (default: stdout); with --format inspect, a folder (made if missing)",
    )
    add_runs_option(
        parser,
        "only these runs (one or more ids, repeatable)",
    )
    parser.add_argument(
        "--mode",
        help="only samples of this mode (default, zerothink, lessthink, morethink, or one of your "
        "own)",
    )
    parser.add_argument(
        "--include-interrupted", action="store_true", help="also export interrupted samples"
    )
    safechain = parser.add_argument_group('SafeChain set (docs/study.md "SafeChain construction")')
    safechain.add_argument("--safechain", action="store_true", help=_SAFECHAIN_HELP)
    safechain.add_argument(
        "--judge",
        metavar="NAME",
        help="the judge whose verdicts decide "
        "(its name in the database, e.g. rs-match or llama-guard)",
    )
    safechain.add_argument("--seed", type=positive_int, help="seed of the choice (default 0)")
    safechain.add_argument(
        "--strict",
        action="store_true",
        help="also require the thought (where the model wrote one) and the answer (which must "
        "exist) judged safe, not only the full response",
    )
    safechain.add_argument(
        "--require-thought",
        action="store_true",
        help="leave out prompts with a sample whose thought the model did not write (absent, "
        "empty) or did not close",
    )
    parser.set_defaults(func=cmd_export)


def _check_args(args: argparse.Namespace) -> None:
    if args.safechain:
        if not args.judge:
            raise LrmscopeError("--safechain needs --judge NAME: the judge whose verdicts decide")
        if args.format != "jsonl":
            raise LrmscopeError(f"--safechain writes JSONL only; drop --format {args.format}")
        if args.include_interrupted:
            raise LrmscopeError(
                "--safechain keeps finished samples only; drop --include-interrupted"
            )
    elif args.format == "inspect" and not args.output:
        raise LrmscopeError("--format inspect writes a file per run: give their folder with -o DIR")
    elif args.judge or args.seed is not None or args.strict or args.require_thought:
        raise LrmscopeError(
            "--judge, --seed, --strict and --require-thought apply to --safechain only; "
            "add --safechain"
        )


def _stdout():
    """Standard output as UTF-8, with the newlines the writers choose (csv writes \\r\\n)."""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding="utf-8", newline="")
    return nullcontext(sys.stdout)


def cmd_export(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lrmscope.core import export
    from lrmscope.engine.modes import mode_name
    from lrmscope.store import reads
    from lrmscope.store.filters import SampleFilter
    from lrmscope.text import visible

    _check_args(args)
    mode = mode_name(args.mode) if args.mode else None
    runs = tuple(dict.fromkeys(args.run or ()))
    output = Path(args.output).expanduser() if args.output else None
    store = existing_db(args.database)
    conn, where = store.conn, visible(str(store.path))
    target = visible(str(output)) if output else "stdout"
    check_runs(store, runs)
    statuses = ("done", "interrupted") if args.include_interrupted else ("done",)
    if args.format == "inspect":
        assert output is not None  # _check_args
        return _inspect_logs(conn, output, runs, statuses, mode)
    if args.safechain:
        rule = export.SafeChainRule(strict=args.strict, require_thought=args.require_thought)
        write = _safechain_writer(
            conn, where, target, args.judge, mode or "default", runs, args.seed or 0, rule
        )
    else:
        selection = SampleFilter(runs=runs, statuses=statuses, mode=mode)
        if reads.count_samples(conn, selection) == 0:
            what = "finished or interrupted" if args.include_interrupted else "finished"
            hint = "" if args.include_interrupted else " (--include-interrupted adds interrupted)"
            raise LrmscopeError(f"no {what} samples in {where} match the filters{hint}")
        writer = export.write_csv if args.format == "csv" else export.write_jsonl

        def write(out) -> str:
            written = writer(export.records(conn, selection), out)
            return f"wrote {written} sample{'s' * (written != 1)} to {target}"

    try:
        with export.atomic_output(output) if output else _stdout() as out:
            message = write(out)
            out.flush()
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    say(Console(stderr=True), message)
    return 0


def _inspect_logs(conn, folder: Path, runs: tuple, statuses: tuple, mode: str | None) -> int:
    from rich.console import Console

    from lrmscope.core import inspect_log
    from lrmscope.text import visible

    console = Console(stderr=True)
    written = 0
    for run_id, path, samples in inspect_log.write_logs(conn, folder, runs, statuses, mode):
        say(console, f"wrote run {run_id} ({samples} samples) to {visible(str(path))}")
        written += 1
    if not written:
        raise LrmscopeError("no samples match the filters: no Inspect log written")
    return 0


def _safechain_writer(
    conn, where: str, target: str, judge: str, mode: str, runs: tuple, seed: int, rule
):
    from lrmscope.core import export
    from lrmscope.store import reads
    from lrmscope.text import visible

    judges = reads.judges(conn)
    if judge not in judges:
        raise LrmscopeError(
            f"judge {visible(judge)!r} has no verdicts in {where} (judges there: "
            f"{', '.join(map(visible, judges)) or 'none; run lrmscope judge'})"
        )

    def write(out) -> str:
        counts = export.SafeChainCounts()
        export.write_jsonl(
            export.safechain(
                conn, judge, mode=mode, runs=runs, seed=seed, counts=counts, rule=rule
            ),
            out,
        )
        scope = f"mode {mode}" + (f", runs {', '.join(map(str, runs))}" if runs else "")
        if counts.prompts == 0:
            raise LrmscopeError(f"no samples in {scope} in {where}; choose --mode or --run")
        parts = "full response, thought and answer" if rule.strict else "full response"
        thought = ", each with a thought" if rule.require_thought else ""
        summary = (
            f"{counts.kept} of {counts.prompts} prompts ({scope}) have every sample "
            f"judged safe on the {parts} by {visible(judge)}{thought}"
        )
        excluded = f" (left out: {counts.reasons()})" if counts.excluded else ""
        if counts.kept == 0:
            raise LrmscopeError(f"no prompt qualifies: {summary}{excluded}")
        return f"kept {summary}{excluded}; wrote {counts.kept} rows to {target} (seed {seed})"

    return write
