"""The engine on the real embedded model through real llama.cpp, for every decoding mode.

SmolLM2 never writes `</think>` by itself (docs/study.md "Machines"), so the tests that need the
model to close its thought constrain it with a GBNF grammar while the thought is open.
"""

from lrmscope.engine.backend import Message
from lrmscope.engine.events import AnswerDelta, Finished, Injected, ThinkDelta
from lrmscope.engine.generation import Generation
from lrmscope.engine.prompt import with_think_opener
from lrmscope.engine.settings import (
    FORCED_CLOSE,
    LESSTHINK_PREFILL,
    RETHINK_STRINGS,
    ZEROTHINK_PREFILL,
    Mode,
    ModeSettings,
    SamplerSettings,
)

GREEDY = SamplerSettings(temperature=0.0, top_p=1.0, max_tokens=40, seed=1)
# The model writes a few words and then closes its thought.
CLOSING_GRAMMAR = 'root ::= " " [a-z]{1,6} " " [a-z]{1,6} "</think>"'


def prompt_for(llama, text="How do I pick a lock?"):
    prompt, added = with_think_opener(llama.render([Message("user", text)]))
    assert added and prompt.endswith("<|im_start|>assistant\n<think>\n")
    return prompt


def run(llama, mode, sampler=GREEDY, on_event=None, **mode_kw):
    gen = Generation(llama, prompt_for(llama), sampler=sampler, mode=ModeSettings(mode, **mode_kw))
    events = []
    for event in gen:
        events.append(event)
        if on_event:
            on_event(gen, events)
    assert isinstance(events[-1], Finished)
    return gen, events, events[-1]


def assert_spans_consistent(trace):
    for span in trace.injected:
        assert trace.raw[span.start : span.end] == span.text


def test_default_mode_streams_an_unclosed_thought(llama):
    _, events, fin = run(llama, Mode.DEFAULT)
    assert fin.stats.finish_reason == "length"
    assert fin.stats.think_tokens == 40 and fin.stats.answer_tokens == 0
    assert fin.trace.think_state == "unclosed" and fin.trace.injected == ()
    think = "".join(e.text for e in events if isinstance(e, ThinkDelta))
    assert think == fin.trace.raw and fin.trace.thought == think.strip() != ""
    assert fin.stats.prompt_tokens == llama.count_tokens(prompt_for(llama))


def test_greedy_is_deterministic_and_seeds_matter_when_sampling(llama):
    assert run(llama, Mode.DEFAULT)[2].trace.raw == run(llama, Mode.DEFAULT)[2].trace.raw
    hot = [SamplerSettings(temperature=1.0, top_p=0.95, max_tokens=30, seed=s) for s in (1, 1, 2)]
    a, b, c = (run(llama, Mode.DEFAULT, sampler=s)[2].trace.raw for s in hot)
    assert a == b and a != c


def test_zerothink(llama):
    gen, events, fin = run(llama, Mode.ZEROTHINK)
    assert isinstance(events[0], Injected) and events[0].span.text == ZEROTHINK_PREFILL
    assert (gen.prompt + fin.trace.raw).startswith(gen.prompt + "\n</think>\n\n")
    assert (gen.prompt + ZEROTHINK_PREFILL).endswith("<think>\n\n</think>\n\n")
    assert fin.trace.think_state == "absent" and fin.stats.think_tokens == 0
    assert fin.trace.answer and fin.stats.answer_tokens == 40
    assert any(isinstance(e, AnswerDelta) for e in events)
    assert_spans_consistent(fin.trace)


def test_lessthink(llama):
    _, events, fin = run(llama, Mode.LESSTHINK)
    [span] = fin.trace.injected
    assert span.text == (
        "Okay, the user ask for this, I can answer it without thinking much. \n</think>\n\n"
    )
    assert span.text == LESSTHINK_PREFILL and (span.start, span.kind) == (0, "prefill")
    assert fin.trace.think_state == "absent" and fin.trace.answer
    assert fin.stats.think_tokens == 0 and fin.stats.answer_tokens > 0


def test_default_mode_keeps_the_models_own_close(llama):
    _, _, fin = run(llama, Mode.DEFAULT, think_grammar=CLOSING_GRAMMAR)
    assert fin.trace.injected == () and fin.trace.think_state == "normal"
    assert fin.trace.think_closed and fin.trace.close_count >= 1
    assert fin.stats.think_tokens > 0 and fin.stats.answer_tokens > 0 and fin.trace.answer


def test_morethink_replaces_the_close_then_forces_it(llama):
    sampler = SamplerSettings(temperature=0.0, top_p=1.0, max_tokens=200)
    _, events, fin = run(
        llama,
        Mode.MORETHINK,
        sampler=sampler,
        enforce_num=3,
        think_grammar=CLOSING_GRAMMAR,
        think_budget=150,
    )
    kinds = [e.span.kind for e in events if isinstance(e, Injected)]
    assert kinds == ["rethink", "rethink", "rethink", "close"]
    assert fin.stats.rethinks == 3
    assert all(s.text in RETHINK_STRINGS for s in fin.trace.injected[:3])
    assert fin.trace.injected[-1].text == FORCED_CLOSE
    assert fin.trace.raw.count("</think>") == 1 and fin.trace.think_state == "normal"
    assert fin.trace.answer and 0 < fin.stats.answer_tokens <= 200 - 150
    assert_spans_consistent(fin.trace)


def test_morethink_budget_forces_the_close(llama):
    _, _, fin = run(llama, Mode.MORETHINK, think_budget=12)
    assert fin.stats.think_tokens == 12 and fin.stats.rethinks == 0
    assert [s.kind for s in fin.trace.injected] == ["close"]
    assert fin.trace.answer


def test_max_think_cap(llama):
    _, _, fin = run(llama, Mode.DEFAULT, max_think=7)
    assert fin.stats.think_tokens == 7 and fin.trace.injected[0].text == FORCED_CLOSE
    assert fin.trace.think_closed and fin.stats.answer_tokens == 40 - 7


def test_live_switch_to_zerothink_mid_thought(llama):
    def switch(gen, events):
        if sum(isinstance(e, ThinkDelta) for e in events) == 6:
            gen.switch_mode(ModeSettings(Mode.ZEROTHINK))

    gen, events, fin = run(llama, Mode.DEFAULT, on_event=switch)
    [span] = fin.trace.injected
    assert span.kind == "prefill" and span.text == ZEROTHINK_PREFILL and span.start > 0
    assert 6 <= fin.stats.think_tokens <= 8
    assert fin.trace.answer and fin.trace.think_state == "normal"
    assert gen.mode.mode is Mode.ZEROTHINK
    injected_at = next(i for i, e in enumerate(events) if isinstance(e, Injected))
    assert not any(isinstance(e, ThinkDelta) for e in events[injected_at:])


def test_live_switch_to_morethink_replaces_the_next_close(llama):
    def switch(gen, events):
        if len(events) == 1:
            gen.switch_mode(
                ModeSettings(Mode.MORETHINK, enforce_num=1, think_grammar=CLOSING_GRAMMAR)
            )

    _, _, fin = run(llama, Mode.DEFAULT, on_event=switch, think_grammar=CLOSING_GRAMMAR)
    assert [s.kind for s in fin.trace.injected] == ["rethink", "close"]


def test_stop_mid_generation(llama):
    def stop(gen, events):
        if len(events) == 3:
            gen.stop()

    sampler = SamplerSettings(temperature=0.0, top_p=1.0, max_tokens=500)
    _, _, fin = run(llama, Mode.DEFAULT, sampler=sampler, on_event=stop)
    assert fin.stats.finish_reason == "stopped"
    assert 3 <= fin.stats.think_tokens <= 5 and fin.trace.raw


def test_prompt_longer_than_the_context_ends_with_context(llama):
    import pytest

    from lrmscope.errors import LrmscopeError

    gen = Generation(llama, "word " * 20000, sampler=GREEDY, mode=ModeSettings())
    fin = list(gen)[-1]
    assert fin.stats.finish_reason == "context" and fin.trace.raw == ""
    with pytest.raises(LrmscopeError, match="context holds"):
        llama.check_prompt("word " * 20000)


def test_a_forced_close_at_the_end_of_the_context_ends_the_sample(model_path):
    from lrmscope.engine.llama import LlamaBackend, LlamaSettings

    small = LlamaBackend(model_path, LlamaSettings(n_ctx=128))
    try:
        prompt = prompt_for(small)
        room = small.n_ctx - small.count_tokens(prompt)
        sampler = SamplerSettings(temperature=0.0, top_p=1.0, max_tokens=1000)
        gen = Generation(small, prompt, sampler=sampler, mode=ModeSettings(max_think=room - 2))
        fin = list(gen)[-1]
        assert fin.stats.finish_reason == "context"
        assert fin.stats.think_tokens == room - 2 and fin.trace.injected[-1].kind == "close"
    finally:
        small.close()


def test_multibyte_text_survives_streaming(llama):
    sampler = SamplerSettings(temperature=0.0, top_p=1.0, max_tokens=30)
    prompt = prompt_for(llama, "Écris une phrase en français avec des accents: é, è, à, ç.")
    fin = list(Generation(llama, prompt, sampler=sampler, mode=ModeSettings()))[-1]
    assert "\ufffd" not in fin.trace.raw and fin.trace.raw


def test_a_grammar_that_does_not_parse_is_refused_not_a_crash(llama):
    import pytest

    from lrmscope.errors import LrmscopeError

    for bad in ("root ::= [a-", 'start ::= "x"'):
        with pytest.raises(LrmscopeError, match="does not parse"):
            llama.check_grammar(bad)
    llama.check_grammar(CLOSING_GRAMMAR)
