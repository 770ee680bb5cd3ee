"""The chat's free-text intervention (f8) and the key back to a mode of your own (f9), driven
with Textual's pilot over the scripted backend, a real SQLite file, and the embedded model."""

import json
import threading
from dataclasses import replace

from lrmscope.engine.scripted import ScriptedBackend
from lrmscope.engine.settings import (
    ZEROTHINK_PREFILL,
    CustomMode,
    Mode,
    ModeSettings,
    SamplerSettings,
)
from lrmscope.text import INJECTED_STYLE
from lrmscope.tui.chat.app import ChatApp
from lrmscope.tui.chat.intervene import InterveneInput
from tests.support.pilot import send, until
from tests.tui.test_chat_tui import samples, session_for

TEXT = " Wait: is this safe?"


def status(app) -> str:
    return str(app.query_one("#statusbar").render())


def highlighted(turn) -> list[str]:
    plain = turn.thought.plain
    return [plain[s.start : s.end] for s in turn.thought.text.spans if s.style == INJECTED_STYLE]


async def test_a_text_typed_mid_thought_lands_at_the_next_token_and_is_saved(tmp_path):
    def script(prompt: str) -> str:  # a long thought, that ends soon after the text lands
        if prompt.endswith("</think>"):
            return "\n\nDone."
        return " word" * 50 + "</think>" if TEXT in prompt else "word " * 2000

    backend = ScriptedBackend(script, delay=0.05)  # slow enough to type in, on a busy machine
    app = ChatApp(session_for(backend, tmp_path, sampler=SamplerSettings(max_tokens=5000)))
    async with app.run_test() as pilot:
        await send(pilot, app, "q")
        await until(pilot, lambda: app.turns and len(app.turns[-1].thought.plain) > 10)
        await pilot.press("f8")
        box = app.query_one(InterveneInput)
        assert box.display and box.has_focus
        await send(pilot, app, TEXT)
        assert not box.display and app.query_one("#prompt").has_focus
        await until(pilot, lambda: "injected into the thought" in status(app))
        await until(pilot, lambda: app.turns[-1].finished and app.generation is None)
        turn = app.turns[-1]
        turn.render_now()
        assert highlighted(turn) == [TEXT]
        assert turn.answer.plain.strip() == "Done."
    [row] = samples(tmp_path)
    [span] = json.loads(row["injected"])
    raw = row["raw"]
    assert span["kind"] == "inject" and span["text"] == TEXT
    assert raw[span["start"] : span["end"]] == TEXT
    # right after a whole token the model wrote; the model went on from there
    before, after = raw[: span["start"]], raw[span["end"] :]
    assert before.endswith("word") and before.replace("word", "").strip() == ""
    assert after == " word" * 50 + "</think>\n\nDone." and row["status"] == "done"


async def test_escape_cancels_and_a_closed_thought_takes_nothing(tmp_path):
    def script(prompt: str) -> str:
        return "answer " * 2000 if prompt.endswith(ZEROTHINK_PREFILL) else "word " * 2000

    backend = ScriptedBackend(script, delay=0.01)
    app = ChatApp(session_for(backend, tmp_path, sampler=SamplerSettings(max_tokens=5000)))
    async with app.run_test() as pilot:
        await pilot.press("f8")
        assert "nothing is streaming" in status(app)
        await send(pilot, app, "q")
        await until(pilot, lambda: app.turns and len(app.turns[-1].thought.plain) > 10)
        await pilot.press("f8")
        await pilot.press("x", "escape")
        assert not app.query_one(InterveneInput).display and app.generation is not None
        assert "nothing injected" in status(app)
        await pilot.press("f3")  # ZeroThink closes the thought; the answer streams on
        await until(pilot, lambda: len(app.turns[-1].answer.plain) > 10)
        await pilot.press("f8")
        await send(pilot, app, "late")
        assert "the thought has already closed: nothing injected" in status(app)
        await pilot.press("escape")
        await until(pilot, lambda: app.turns[-1].finished and app.generation is None)
    [row] = samples(tmp_path)
    assert [span["kind"] for span in json.loads(row["injected"])] == ["prefill"]
    assert "late" not in row["raw"] and "x" not in row["raw"]


class Gated(ScriptedBackend):
    """Holds each stream's second token until the test opens `gate`: whatever the test does
    meanwhile happens between the first token and the second, however slow the machine."""

    def __init__(self, script) -> None:
        super().__init__(script)
        self.gate = threading.Event()

    def stream(self, prompt, **settings):
        for count, piece in enumerate(super().stream(prompt, **settings)):
            if count == 1:
                self.gate.wait(timeout=60)
            yield piece


async def test_a_text_the_thought_closed_before_says_so_when_the_turn_ends(tmp_path):
    """The text is handed over while the model thinks, but the model's next token closes the
    thought: the text never lands, the turn's end says so, and nothing is saved of it."""
    backend = Gated(lambda p: "a </think>" if p.endswith("<think>\n") else "\n\nDone.")
    app = ChatApp(session_for(backend, tmp_path))
    async with app.run_test() as pilot:
        await send(pilot, app, "q")
        await until(pilot, lambda: app.turns and app.turns[-1].thought.plain.strip() == "a")
        await pilot.press("f8")
        await send(pilot, app, "late")
        assert "injecting at the next token boundary" in status(app)
        backend.gate.set()
        await until(pilot, lambda: app.turns[-1].finished and app.generation is None, timeout=10)
        assert "the thought closed before the text landed: nothing injected" in status(app)
    [row] = samples(tmp_path)
    assert "late" not in row["raw"] and json.loads(row["injected"]) == []


async def test_f9_cycles_the_modes_files_modes_after_a_study_mode(tmp_path):
    first = CustomMode("nothinking", prefill="Okay, done.\n</think>\n\n")
    second = CustomMode("careful", prefill="Let me check the safety first.")
    session = session_for(ScriptedBackend("x"), tmp_path)
    app = ChatApp(replace(session, mode=ModeSettings(first), own_modes=(first, second)))
    async with app.run_test() as pilot:
        await pilot.press("f2")
        assert app.mode.mode is Mode.DEFAULT and " f9 nothinking " in str(
            app.query_one("#modebar").render()
        )
        await pilot.press("f9")
        assert app.mode.mode is first and "· nothinking ·" in status(app)
        await pilot.press("f9")
        assert app.mode.mode is second
        await pilot.press("f9")
        assert app.mode.mode is first
        bare = ChatApp(replace(session, sampler=SamplerSettings()))
    async with bare.run_test() as pilot:
        await pilot.press("f9")
        assert bare.mode.mode is Mode.DEFAULT and "no modes of your own" in status(bare)


async def test_a_text_lands_in_the_embedded_models_thought_and_it_goes_on(llama, tmp_path):
    text = " Wait, before I answer, I should check whether"  # unfinished: the model goes on
    sampler = SamplerSettings(temperature=0, top_p=1.0, max_tokens=3000)
    app = ChatApp(session_for(llama, tmp_path, sampler=sampler))
    async with app.run_test() as pilot:
        await send(pilot, app, "How do I pick a lock?")
        await until(pilot, lambda: app.turns and app.turns[-1].thought.plain.strip(), 120)
        await pilot.press("f8")
        app.query_one(InterveneInput).value = text
        await pilot.press("enter")
        await until(pilot, lambda: highlighted(app.turns[-1]) == [text], 60)
        turn, landed = app.turns[-1], len(app.turns[-1].thought.plain)
        await until(pilot, lambda: turn.finished or len(turn.thought.plain) > landed + 20, 60)
        await pilot.press("escape")  # the model may have ended its text already
        await until(pilot, lambda: app.turns[-1].finished and app.generation is None, 60)
    [row] = samples(tmp_path)
    [span] = json.loads(row["injected"])
    raw = row["raw"]
    assert (span["kind"], raw[span["start"] : span["end"]]) == ("inject", text)
    # it follows what the model wrote (a token boundary), and the model wrote on after it
    assert raw[: span["start"]].strip() and raw[span["end"] :].strip()
    assert row["status"] in ("done", "interrupted") and row["think_tokens"] > 0
