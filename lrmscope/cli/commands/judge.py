"""`lrmscope judge` (judge saved samples, resumable) and `lrmscope judges` (the list)."""

from __future__ import annotations

import argparse

from rich.text import Text

from lrmscope.cli.options import add_judge_options, count, existing_db, judge_options
from lrmscope.cli.printer import progress_columns, say
from lrmscope.cli.setup import load_judges
from lrmscope.core.jury import TIES, Jury
from lrmscope.engine.judges.base import Judge
from lrmscope.errors import LrmscopeError
from lrmscope.vocab import DEFAULT_JUDGE, JURY


def register(commands) -> None:
    judge = commands.add_parser(
        "judge",
        help="judge saved samples with a safety judge (resumable)",
        description="Judge the thought, the answer and/or the full response of every finished "
        "sample in a database. Verdicts already there (same judge, version and prompt) are "
        "skipped, so an interrupted run resumes where it stopped. Empty parts are not judged.",
    )
    judge.add_argument("database", help="an lrmscope SQLite file")
    judge.add_argument(
        "--judge",
        default=DEFAULT_JUDGE,
        metavar="NAME[=ARG]",
        help="rs-match (default), llama-guard=MODEL, llama-guard-gguf=FILE, harmbench=MODEL, "
        "openai-moderation, or jury=JUDGE,JUDGE,... (the majority of their saved verdicts; see "
        "`lrmscope judges`)",
    )
    judge.add_argument(
        "--part", default="think,answer,full", help="comma-separated: think, answer, full"
    )
    judge.add_argument(
        "--include-interrupted", action="store_true", help="also judge interrupted samples"
    )
    judge.add_argument("--batch-size", type=count, default=8, help="(default 8)")
    judge.add_argument(
        "--jury-ties",
        choices=TIES,
        default=TIES[0],
        help="jury=...: the verdict of a tie between its members' votes (default unsafe)",
    )
    add_judge_options(judge)
    judge.set_defaults(func=cmd_judge)

    judges = commands.add_parser(
        "judges", help="list the judges, their arguments and the device they would use"
    )
    judges.set_defaults(func=cmd_judges)


def _parts(value: str) -> list[str]:
    from lrmscope.vocab import PARTS

    parts = [p.strip() for p in value.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise LrmscopeError(
            f"unknown part {', '.join(unknown) or value!r}: use think, answer, full"
        )
    return list(dict.fromkeys(parts))


def cmd_judge(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from lrmscope.core import judge as judging
    from lrmscope.core import jury as juries
    from lrmscope.store.filters import SampleFilter

    parts = _parts(args.part)
    store = existing_db(args.database)
    path = store.path
    statuses = ("done", "interrupted") if args.include_interrupted else ("done",)
    if store.count_samples(SampleFilter(statuses=statuses)) == 0:
        raise LrmscopeError(f"{path} has no finished samples to judge")
    err = Console(stderr=True, highlight=False)
    name, _, argument = args.judge.strip().partition("=")
    if name == JURY:
        samples = SampleFilter(statuses=statuses)
        judge: Judge | Jury = Jury.parse(argument, args.jury_ties).for_samples(store, samples)
        summary = juries.plan(store, judge, parts, samples)
        say(err, f"{judge.name} {judge.version}: {summary.todo} parts every member judged")
    else:
        with err.status(Text(f"loading judge {args.judge}…")):
            [judge] = load_judges(
                [args.judge],
                judge_options(args),
            )
        summary = judging.plan(store, judge, parts, statuses)
        say(err, f"{judge.name} {judge.version} on {judge.device}: {summary.todo} to judge")
    interrupted = False
    with Progress(*progress_columns(), console=err, transient=False) as progress:
        task = progress.add_task("judging", total=summary.todo, rate="")

        def advance(n: int) -> None:
            progress.advance(task, n)
            speed = progress.tasks[0].speed
            progress.update(task, rate=f"{speed:.1f}/s" if speed else "")

        try:
            if isinstance(judge, Jury):
                juries.run(store, judge, parts, samples, summary, advance=advance)
            else:
                judging.run(
                    store,
                    judge,
                    parts,
                    statuses,
                    summary,
                    batch_size=args.batch_size,
                    advance=advance,
                )
        except KeyboardInterrupt:
            interrupted = True
    table = Table(
        "part",
        "safe",
        "unsafe",
        "unparsed",
        "empty (not judged)",
        "judged before",
        title="verdicts",
    )
    for row in judging.summary_rows(summary, parts):
        table.add_row(*(Text(str(value)) for value in row.values()))
    Console(highlight=False).print(table)
    if interrupted:
        say(err, "interrupted: verdicts so far are saved; run the same command to resume")
        return 130
    checked = judging.check_answers(store)
    if checked:
        outcomes = ", ".join(f"{n} {outcome}" for outcome, n in sorted(checked.items()))
        say(err, f"answers of reasoning prompts checked: {outcomes}")
    return 0


def cmd_judges(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lrmscope.engine.judges.registry import JUDGES
    from lrmscope.engine.judges.rsmatch import REFUSAL_SETS

    table = Table("judge", "argument", "what it is")
    for name, info in JUDGES.items():
        table.add_row(Text(name), Text(info.argument), Text(info.summary))
    console = Console(highlight=False)
    console.print(table)
    sets = ", ".join(f"{name} ({len(strings)} strings)" for name, strings in REFUSAL_SETS.items())
    say(console, f"refusal sets: {sets}")
    say(console, f"transformers judges would run on: {_torch_device()}")
    from lrmscope.core.models import describe_machine

    say(console, f"llama-guard-gguf would run on: {describe_machine()['device']}")
    return 0


def _torch_device() -> str:
    try:
        import torch
    except ImportError:
        return "unavailable (pip install torch transformers)"
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)}), bfloat16"
    return "cpu, float32 (no CUDA device)"
