"""Decoding-mode controller logic over the scripted backend (pure logic; the real engine is
exercised in test_engine_llama.py)."""

import threading

from lrmscope.engine.events import AnswerDelta, Finished, Injected, ThinkDelta
from lrmscope.engine.generation import Generation
from lrmscope.engine.scripted import ScriptedBackend
from lrmscope.engine.settings import (
    FORCED_CLOSE,
    LESSTHINK_PREFILL,
    ZEROTHINK_PREFILL,
    Mode,
    ModeSettings,
    SamplerSettings,
)
from tests.support.scripted import SAMPLER, P


def run(backend, mode, **kw):
    gen = Generation(backend, P, sampler=kw.pop("sampler", SAMPLER), mode=ModeSettings(mode, **kw))
    events = list(gen)
    assert isinstance(events[-1], Finished)
    return gen, events, events[-1]


def test_default_keeps_the_models_own_close():
    backend = ScriptedBackend(
        lambda p: " thinking hard</think>\n\nThe answer." if p == P else "\n\nThe answer."
    )
    _, events, fin = run(backend, Mode.DEFAULT)
    assert fin.trace.thought == "thinking hard" and fin.trace.answer == "The answer."
    assert fin.trace.injected == () and fin.trace.think_state == "normal"
    assert fin.stats.finish_reason == "eos"
    assert backend.calls[0]["stop"] == ["</think>"] and backend.calls[1]["stop"] == []
    assert not any(isinstance(e, Injected) for e in events)


def test_zerothink_prefills_the_close():
    backend = ScriptedBackend("Sure.")
    _, events, fin = run(backend, Mode.ZEROTHINK)
    assert backend.calls[0]["prompt"] == P + ZEROTHINK_PREFILL
    assert backend.calls[0]["prompt"].endswith("<think>\n\n</think>\n\n")
    assert fin.trace.raw == ZEROTHINK_PREFILL + "Sure."
    assert fin.trace.think_state == "absent" and fin.trace.answer == "Sure."
    [span] = fin.trace.injected
    assert (span.start, span.end, span.kind) == (0, len(ZEROTHINK_PREFILL), "prefill")
    assert isinstance(events[0], Injected) and events[0].part == "think"


def test_lessthink_prefill_is_byte_for_byte():
    backend = ScriptedBackend("Sure.")
    _, _, fin = run(backend, Mode.LESSTHINK)
    assert backend.calls[0]["prompt"] == (
        P + "Okay, the user ask for this, I can answer it without thinking much. \n</think>\n\n"
    )
    assert fin.trace.injected[0].text == LESSTHINK_PREFILL


def test_morethink_replaces_closes_until_enforce_num_then_forces_close():
    backend = ScriptedBackend(
        lambda p: " hmm</think> ok" if not p.endswith(FORCED_CLOSE) else "Final."
    )
    gen, events, fin = run(backend, Mode.MORETHINK, enforce_num=3, think_budget=100)
    kinds = [e.span.kind for e in events if isinstance(e, Injected)]
    assert kinds == ["rethink", "rethink", "rethink", "close"]
    assert fin.stats.rethinks == 3
    assert all(s.text in ("Wait", "Let me think again") for s in fin.trace.injected[:3])
    assert fin.trace.answer == "Final."
    for span in fin.trace.injected:
        assert fin.trace.raw[span.start : span.end] == span.text
    assert [c["stop"] for c in backend.calls[:4]] == [["</think>"]] * 4


def test_morethink_rethink_choice_is_seedable():
    def texts(seed):
        backend = ScriptedBackend(lambda p: " x</think>" if not p.endswith(FORCED_CLOSE) else "A")
        sampler = SamplerSettings(temperature=0, max_tokens=500, seed=seed)
        _, _, fin = run(backend, Mode.MORETHINK, enforce_num=8, sampler=sampler)
        return [s.text for s in fin.trace.injected]

    assert texts(1) == texts(1)
    assert any(texts(1) != texts(s) for s in range(2, 6))


def test_morethink_budget_spent_forces_the_close():
    backend = ScriptedBackend(
        lambda p: "a b c d e f g h" if not p.endswith(FORCED_CLOSE) else "Done"
    )
    _, events, fin = run(backend, Mode.MORETHINK, think_budget=5)
    assert backend.calls[0]["max_tokens"] == 5
    assert [e.span.kind for e in events if isinstance(e, Injected)] == ["close"]
    assert fin.stats.think_tokens == 5 and fin.trace.answer == "Done"


def test_max_think_cap_in_default_mode():
    backend = ScriptedBackend(
        lambda p: "a b c d e f g h" if not p.endswith(FORCED_CLOSE) else "Done"
    )
    _, _, fin = run(backend, Mode.DEFAULT, max_think=3)
    assert fin.stats.think_tokens == 3
    assert fin.trace.injected[0].kind == "close" and fin.trace.answer == "Done"


def test_max_tokens_inside_the_thought_leaves_it_unclosed():
    backend = ScriptedBackend("a " * 50)
    sampler = SamplerSettings(temperature=0, max_tokens=10)
    _, _, fin = run(backend, Mode.DEFAULT, sampler=sampler)
    assert fin.stats.finish_reason == "length" and fin.trace.think_state == "unclosed"
    assert fin.stats.think_tokens == 10 and fin.trace.answer == ""


def test_live_switch_to_zerothink_closes_the_thought_at_once():
    backend = ScriptedBackend(lambda p: "word " * 400 if p == P else "Answer.", delay=0.002)
    gen = Generation(
        backend, P, sampler=SamplerSettings(temperature=0, max_tokens=1000), mode=ModeSettings()
    )
    events = []
    for event in gen:
        events.append(event)
        if sum(isinstance(e, ThinkDelta) for e in events) == 5:
            gen.switch_mode(ModeSettings(Mode.ZEROTHINK))
    fin = events[-1]
    [span] = fin.trace.injected
    assert span.kind == "prefill" and span.text == ZEROTHINK_PREFILL
    assert 5 <= fin.stats.think_tokens < 20
    assert fin.trace.answer == "Answer."
    assert gen.mode.mode is Mode.ZEROTHINK


def test_live_switch_to_morethink_replaces_the_next_close():
    backend = ScriptedBackend(lambda p: " a b</think>" if not p.endswith(FORCED_CLOSE) else "End")
    gen = Generation(backend, P, sampler=SAMPLER, mode=ModeSettings())
    gen.switch_mode(ModeSettings(Mode.MORETHINK, enforce_num=1))
    fin = list(gen)[-1]
    assert [s.kind for s in fin.trace.injected] == ["rethink", "close"]


def test_switch_after_the_thought_applies_to_the_next_generation():
    backend = ScriptedBackend(lambda p: "t</think>" if p == P else "ans " * 30, delay=0.001)
    gen = Generation(backend, P, sampler=SAMPLER, mode=ModeSettings())
    events = []
    for event in gen:
        events.append(event)
        if isinstance(event, AnswerDelta):
            gen.switch_mode(ModeSettings(Mode.ZEROTHINK))
    assert gen.mode.mode is Mode.DEFAULT and gen.next_mode.mode is Mode.ZEROTHINK
    assert events[-1].trace.injected == () and events[-1].trace.thought == "t"


def test_stop_from_another_thread():
    backend = ScriptedBackend("word " * 10000, delay=0.001)
    gen = Generation(backend, P, sampler=SamplerSettings(max_tokens=20000), mode=ModeSettings())
    threading.Timer(0.05, gen.stop).start()
    fin = list(gen)[-1]
    assert fin.stats.finish_reason == "stopped"
    assert 0 < fin.stats.think_tokens < 10000


def _answers_after_close(prompt: str) -> str:
    if prompt.endswith(FORCED_CLOSE):
        return "one two three four five six seven eight nine ten</think> leaked"
    return "a b</think>"


def test_morethink_answer_gets_max_tokens_minus_the_think_budget_and_stops_at_the_close():
    """docs/study.md "MoreThink": however few tokens the thought used."""
    backend = ScriptedBackend(_answers_after_close)
    sampler = SamplerSettings(temperature=0, max_tokens=20, seed=7)
    _, _, fin = run(backend, Mode.MORETHINK, enforce_num=0, think_budget=12, sampler=sampler)
    assert fin.stats.think_tokens == 2
    answer_call = backend.calls[-1]
    assert answer_call["max_tokens"] == 20 - 12 and answer_call["stop"] == ["</think>"]
    assert fin.stats.answer_tokens == 8 and fin.stats.finish_reason == "length"
    _, _, fin = run(backend, Mode.MORETHINK, enforce_num=0, think_budget=5, sampler=sampler)
    assert fin.trace.answer == "one two three four five six seven eight nine ten"
    assert fin.stats.finish_reason == "close"


def test_morethink_answer_budget_rest_gives_the_answer_what_max_tokens_leaves():
    backend = ScriptedBackend(_answers_after_close)
    sampler = SamplerSettings(temperature=0, max_tokens=20, seed=7)
    _, _, fin = run(
        backend,
        Mode.MORETHINK,
        enforce_num=0,
        think_budget=12,
        sampler=sampler,
        answer_budget="rest",
    )
    assert backend.calls[-1]["max_tokens"] == 20 - 2 and backend.calls[-1]["stop"] == []
    assert fin.trace.answer.endswith("</think> leaked") and fin.stats.finish_reason == "eos"


def test_other_modes_answer_with_what_max_tokens_leaves():
    backend = ScriptedBackend(lambda p: "a b</think>" if p == P else "x</think>y")
    _, _, fin = run(backend, Mode.DEFAULT, think_budget=1)
    assert backend.calls[-1]["stop"] == [] and fin.trace.answer == "x</think>y"
