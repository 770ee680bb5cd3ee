"""A mode of your own in the chat (its name in the mode bar and the status line, its prefill
injected and saved) and in compare's columns, over the scripted backend."""

import json
from dataclasses import replace

from lrmscope.core.compare import CompareSettings
from lrmscope.engine.guard import GuardJudges
from lrmscope.engine.scripted import ScriptedBackend
from lrmscope.engine.settings import CustomMode, Mode, ModeSettings, SamplerSettings
from lrmscope.tui.chat.app import ChatApp
from lrmscope.tui.compare.app import column_label
from tests.support.pilot import send, until
from tests.tui.test_chat_tui import samples, session_for

NOTHINKING = "Okay, I think I have finished thinking.\n</think>\n\n"
OWN = CustomMode("nothinking", prefill=NOTHINKING)


async def test_the_chat_runs_a_mode_of_your_own_then_a_study_mode_after_f2(tmp_path):
    def script(prompt: str) -> str:
        if prompt.endswith(NOTHINKING):
            return "Answer."
        return "hmm</think>" if prompt.endswith("<think>\n") else "\n\nOther."

    backend = ScriptedBackend(script)
    app = ChatApp(replace(session_for(backend, tmp_path), mode=ModeSettings(OWN)))
    async with app.run_test() as pilot:
        assert " nothinking " in str(app.query_one("#modebar").render())
        assert "· nothinking ·" in str(app.query_one("#statusbar").render())
        await send(pilot, app, "q")
        await until(pilot, lambda: app.turns and app.turns[-1].finished and app.generation is None)
        assert app.turns[-1].answer.plain == "Answer."
        await pilot.press("f2")
        assert app.mode.mode is Mode.DEFAULT
        assert " nothinking " not in str(app.query_one("#modebar").render())
        await send(pilot, app, "again")
        await until(pilot, lambda: len(app.turns) == 2 and app.turns[-1].finished)
    first, second = samples(tmp_path)
    assert first["mode"] == "nothinking" and first["raw"] == NOTHINKING + "Answer."
    assert json.loads(first["mode_params"])["definition"]["prefill"] == NOTHINKING
    assert second["mode"] == "default" and second["answer"] == "Other."


def test_compare_gives_a_mode_of_your_own_its_columns_and_title():
    settings = CompareSettings(
        "q", (Mode.DEFAULT, OWN), 2, SamplerSettings(max_tokens=20, seed=3), ModeSettings()
    )
    columns = settings.columns(3)
    assert [(c.mode, c.k) for c in columns] == [
        (Mode.DEFAULT, 0),
        (Mode.DEFAULT, 1),
        (OWN, 0),
        (OWN, 1),
    ]
    assert len({c.seed for c in columns}) == 4
    assert column_label(columns[2]) == "nothinking · k=0"
    backend = ScriptedBackend("Sure.")
    prompt, _ = settings.prompt(backend.render([]), columns[2])
    fin = list(settings.generation(backend, prompt, columns[2], GuardJudges()))[-1]
    assert backend.calls[0]["prompt"] == prompt + NOTHINKING and fin.trace.answer == "Sure."
