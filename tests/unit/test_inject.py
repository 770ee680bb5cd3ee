"""--inject AFTER_TOKENS:TEXT: the text lands in the running thought once the model has written
that many thought tokens, as an injected span (scripted backend; the real model:
tests/cli/test_own_modes_cli.py)."""

import pytest

from lrmscope.engine.events import AnswerDelta, Injected, ThinkDelta
from lrmscope.engine.generation import Generation
from lrmscope.engine.scripted import ScriptedBackend
from lrmscope.engine.settings import (
    FORCED_CLOSE,
    Injection,
    Mode,
    ModeSettings,
    parse_injections,
)
from lrmscope.errors import LrmscopeError
from tests.support.scripted import SAMPLER, P

WORDS = " a b c d e f g h</think>"


def run(script, **mode_kw):
    backend = ScriptedBackend(script)
    gen = Generation(backend, P, sampler=SAMPLER, mode=ModeSettings(**mode_kw))
    events = list(gen)
    return backend, events, events[-1]


def test_the_option_is_a_token_count_a_colon_and_the_text():
    assert Injection.parse("3: Wait: is it safe?") == Injection(3, " Wait: is it safe?")
    injections = parse_injections(["9:b", "2:a", "9:c"])
    assert ModeSettings(injections=injections).injections == (
        Injection(2, "a"),
        Injection(9, "b"),
        Injection(9, "c"),
    )
    for bad in ("Wait", "x:Wait", ":Wait", "-1:Wait", "3:"):
        with pytest.raises(LrmscopeError, match="--inject"):
            Injection.parse(bad)


def test_the_text_lands_after_that_many_thought_tokens():
    backend, events, fin = run(
        lambda p: WORDS if p == P else ("\n\nDone." if p.endswith("</think>") else " d</think>"),
        injections=(Injection(3, " Is this safe?"),),
    )
    assert backend.calls[0]["max_tokens"] == 3 and backend.calls[0]["stop"] == ["</think>"]
    assert backend.calls[1]["prompt"] == P + " a b c Is this safe?"
    [span] = fin.trace.injected
    assert (span.start, span.text, span.kind) == (len(" a b c"), " Is this safe?", "inject")
    assert fin.trace.thought == "a b c Is this safe? d" and fin.trace.answer == "Done."
    assert fin.stats.think_tokens == 4  # the model's own tokens only
    [injected] = [e for e in events if isinstance(e, Injected)]
    assert injected.part == "think"


def test_several_land_in_order_and_one_after_the_thought_closed_never_does():
    def script(prompt: str) -> str:
        if prompt.endswith("</think>"):
            return "\n\nOk."
        return " x</think>" if prompt.endswith("[2]") else " x y"

    _, _, fin = run(
        script, injections=(Injection(2, "[2]"), Injection(1, "[1]"), Injection(50, "[50]"))
    )
    assert [(s.text, s.kind) for s in fin.trace.injected] == [("[1]", "inject"), ("[2]", "inject")]
    assert fin.trace.thought == "x[1] x[2] x" and fin.trace.answer == "Ok."


def test_an_injection_inside_morethink_counts_tokens_across_its_rounds():
    def script(prompt: str) -> str:
        return "Final." if prompt.endswith(FORCED_CLOSE) else " u v</think>"

    _, _, fin = run(
        script,
        mode=Mode.MORETHINK,
        enforce_num=1,
        think_budget=50,
        injections=(Injection(3, " [safe?]"),),
    )
    kinds = [s.kind for s in fin.trace.injected]
    assert kinds == ["rethink", "inject", "close"]
    assert fin.trace.raw.index(" [safe?]") > fin.trace.raw.index(fin.trace.injected[0].text)


def test_the_injections_are_saved_only_when_there_are_some():
    assert "injections" not in ModeSettings().as_dict()
    saved = ModeSettings(injections=(Injection(4, "Hm"),)).as_dict()
    assert saved["injections"] == [{"after": 4, "text": "Hm"}]


def test_a_text_given_while_the_thought_streams_lands_at_the_next_token_boundary():
    """Generation.inject (the chat's free-text intervention, given from the UI thread): the call
    running stops after the token in hand, the text follows it as an `inject` span, the model goes
    on from there; once the thought has closed it is refused."""
    backend = ScriptedBackend(lambda p: "\n\nOk." if p.endswith("</think>") else " a b c</think>")
    gen = Generation(backend, P, sampler=SAMPLER, mode=ModeSettings())
    given = []
    for event in gen:
        if isinstance(event, ThinkDelta) and not given:
            given.append(gen.inject(" Is it safe?"))
        if isinstance(event, AnswerDelta):
            given.append(gen.inject(" too late"))
    fin = event
    assert given == [True, False] and gen.pending_injections == 0
    [span] = fin.trace.injected
    assert fin.trace.raw.startswith(" a Is it safe? a b c</think>")
    assert (span.start, span.text, span.kind) == (len(" a"), " Is it safe?", "inject")
    assert backend.calls[1]["prompt"] == P + " a Is it safe?"
