"""The `lrmscope` command line."""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys

from rich.text import Text

from lrmscope import __version__
from lrmscope.cliargs import (
    add_db_option,
    add_generation_options,
    add_model_options,
    checked_db_path,
    count,
    existing_db,
    generation_settings,
    load_backend,
    number,
    positive_int,
    progress_columns,
    say,
    start_run,
)
from lrmscope.errors import LrmscopeError
from lrmscope.store.db import BUSY_TIMEOUT_S

DEFAULT_PROMPT_DATASET = "adhoc"


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr, exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lrmscope",
        description="A terminal workbench for the safety of reasoning language models.",
    )
    parser.add_argument("--version", action="version", version=f"lrmscope {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and llama.cpp's log on errors"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    gen = commands.add_parser(
        "generate",
        help="generate one response under a decoding mode, streamed and saved",
        description="Generate one response from a GGUF model under a decoding mode of the "
        "SafeChain study. The thought streams dimmed, injected text is marked «like this», then "
        "the answer; the sample is saved to the database as it streams.",
    )
    gen.add_argument("prompt", help="the user prompt ('-' reads it from standard input)")
    gen.add_argument("--system", metavar="TEXT", help="a system prompt (R1 distills want none)")
    add_generation_options(gen)
    add_model_options(gen)
    add_db_option(gen)
    gen.set_defaults(func=cmd_generate)

    chat = commands.add_parser(
        "chat",
        help="the chat: thought and answer stream apart, the decoding mode switches live",
        description="A full-screen chat with a GGUF model. The thought streams into its own "
        "panel, injected text is highlighted, f2-f5 switch the decoding mode (at once while the "
        "model thinks), f6 re-runs the last prompt, escape stops. Every turn is saved.",
    )
    chat.add_argument("--title", help="a title for this chat session")
    chat.add_argument(
        "--resume",
        type=count,
        metavar="SESSION",
        help="continue an earlier chat (its run id, as printed when it ended)",
    )
    chat.add_argument(
        "--judge",
        action="append",
        metavar="NAME[=ARG]",
        help="judge each finished turn's thought, answer and full response (repeatable; "
        "default rs-match; see `lrmscope judges`)",
    )
    chat.add_argument(
        "--live-judge",
        action="append",
        metavar="NAME[=ARG]",
        help="flag unsafe sentences while the turn streams (repeatable)",
    )
    chat.add_argument("--judge-device", metavar="DEVICE", help="cpu, cuda or cuda:N")
    add_generation_options(chat)
    add_model_options(chat)
    add_db_option(chat)
    chat.set_defaults(func=cmd_chat)

    models = commands.add_parser(
        "models",
        help="list the models lrmscope can run and the GPU/CPU it would use",
        description="List the embedded model and the GGUF files in the models directory "
        "($LRMSCOPE_MODELS, or models/ in the user data directory), and what llama.cpp offers "
        "on this machine.",
    )
    models.add_argument("--dir", action="append", metavar="DIR", help="another folder to scan")
    models.set_defaults(func=cmd_models)

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
        default="rs-match",
        metavar="NAME[=ARG]",
        help="rs-match (default), llama-guard=MODEL, llama-guard-gguf=FILE, harmbench=MODEL, "
        "openai-moderation (see `lrmscope judges`)",
    )
    judge.add_argument(
        "--part", default="think,answer,full", help="comma-separated: think, answer, full"
    )
    judge.add_argument(
        "--include-interrupted", action="store_true", help="also judge interrupted samples"
    )
    judge.add_argument("--batch-size", type=count, default=8, help="(default 8)")
    judge.add_argument(
        "--judge-device", metavar="DEVICE", help="cpu, cuda or cuda:N (default: CUDA if present)"
    )
    judge.add_argument(
        "--max-text-tokens",
        type=positive_int,
        metavar="N",
        help="transformers judges: keep only the last N tokens of longer texts (recorded)",
    )
    judge.add_argument("--base-url", metavar="URL", help="openai-moderation: another server")
    judge.add_argument("--timeout", type=number, default=30.0, help="HTTP timeout in seconds")
    judge.set_defaults(func=cmd_judge)

    judges = commands.add_parser(
        "judges", help="list the judges, their arguments and the device they would use"
    )
    judges.set_defaults(func=cmd_judges)
    # Commands in lrmscope/commands/ add their own parsers.
    from lrmscope.commands import eval as eval_command
    eval_command.register(commands)
    from lrmscope.commands import export
    export.register(commands)
    from lrmscope.commands import metrics
    metrics.register(commands)
    return parser


# -- commands ------------------------------------------------------------------------------------


def _read_prompt(value: str) -> str:
    text = sys.stdin.read() if value == "-" else value
    if not text.strip():
        raise LrmscopeError("the prompt is empty; pass the text to send to the model")
    return text


def cmd_generate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lrmscope.console import TracePrinter
    from lrmscope.engine.backend import Message
    from lrmscope.engine.generation import Generation
    from lrmscope.engine.prompt import with_think_opener
    from lrmscope.recording import record, start_sample
    from lrmscope.store import Store

    text = _read_prompt(args.prompt)
    mode, sampler = generation_settings(args)
    db_path = checked_db_path(args.db)
    err = Console(stderr=True)
    backend = load_backend(args, mode, err)
    messages = [Message("system", args.system)] if args.system else []
    prompt, opener_added = with_think_opener(backend.render([*messages, Message("user", text)]))
    backend.check_prompt(prompt)
    store = Store(db_path)
    generation = Generation(backend, prompt, sampler=sampler, mode=mode)
    run_id = start_run(store, "generate", backend, sampler, mode, k=1)
    ref = start_sample(
        store,
        run_id,
        generation,
        user_text=text,
        dataset=DEFAULT_PROMPT_DATASET,
        think_opener_added=opener_added,
    )
    printer = TracePrinter(Console(highlight=False))
    events = record(store, ref, generation)
    try:
        for event in events:
            printer(event)
    except KeyboardInterrupt:
        events.close()
        store.end_run(run_id, "interrupted")
        say(err, f"interrupted: sample {ref.sample_id} saved as interrupted in {db_path}")
        return 130
    except BaseException:
        events.close()
        store.end_run(run_id, "failed")
        raise
    store.end_run(run_id, "done")
    say(err, f"saved sample {ref.sample_id} (run {run_id}) to {db_path}")
    return 0


def _chat_judges(specs: list[str], device: str | None) -> tuple[tuple, list[str]]:
    """Judges for the chat; one that fails to load becomes a notice and the chat goes on."""
    from lrmscope.engine.judges import build_judge
    from lrmscope.engine.judges.registry import JudgeOptions

    judges, notices = [], []
    for spec in specs:
        try:
            judges.append(build_judge(spec, JudgeOptions(device=device)))
        except LrmscopeError as exc:
            notices.append(f"judge {spec.partition('=')[0]} failed to load: {exc}")
    return tuple(judges), notices


def _resume(store, run_id: int, title: str | None):
    """The run, title and turns of an earlier chat, reopened by this process."""
    sessions = store.chat_runs()
    found = next((run for run in sessions if run["id"] == run_id), None)
    if found is None:
        known = ", ".join(str(run["id"]) for run in sessions[:10]) or "none"
        raise LrmscopeError(
            f"no chat session {run_id} in {store.path} (chat sessions there: {known})"
        )
    store.reopen_run(run_id)
    if title:
        store.db["runs"].update(run_id, {"title": title})
    return run_id, title or found["title"], store.chat_turns(run_id)


def cmd_chat(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lrmscope.store import Store
    from lrmscope.tui.chat import ChatApp, ChatSession

    mode, sampler = generation_settings(args)
    db_path = checked_db_path(args.db)
    backend = load_backend(args, mode, Console(stderr=True))
    final, notices = _chat_judges(args.judge or ["rs-match"], args.judge_device)
    live, live_notices = _chat_judges(args.live_judge or [], args.judge_device)
    store = Store(db_path)
    if args.resume is not None:
        run_id, title, restored = _resume(store, args.resume, args.title)
    else:
        run_id = start_run(store, "chat", backend, sampler, mode, title=args.title)
        title, restored = args.title, []
    session = ChatSession(
        backend, store, run_id, sampler, mode, model_name=backend.path.name,
        device=backend.info()["device"], final_judges=final, live_judges=live,
        notices=tuple(notices + live_notices), title=title, restored=tuple(restored),
    )
    try:
        ChatApp(session).run()
    finally:
        store.end_run(run_id, "done")
    say(Console(stderr=True), f"chat saved as run {run_id} in {db_path}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lrmscope.console import visible
    from lrmscope.engine.inventory import describe_machine, find_models

    console = Console(highlight=False)
    models = find_models(args.dir or [])  # a bad --dir is reported before anything is printed
    machine = describe_machine()
    for key, value in machine.items():
        console.print(Text.assemble((f"{key}: ", "bold"), visible(str(value))))
    table = Table("source", "model", "size", "architecture", "think in template", "path")
    for model in models:
        cells = (model.source, model.name, model.size, model.architecture, model.think_template)
        table.add_row(*(Text(visible(cell)) for cell in (*cells, str(model.path))))
    console.print(table)
    return 0


def _parts(value: str) -> list[str]:
    from lrmscope.judging import PARTS

    parts = [p.strip() for p in value.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise LrmscopeError(f"unknown part {', '.join(unknown) or value!r}: use think, answer, full")
    return list(dict.fromkeys(parts))


def cmd_judge(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from lrmscope import judging
    from lrmscope.engine.judges import build_judge
    from lrmscope.engine.judges.registry import JudgeOptions

    parts = _parts(args.part)
    store = existing_db(args.database)
    path = store.path
    statuses = ("done", "interrupted") if args.include_interrupted else ("done",)
    if store.count_samples(statuses) == 0:
        raise LrmscopeError(f"{path} has no finished samples to judge")
    err = Console(stderr=True, highlight=False)
    with err.status(Text(f"loading judge {args.judge}…")):
        judge = build_judge(
            args.judge,
            JudgeOptions(
                device=args.judge_device,
                base_url=args.base_url,
                timeout_s=args.timeout,
                max_text_tokens=args.max_text_tokens,
            ),
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
            judging.run(
                store, judge, parts, statuses, summary, batch_size=args.batch_size, advance=advance
            )
        except KeyboardInterrupt:
            interrupted = True
    table = Table(
        "part", "safe", "unsafe", "unparsed", "empty (not judged)", "judged before", title="verdicts"
    )
    for row in judging.summary_rows(summary, parts):
        table.add_row(*(Text(str(value)) for value in row.values()))
    Console(highlight=False).print(table)
    if interrupted:
        say(err, "interrupted: verdicts so far are saved; run the same command to resume")
        return 130
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
    from lrmscope.engine.inventory import describe_machine

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


# -- entry point ---------------------------------------------------------------------------------


def _one_line(message: str) -> str:
    """An error message as one inert line: it may quote paths or a model's template."""
    from lrmscope.console import visible

    return visible(message.replace("\n", " "))


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
    except sqlite3.OperationalError as exc:
        if args.debug or "locked" not in str(exc):
            raise
        print(
            "lrmscope: error: the database is locked by another writer (waited "
            f"{BUSY_TIMEOUT_S} s); let it finish or use another --db",
            file=sys.stderr,
        )
        return 2
    except Exception as exc:
        if args.debug or os.environ.get("LRMSCOPE_DEBUG"):
            raise
        print(
            f"lrmscope: internal error: {type(exc).__name__}: {_one_line(str(exc))} (run with "
            "--debug for the traceback, and report it)",
            file=sys.stderr,
        )
        return 1
