"""`lrmscope compare`: one prompt, several decoding modes, side by side (the app itself is
lrmscope/tui/compare/app.py)."""

from __future__ import annotations

import argparse
from dataclasses import replace

from lrmscope.cli.options import (
    add_db_option,
    add_generation_options,
    add_live_judge_options,
    add_model_options,
    checked_db_path,
    count,
    generation_settings,
    judge_options,
    mode_catalog,
    read_prompt,
)
from lrmscope.cli.printer import say
from lrmscope.cli.setup import MAX_SEQUENCES, backend_slots, live_view_judges, start_run
from lrmscope.errors import LrmscopeError


def register(commands) -> None:
    parser = commands.add_parser(
        "compare",
        help="one prompt under several decoding modes, side by side, streaming together",
        description="Send one prompt under several decoding modes (and --samples of each), one "
        "column per (mode, sample), all streaming at once from one loaded model: the columns "
        "share one evaluation of the prompt and decode in one llama.cpp batch (with --endpoint: "
        "one request per column, spread over the endpoints). Each column shows its thought, its "
        "answer, injected text highlighted, live flags and a footer with think tokens, tokens/s "
        "and the final verdicts; a summary compares the columns when all have finished. r re-runs "
        "every column with the next seed, as a new run; escape stops; q quits. Each run is "
        "saved as one `compare` run, one sample per column with its mode, k and seed (see "
        "`lrmscope review`).",
    )
    parser.add_argument(
        "prompt", nargs="?", help="the user prompt ('-' reads it from standard input)"
    )
    parser.add_argument(
        "--conversation",
        metavar="FILE[:ROW]",
        help="instead of a prompt: a conversation set's row (its id or line number) with its "
        "assistant turns; the columns answer its last user turn in that context "
        '(README.md "Conversations")',
    )
    parser.add_argument(
        "--modes",
        default="all",
        help="comma-separated: default, zerothink, lessthink, morethink, modes of your own "
        "(--modes-file), or all = the four (default: all)",
    )
    parser.add_argument(
        "--samples",
        type=count,
        default=1,
        metavar="K",
        help="columns per mode, each with a seed of its own (default 1)",
    )
    add_live_judge_options(parser, "column")
    add_generation_options(parser, mode=False)
    add_model_options(parser)
    add_db_option(parser)
    parser.set_defaults(func=cmd_compare, mode="default")


def cmd_compare(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lrmscope.core.compare import DATASET, CompareSettings
    from lrmscope.engine.backend import Message
    from lrmscope.engine.guard import guard_judges
    from lrmscope.engine.judges.base import OneAtATime
    from lrmscope.engine.prompt import with_think_opener
    from lrmscope.store import Store
    from lrmscope.tui.compare.app import CompareApp, CompareSession

    if (args.prompt is None) == (args.conversation is None):
        raise LrmscopeError("give a prompt or --conversation FILE[:ROW], one of them")
    history: list[Message] = []
    if args.conversation is not None:
        from lrmscope.core.conversations import scripted_row, turn_messages

        row = scripted_row(args.conversation)
        history = turn_messages(row, row.generated[0], {})
        text = row.user_text(row.generated[0])
    else:
        text = read_prompt(args.prompt)
    catalog = mode_catalog(args)
    mode, sampler = generation_settings(args, catalog)
    settings = CompareSettings(text, catalog.parse_list(args.modes), args.samples, sampler, mode)
    if settings.width > MAX_SEQUENCES:
        raise LrmscopeError(
            f"{settings.width} columns ({len(settings.modes)} modes x {settings.samples} "
            f"samples) but one llama.cpp context decodes at most {MAX_SEQUENCES} sequences: "
            "use fewer --modes or --samples"
        )
    db_path = checked_db_path(args.db)
    err = Console(stderr=True)
    model = backend_slots(args, mode, sampler, err, settings.width, settings.modes)
    backend = model.backend
    rendered = backend.render(history or [Message("user", text)])
    backend.check_prompt(with_think_opener(rendered)[0])
    final, live, notices = live_view_judges(args)
    guarding = guard_judges(settings.modes, judge_options(args))
    store = Store(db_path)
    modes = ",".join(m.value for m in settings.modes)

    def new_run(seed: int) -> int:
        return start_run(
            store,
            "compare",
            backend,
            replace(sampler, seed=seed),
            mode,
            mode=modes,
            k=settings.samples,
            dataset=DATASET,
        )

    session = CompareSession(
        tuple(model.open()),
        store,
        settings,
        rendered,
        new_run,
        model_name=backend.model_name,
        device=backend.info()["device"],
        final_judges=tuple(OneAtATime(j) for j in final),
        live_judges=tuple(OneAtATime(j) for j in live),
        notices=notices,
        guard_judges=guarding,
    )
    app = CompareApp(session)
    try:
        app.run()
    finally:
        model.close()
        guarding.close()
        if app.run_open:  # the app itself failed
            store.end_run(app.run_ids[-1], "failed")
    runs = ", ".join(str(run_id) for run_id in app.run_ids)
    say(err, f"compare saved as run {runs} in {db_path}; `lrmscope review {db_path}` shows it")
    return 0
