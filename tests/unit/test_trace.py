"""The trace parser: whole-text parsing and chunked streaming agree, for every trace shape, and
the judged texts of each part (docs/study.md "What is judged")."""

from hypothesis import given
from hypothesis import strategies as st

from lrmscope.engine.events import AnswerDelta, Span, ThinkDelta
from lrmscope.engine.settings import LESSTHINK_PREFILL, ZEROTHINK_PREFILL
from lrmscope.engine.trace import StreamParser, judged_texts, parse_trace

PIECES = st.sampled_from(
    [
        "</think>",
        "</",
        "think",
        ">",
        "<",
        "/",
        "t",
        "Wait",
        "\n",
        " ",
        "ok",
        "</thi",
        "nk>",
        "é",
        "🙂",
        "<think>",
        "<thi",
    ]
)


def thought_start(raw: str) -> int:
    """Where the thought begins: after a `<think>` the model wrote first (after whitespace)."""
    stripped = raw.lstrip()
    return len(raw) - len(stripped) + len("<think>") if stripped.startswith("<think>") else 0


def _stream(raw: str, cuts: list[int]) -> tuple[str, str]:
    parser = StreamParser()
    events = []
    bounds = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    for a, b in zip(bounds, bounds[1:]):
        events += parser.feed(raw[a:b])
    events += parser.flush()
    for event in events:
        assert raw[event.start : event.start + len(event.text)] == event.text
    think = "".join(e.text for e in events if isinstance(e, ThinkDelta))
    answer = "".join(e.text for e in events if isinstance(e, AnswerDelta))
    return think, answer


@given(st.lists(PIECES, max_size=30).map("".join), st.lists(st.integers(0, 400), max_size=40))
def test_any_chunking_gives_the_same_trace(raw, cuts):
    think, answer = _stream(raw, cuts)
    trace = parse_trace(raw)
    begin = thought_start(raw)
    close = raw.find("</think>", begin)
    if close < 0:
        assert (think, answer) == (raw[begin:], "")
        assert not trace.think_closed and trace.think_state == "unclosed"
    else:
        assert think == raw[begin:close]
        assert answer == raw[close + len("</think>") :]
        assert trace.thought == think.strip() and trace.answer == answer.strip()
        assert trace.close_count == raw[begin:].count("</think>")


def test_normal_thought():
    trace = parse_trace("Let me see.\n</think>\n\nNo.")
    assert (trace.thought, trace.answer, trace.think_state) == ("Let me see.", "No.", "normal")


def test_unclosed_thought_has_no_answer():
    trace = parse_trace("thinking and thinking")
    assert trace.answer == "" and trace.thought == "thinking and thinking"
    assert trace.think_state == "unclosed" and not trace.think_closed


def test_empty_thought_closed_by_the_model():
    trace = parse_trace("\n</think>\n\nHi")
    assert trace.think_state == "empty" and trace.answer == "Hi"


def test_absent_thought_when_the_engine_closed_it():
    raw = "\n</think>\n\nHi"
    trace = parse_trace(raw, [Span(0, 11, "prefill", "\n</think>\n\n")])
    assert trace.think_state == "absent" and trace.answer == "Hi"


def test_closed_twice_uses_the_first_close_and_keeps_raw():
    raw = "a</think>b</think>c"
    trace = parse_trace(raw)
    assert (trace.thought, trace.answer, trace.close_count, trace.raw) == (
        "a",
        "b</think>c",
        2,
        raw,
    )


def test_tag_split_across_chunks():
    parser = StreamParser()
    events = parser.feed("abc</th") + parser.feed("ink>\n\nanswer")
    assert events == [ThinkDelta("abc", 0), AnswerDelta("\n\nanswer", 11)]
    assert not parser.in_think


def test_a_thought_the_model_opened_itself():
    trace = parse_trace("\n<think>\nLet me see.\n</think>\n\nNo.")
    assert (trace.thought, trace.answer, trace.think_state) == ("Let me see.", "No.", "normal")
    parser = StreamParser()
    events = parser.feed("\n<th") + parser.feed("ink>\nLet") + parser.feed(" me see.</think>No.")
    assert events == [ThinkDelta("\nLet", 8), ThinkDelta(" me see.", 12), AnswerDelta("No.", 28)]


def test_a_thought_tag_later_in_the_text_is_text():
    trace = parse_trace("So <think> is a tag.</think>ok")
    assert trace.thought == "So <think> is a tag." and trace.answer == "ok"


def _prefilled(prefill: str, answer: str):
    return parse_trace(prefill + answer, [Span(0, len(prefill), "prefill", prefill)])


def test_judged_texts_leave_out_a_prefill_before_the_first_token():
    zero = judged_texts(_prefilled(ZEROTHINK_PREFILL, "Sure, here is how."))
    assert zero == {"think": "", "answer": "Sure, here is how.", "full": "Sure, here is how."}
    less = _prefilled(LESSTHINK_PREFILL, "Sure.")
    assert less.thought.startswith("Okay, the user ask for this")  # shown, never judged
    assert judged_texts(less) == {"think": "", "answer": "Sure.", "full": "Sure."}


def test_judged_texts_keep_mid_stream_injections():
    raw = "Hmm.Wait maybe not.</think>\n\nNo."
    spans = [Span(4, 8, "rethink", "Wait"), Span(19, 30, "close", "</think>\n\n")]
    assert judged_texts(parse_trace(raw, spans)) == {
        "think": "Hmm.Wait maybe not.",
        "answer": "No.",
        "full": raw,
    }
    switched = "I think" + ZEROTHINK_PREFILL + "Fine."
    spans = [Span(7, 7 + len(ZEROTHINK_PREFILL), "prefill", ZEROTHINK_PREFILL)]
    assert judged_texts(parse_trace(switched, spans)) == {
        "think": "I think",
        "answer": "Fine.",
        "full": switched,
    }


def test_a_thought_of_injected_text_alone_is_not_judged():
    raw = "Wait</think>\n\n"
    trace = parse_trace(raw, [Span(0, 4, "rethink", "Wait"), Span(4, 14, "close", raw[4:])])
    assert judged_texts(trace) == {"think": "", "answer": "", "full": ""}
    unclosed = parse_trace("Wait", [Span(0, 4, "rethink", "Wait")])
    assert not unclosed.think_written and judged_texts(unclosed)["think"] == ""
