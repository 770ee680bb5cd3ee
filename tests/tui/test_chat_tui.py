"""The chat app driven with Textual's pilot: a scripted backend for the UI logic, a real SQLite
file, and one turn with the real embedded model."""

import json

from lrmscope.engine.judges.rsmatch import RSMatch
from lrmscope.engine.scripted import ScriptedBackend
from lrmscope.engine.settings import ZEROTHINK_PREFILL, ModeSettings, SamplerSettings
from lrmscope.store import Store
from lrmscope.tui.chat.app import ChatApp, ChatSession
from tests.support.pilot import send, until


def session_for(backend, tmp_path, **kw):
    store = Store(tmp_path / "chat.sqlite")
    run = store.start_run("chat")
    sampler = kw.pop("sampler", SamplerSettings(max_tokens=200))
    return ChatSession(backend, store, run, sampler, ModeSettings(), model_name="scripted", **kw)


def samples(tmp_path):
    return list(Store(tmp_path / "chat.sqlite").db["samples"].rows)


async def test_a_turn_streams_thought_and_answer_and_is_saved(tmp_path):
    backend = ScriptedBackend(
        lambda p: (
            "let me think</think>\n\nThe answer." if p.endswith("<think>\n") else "\n\nThe answer."
        )
    )
    app = ChatApp(session_for(backend, tmp_path))
    async with app.run_test() as pilot:
        await send(pilot, app, "hello")
        await until(pilot, lambda: app.turns and app.turns[-1].finished and app.generation is None)
        turn = app.turns[-1]
        turn.render_now()
        assert turn.thought.plain == "let me think"
        assert turn.answer.plain.strip() == "The answer."
    [row] = samples(tmp_path)
    assert row["status"] == "done" and row["answer"] == "The answer."


async def test_switching_to_zerothink_mid_thought_closes_it_at_once(tmp_path):
    backend = ScriptedBackend(
        lambda p: "Answer now." if p.endswith(ZEROTHINK_PREFILL) else "word " * 500, delay=0.01
    )
    app = ChatApp(session_for(backend, tmp_path))
    async with app.run_test() as pilot:
        await send(pilot, app, "q")
        await until(pilot, lambda: app.turns and len(app.turns[-1].thought.plain) > 20)
        await pilot.press("f3")
        await until(pilot, lambda: app.turns[-1].finished is not None)
        turn = app.turns[-1]
        assert ZEROTHINK_PREFILL in turn.thought.plain
        spans = [s for s in turn.thought.text.spans if "yellow" in str(s.style)]
        assert spans, "the injected text is highlighted"
        assert turn.answer.plain == "Answer now."
        assert app.mode.mode.value == "zerothink"
    [row] = samples(tmp_path)
    assert row["mode"] == "zerothink" and json.loads(row["mode_switches"])[0]["to"] == "zerothink"


async def test_escape_stops_and_the_turn_is_saved_as_stopped(tmp_path):
    backend = ScriptedBackend("word " * 2000, delay=0.005)
    app = ChatApp(session_for(backend, tmp_path, sampler=SamplerSettings(max_tokens=5000)))
    async with app.run_test() as pilot:
        await send(pilot, app, "q")
        await until(pilot, lambda: app.turns and len(app.turns[-1].thought.plain) > 20)
        await pilot.press("escape")
        await until(pilot, lambda: app.turns[-1].finished is not None and app.generation is None)
        assert app.turns[-1].finished.stats.finish_reason == "stopped"
    [row] = samples(tmp_path)
    assert row["status"] == "interrupted" and row["raw"]


async def test_model_text_is_shown_literally_and_does_nothing(tmp_path):
    evil = "[bold]x[/bold] [@click=app.quit]quit[/] \x1b]0;title\x07 \x1b[31mred"
    backend = ScriptedBackend(evil)
    app = ChatApp(session_for(backend, tmp_path))
    async with app.run_test() as pilot:
        await send(pilot, app, "q")
        await until(pilot, lambda: app.turns and app.turns[-1].finished is not None)
        await pilot.pause(0.2)
        thought = app.turns[-1].thought.plain
        assert "[bold]x[/bold]" in thought and "[@click=app.quit]" in thought
        assert "\x1b" not in thought and "\\x1b]0;title\\x07" in thought
        assert app.is_running


async def test_history_goes_back_without_thoughts_and_rerun(tmp_path):
    backend = ScriptedBackend(
        lambda p: "\n\nvisible reply" if p.endswith("</think>") else "secret musing</think>"
    )
    app = ChatApp(session_for(backend, tmp_path))
    async with app.run_test() as pilot:
        await send(pilot, app, "first")
        await until(pilot, lambda: app.turns and app.turns[-1].finished and app.generation is None)
        await send(pilot, app, "second")
        await until(
            pilot, lambda: len(app.turns) == 2 and app.turns[-1].finished and app.generation is None
        )
        second_prompt = [c["prompt"] for c in backend.calls if "second" in c["prompt"]][0]
        assert (
            "visible reply" in second_prompt
            and "secret musing" not in second_prompt.split("second")[0]
        )
        await pilot.press("f6")
        await until(
            pilot, lambda: len(app.turns) == 3 and app.turns[-1].finished and app.generation is None
        )
        assert app.turns[-1].prompt == "second"
    rows = samples(tmp_path)
    assert len(rows) == 3 and rows[1]["parent_id"] == rows[0]["id"]


async def test_empty_prompt_is_ignored(tmp_path):
    app = ChatApp(session_for(ScriptedBackend("x"), tmp_path))
    async with app.run_test() as pilot:
        await pilot.press("space", "enter")
        await pilot.pause(0.1)
        assert app.turns == []


async def test_a_real_turn_with_the_embedded_model(llama, tmp_path):
    app = ChatApp(
        session_for(
            llama, tmp_path, sampler=SamplerSettings(temperature=0, top_p=1.0, max_tokens=16)
        )
    )
    async with app.run_test() as pilot:
        await send(pilot, app, "Hi")
        await until(
            pilot, lambda: app.turns and app.turns[-1].finished and app.generation is None, 120
        )
        assert app.turns[-1].finished.stats.think_tokens == 16
    [row] = samples(tmp_path)
    assert row["status"] == "done" and row["think_tokens"] == 16 and row["raw"]


async def test_live_flags_are_shown_at_their_offsets_and_final_verdicts_saved(tmp_path):
    script = "Here is how to do it. I'm sorry, I cannot help.</think>\n\nNo. Do it like this."
    backend = ScriptedBackend(
        lambda p: script if p.endswith("<think>\n") else "\n\nNo. Do it like this."
    )
    session = session_for(backend, tmp_path, live_judges=(RSMatch(),), final_judges=(RSMatch(),))
    app = ChatApp(session)
    async with app.run_test() as pilot:
        await send(pilot, app, "q")
        await until(pilot, lambda: app.turns and app.turns[-1].verdicts.plain)
        turn = app.turns[-1]
        unsafe = [f for f in turn.flags if f.label == "unsafe"]
        assert [f.text.strip() for f in unsafe] == [
            "Here is how to do it.",
            "No.",
            "Do it like this.",
        ]
        flagged = [s for s in turn.thought.text.spans if "dark_red" in str(s.style)]
        assert [turn.thought.plain[s.start : s.end].strip() for s in flagged] == [
            "Here is how to do it."
        ]
        assert "rs-match think: safe" in turn.verdicts.plain  # it holds a refusal string
        assert "rs-match answer: unsafe" in turn.verdicts.plain
        await pilot.press("ctrl+n")
        assert app.flag_cursor == 0 and "Here is how" in str(app.query_one("#flags").render())
    store = Store(tmp_path / "chat.sqlite")
    assert store.db["flags"].count == len(turn.flags)
    assert {(r["part"], r["label"]) for r in store.db["judgements"].rows} == {
        ("think", "safe"),
        ("answer", "unsafe"),
        ("full", "safe"),
    }


async def test_a_prompt_longer_than_the_context_says_how_much_fits(tmp_path):
    backend = ScriptedBackend("x")
    backend.n_ctx = 20
    app = ChatApp(session_for(backend, tmp_path))
    async with app.run_test() as pilot:
        await send(pilot, app, "word " * 30)
        await pilot.pause(0.1)
        assert "the context holds 20" in app.turns[-1].status.plain
        assert app.generation is None
        backend.n_ctx = 10_000
        await send(pilot, app, "short")
        await until(pilot, lambda: len(app.turns) == 2 and app.turns[-1].finished)


async def test_a_judge_that_failed_to_load_is_announced(tmp_path):
    app = ChatApp(
        session_for(
            ScriptedBackend("x"), tmp_path, notices=("judge llama-guard failed to load: no model",)
        )
    )
    async with app.run_test() as pilot:
        await pilot.pause(0.1)
        assert "llama-guard failed to load" in str(app.query_one("#statusbar").render())


async def test_long_streams_freeze_into_blocks_and_stay_highlightable(tmp_path):
    from lrmscope.tui.widgets.stream_text import BLOCK_CHARS

    text = "A sentence of filler words here.\n" * 400
    backend = ScriptedBackend(text)
    app = ChatApp(session_for(backend, tmp_path, sampler=SamplerSettings(max_tokens=100000)))
    async with app.run_test() as pilot:
        await send(pilot, app, "q")
        await until(pilot, lambda: app.turns and app.turns[-1].finished)
        await pilot.pause(0.2)
        view = app.turns[-1].thought
        assert len(view._blocks) >= len(text) // BLOCK_CHARS - 1
        assert view.plain == text
        frozen_plain = "".join(block.plain for _, block in view._blocks)
        lines = view._frozen._lines  # the frozen blocks as drawn, wrapped once
        assert [line.text.rstrip() for line in lines] == frozen_plain.splitlines()
        assert view.highlight(BLOCK_CHARS - 10, BLOCK_CHARS + 10, "red")
        red = [s for s in view.text.spans if s.style == "red"]
        assert sum(s.end - s.start for s in red) == 20
        drawn_red = [
            segment.text
            for line in view._frozen._lines
            for segment in line
            if segment.style and segment.style.color and segment.style.color.name == "red"
        ]
        assert sum(len(text) for text in drawn_red) >= 10  # restyled in place, then redrawn


async def test_resume_continues_an_earlier_chat(tmp_path):
    backend = ScriptedBackend(lambda p: "\n\nreply" if p.endswith("</think>") else "musing</think>")
    first = ChatApp(session_for(backend, tmp_path))
    async with first.run_test() as pilot:
        await send(pilot, first, "earlier")
        await until(
            pilot, lambda: first.turns and first.turns[-1].finished and first.generation is None
        )
    store = Store(tmp_path / "chat.sqlite")
    run_id = first.session.run_id
    store.reopen_run(run_id)
    session = session_for(backend, tmp_path)
    resumed_session = ChatSession(
        backend,
        store,
        run_id,
        session.sampler,
        session.mode,
        model_name="scripted",
        title="lock questions",
        restored=tuple(store.chat_turns(run_id)),
    )
    app = ChatApp(resumed_session)
    async with app.run_test() as pilot:
        assert app.turns[0].prompt == "earlier" and app.history == [("earlier", "reply")]
        assert "lock questions" in app.title
        await send(pilot, app, "later")
        await until(
            pilot, lambda: len(app.turns) == 2 and app.turns[-1].finished and app.generation is None
        )
    later_prompt = [c["prompt"] for c in backend.calls if "later" in c["prompt"]][0]
    assert "earlier" in later_prompt and "reply" in later_prompt and "musing" not in later_prompt
    rows = [r for r in Store(tmp_path / "chat.sqlite").db["samples"].rows if r["run_id"] == run_id]
    assert len(rows) == 2 and rows[1]["parent_id"] == rows[0]["id"]


async def test_settings_apply_to_the_next_turn_and_are_saved_with_it(tmp_path):
    backend = ScriptedBackend("one two three four five six seven eight nine ten")
    app = ChatApp(session_for(backend, tmp_path))
    async with app.run_test(size=(100, 50)) as pilot:
        await pilot.press("f7")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#temperature").value = "0"
        screen.query_one("#max_tokens").value = "4"
        screen.query_one("#max_think").value = "2"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.sampler.temperature == 0.0 and app.sampler.max_tokens == 4
        await send(pilot, app, "q")
        await until(pilot, lambda: app.turns and app.turns[-1].finished and app.generation is None)
        await pilot.press("f7")
        await pilot.pause()
        app.screen.query_one("#temperature").value = "99"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "temperature must be between" in str(app.screen.query_one("#error").render())
        await pilot.press("escape")
    [row] = samples(tmp_path)
    sampler = json.loads(row["sampler"])
    assert sampler["temperature"] == 0.0 and sampler["max_tokens"] == 4
    assert json.loads(row["mode_params"])["max_think"] == 2 and row["think_tokens"] == 2


async def test_auto_follow_stops_when_scrolled_up_and_resumes_at_the_bottom(tmp_path):
    backend = ScriptedBackend("A line of thought.\n" * 300, delay=0.002)
    app = ChatApp(session_for(backend, tmp_path, sampler=SamplerSettings(max_tokens=5000)))
    async with app.run_test(size=(80, 24)) as pilot:
        await send(pilot, app, "q")
        conversation = app.query_one("#conversation")
        await until(pilot, lambda: conversation.max_scroll_y > 20)
        await until(pilot, lambda: conversation.scroll_y >= conversation.max_scroll_y - 1)
        conversation.scroll_home(animate=False, immediate=True)  # as the user scrolling up
        await pilot.pause(0.3)
        assert not app.follower.following and conversation.scroll_y < conversation.max_scroll_y - 5
        conversation.scroll_end(animate=False, immediate=True)
        await until(pilot, lambda: app.turns[-1].finished is not None and app.generation is None)
        await pilot.pause(0.3)
        assert app.follower.following and conversation.scroll_y >= conversation.max_scroll_y - 1


async def test_mode_keys_are_taken_first_but_not_under_a_dialog(tmp_path):
    """f2..f5 are priority bindings (the app takes them before the focused input), except while
    the settings or help screen is open."""
    app = ChatApp(session_for(ScriptedBackend("x"), tmp_path))
    async with app.run_test(size=(100, 50)) as pilot:
        await pilot.press("f7")
        await pilot.pause()
        await pilot.press("f3")
        await pilot.pause()
        assert app.mode.mode.value == "default" and len(app.screen_stack) == 2
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("f3")
        await pilot.pause()
        assert app.mode.mode.value == "zerothink"
