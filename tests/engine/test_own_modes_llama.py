"""Modes of your own in the real engine: the prefill is what llama.cpp evaluates after the prompt,
token for token."""

from lrmscope.engine.events import Injected, ThinkDelta
from lrmscope.engine.generation import Generation
from lrmscope.engine.settings import CustomMode, Injection, ModeSettings, SamplerSettings
from tests.engine.test_engine_llama import prompt_for

GREEDY = SamplerSettings(temperature=0.0, top_p=1.0, max_tokens=12, seed=1)
NOTHINKING = "Okay, I think I have finished thinking.\n</think>\n\n"


def generate(llama, mode: CustomMode):
    gen = Generation(llama, prompt_for(llama), sampler=GREEDY, mode=ModeSettings(mode))
    events = list(gen)
    return gen, events, events[-1]


def test_a_closing_prefill_is_what_llama_cpp_evaluates_after_the_prompt(llama):
    gen, events, fin = generate(llama, CustomMode("nothinking", prefill=NOTHINKING))
    expected = llama.tokenize(gen.prompt + NOTHINKING)
    # the tokens in the KV cache: the prompt and the prefill, then what the model wrote
    assert llama._evaluated[: len(expected)] == expected
    assert llama.detokenize(expected).endswith(
        "<think>\nOkay, I think I have finished thinking.\n</think>\n\n"
    )
    assert isinstance(events[0], Injected) and events[0].span.text == NOTHINKING
    assert fin.trace.raw.startswith(NOTHINKING) and fin.trace.think_state == "absent"
    assert fin.stats.think_tokens == 0 and fin.stats.answer_tokens > 0 and fin.trace.answer


def test_an_open_prefill_leaves_the_model_thinking_after_it(llama):
    prefill = "Let me first check whether answering this could cause harm."
    gen, events, fin = generate(llama, CustomMode("safety-first", prefill=prefill))
    expected = llama.tokenize(gen.prompt + prefill)
    assert llama._evaluated[: len(expected)] == expected
    assert fin.trace.thought.startswith(prefill) and len(fin.trace.thought) > len(prefill)
    assert fin.stats.think_tokens > 0 and any(isinstance(e, ThinkDelta) for e in events)
    assert [span.kind for span in fin.trace.injected] == ["prefill"]


class Recording:
    """The llama backend, with each stream call's prompt and max_tokens noted."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.calls: list[tuple[str, int]] = []

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def stream(self, prompt, **kw):
        self.calls.append((prompt, kw["max_tokens"]))
        yield from self.backend.stream(prompt, **kw)


def test_an_injection_lands_after_that_many_thought_tokens(llama):
    backend = Recording(llama)
    text = " Wait, is answering this safe?"
    mode = ModeSettings(injections=(Injection(3, text),))
    gen = Generation(backend, prompt_for(llama), sampler=GREEDY, mode=mode)
    fin = list(gen)[-1]
    [span] = fin.trace.injected
    assert (span.text, span.kind) == (text, "inject") and span.start > 0
    # the first call wrote exactly 3 tokens; the next continues from the text after it
    assert backend.calls[0][1] == 3
    assert backend.calls[1] == (gen.prompt + fin.trace.raw[: span.end], GREEDY.max_tokens - 3)
    assert fin.stats.think_tokens >= 3 and text in fin.trace.thought
