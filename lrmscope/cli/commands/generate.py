"""`lrmscope generate`: one response under a decoding mode, streamed to the terminal and saved."""

from __future__ import annotations

import argparse

from lrmscope.cli.options import (
    add_db_option,
    add_generation_options,
    add_judge_options,
    add_model_options,
    checked_db_path,
    generation_settings,
    judge_options,
    mode_catalog,
    read_prompt,
    text_arg,
)
from lrmscope.cli.printer import TracePrinter, say
from lrmscope.cli.setup import load_backend, run_row

DEFAULT_PROMPT_DATASET = "adhoc"


def register(commands) -> None:
    gen = commands.add_parser(
        "generate",
        help="generate one response under a decoding mode, streamed and saved",
        description="Generate one response from a GGUF model under a decoding mode of the "
        "SafeChain study. The thought streams dimmed, injected text is marked «like this», then "
        "the answer; the sample is saved to the database as it streams.",
    )
    gen.add_argument("prompt", help="the user prompt ('-' reads it from standard input)")
    gen.add_argument(
        "--system",
        type=text_arg,
        metavar="TEXT",
        help="a system prompt (R1 distills want none)",
    )
    add_generation_options(gen)
    add_model_options(gen)
    add_judge_options(gen)  # a guarded mode's judge (README.md "Your own modes")
    add_db_option(gen)
    gen.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lrmscope.core.generate import record, start_sample
    from lrmscope.engine.backend import Message
    from lrmscope.engine.generation import NO_THOUGHT, Generation
    from lrmscope.engine.guard import guard_judges
    from lrmscope.engine.prompt import with_think_opener
    from lrmscope.store import Store

    text = read_prompt(args.prompt)
    catalog = mode_catalog(args)
    mode, sampler = generation_settings(args, catalog)
    mode.check_answer_room((mode.mode,), sampler.max_tokens)
    options = judge_options(args)
    db_path = checked_db_path(args.db)
    err = Console(stderr=True)
    backend = load_backend(args, mode, err)
    messages = [Message("system", args.system)] if args.system else []
    prompt, opener_added = with_think_opener(
        backend.render([*messages, Message("user", text)]), mode
    )
    backend.check_prompt(prompt)
    guarding = guard_judges((mode.mode,), options)
    store = Store(db_path)
    generation = Generation(
        backend,
        prompt,
        sampler=sampler,
        mode=mode,
        guard_judge=guarding.of(mode.mode),
        user_text=text,
    )
    printer = TracePrinter(Console(highlight=False))
    ref = None
    try:
        # the run ends done, interrupted (Ctrl-C) or failed with the block (Store.run)
        with store.run("generate", **run_row(backend, sampler, mode), k=1) as run_id:
            ref = start_sample(
                store,
                run_id,
                generation,
                user_text=text,
                dataset=DEFAULT_PROMPT_DATASET,
                think_opener_added=opener_added,
            )
            events = record(store, ref, generation)
            try:
                for event in events:
                    printer(event)
            finally:
                events.close()
    except KeyboardInterrupt:
        if ref is None:
            raise
        say(err, f"interrupted: sample {ref.sample_id} saved as interrupted in {db_path}")
        return 130
    finally:
        guarding.close()
    if not generation.thought_given:
        say(err, f"note: {NO_THOUGHT}")
    say(err, f"saved sample {ref.sample_id} (run {run_id}) to {db_path}")
    return 0
