"""`lrmscope chat`: the Textual chat on a local model (the app: lrmscope/tui/chat/app.py)."""

from __future__ import annotations

import argparse

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
)
from lrmscope.cli.printer import say
from lrmscope.cli.setup import live_view_judges, load_backend, runnable_modes, start_run
from lrmscope.errors import LrmscopeError


def register(commands) -> None:
    chat = commands.add_parser(
        "chat",
        help="the chat: thought and answer stream apart, the decoding mode switches live",
        description="A full-screen chat with a GGUF model (or a served one: --endpoint). The "
        "thought streams into its own panel, injected text is highlighted, f2-f5 switch the "
        "decoding mode (at once while the model thinks), f9 to the modes file's modes in turn, "
        "f8 injects a text of yours into the running thought, f6 re-runs the last prompt, escape "
        "stops. Every turn is saved.",
    )
    chat.add_argument("--title", help="a title for this chat session")
    chat.add_argument(
        "--resume",
        type=count,
        metavar="SESSION",
        help="continue an earlier chat (its run id, as printed when it ended)",
    )
    add_live_judge_options(chat, "turn")
    add_generation_options(chat, inject=False)
    add_model_options(chat)
    add_db_option(chat)
    chat.set_defaults(func=cmd_chat)


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
        store.rename_run(run_id, title)
    return run_id, title or found["title"], store.chat_turns(run_id)


def cmd_chat(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lrmscope.engine.guard import GuardJudges
    from lrmscope.store import Store
    from lrmscope.tui.chat.app import ChatApp, ChatSession

    catalog = mode_catalog(args)
    mode, sampler = generation_settings(args, catalog)
    db_path = checked_db_path(args.db)
    backend = load_backend(args, mode, Console(stderr=True))
    final, live, notices = live_view_judges(args)
    store = Store(db_path)
    if args.resume is not None:
        run_id, title, restored = _resume(store, args.resume, args.title)
    else:
        run_id = start_run(store, "chat", backend, sampler, mode, title=args.title)
        title, restored = args.title, []
    session = ChatSession(
        backend,
        store,
        run_id,
        sampler,
        mode,
        model_name=backend.model_name,
        device=backend.info()["device"],
        final_judges=final,
        live_judges=live,
        notices=notices,
        title=title,
        restored=tuple(restored),
        modes=runnable_modes(backend),
        own_modes=catalog.custom,
        guard_judges=GuardJudges(judge_options(args)),
    )
    try:
        with store.ending(run_id):
            ChatApp(session).run()
    finally:
        session.guard_judges.close()
    say(Console(stderr=True), f"chat saved as run {run_id} in {db_path}")
    return 0
