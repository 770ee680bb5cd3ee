"""A guarded mode in the chat (pilot, scripted backend, RS-Match judging each sentence): the
status line says when the guard intervenes, and the reminder is saved with its trigger."""

import json
from dataclasses import replace

from lrmscope.engine.scripted import ScriptedBackend
from lrmscope.engine.settings import CustomMode, Guard, ModeSettings
from lrmscope.tui.chat.app import ChatApp
from tests.support.pilot import send, until
from tests.tui.test_chat_tui import samples, session_for

REMINDER = " Wait, is this safe?"
GUARDED = CustomMode("guarded", guard=Guard("rs-match", "inject", text=REMINDER))
THOUGHT = "First mix the two parts. Then heat them slowly and wait. Then it is ready."


def goes_on(prompt: str) -> str:
    """The thought, closed, then the answer; after the reminder the model goes on where it was."""
    start = prompt.rfind("<think>\n") + len("<think>\n")
    written = prompt[start:].replace(REMINDER, "")
    return (THOUGHT + "</think>\n\nDone.")[len(written) :]


async def test_the_status_line_says_when_the_guard_intervenes(tmp_path):
    backend = ScriptedBackend(goes_on, delay=0.02)
    app = ChatApp(replace(session_for(backend, tmp_path), mode=ModeSettings(GUARDED)))
    notes: list[str] = []
    show = app._show_status

    def noted(state: str) -> None:  # every state the status line shows, in order
        notes.append(state)
        show(state)

    app._show_status = noted
    async with app.run_test() as pilot:
        await send(pilot, app, "How do I do it?")
        await until(pilot, lambda: app.turns and app.turns[-1].finished and app.generation is None)
        final = str(app.query_one("#statusbar").render())
    assert any(
        n.startswith("guard: rs-match flagged a sentence unsafe; text injected") for n in notes
    )
    assert "guard intervened 1x" in final
    [row] = samples(tmp_path)
    [span] = json.loads(row["injected"])
    assert span["text"] == REMINDER and span["trigger"]["text"] == "First mix the two parts. "
