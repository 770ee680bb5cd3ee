"""Chat-completions deltas into raw trace text (lrmscope/engine/deltas.py): each way a server
sends a thought gives the same trace, however the text is cut into deltas; and the waits of the
shared HTTP side (Retry-After, --rpm) on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrmscope.engine.deltas import REBUILT_CLOSE, DeltaJoiner
from lrmscope.engine.openai_http import Clock, RateLimit, retry_after
from lrmscope.engine.settings import THINK_OPEN
from lrmscope.engine.trace import parse_trace

THOUGHT = "The user asks about locks. I should be careful."
ANSWER = "I can explain how pin tumbler locks work."


def joined(joiner: DeltaJoiner, deltas: list[tuple[str, str | None, str]]) -> str:
    text = ""
    for reasoning, field, content in deltas:
        text += "".join(segment for segment, _ in joiner.push(reasoning, field, content, 1))
    return text + "".join(segment for segment, _ in joiner.end())


def cut(text: str, cuts: list[int]) -> list[str]:
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in zip(points, points[1:])]


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
@given(cuts=st.lists(st.integers(0, 200), max_size=6))
def test_a_reasoning_field_is_rebuilt_in_the_study_shape(field, cuts):
    deltas = [(part, field, "") for part in cut(THOUGHT, cuts)]
    deltas += [("", None, part) for part in cut(ANSWER, cuts)]
    joiner = DeltaJoiner("fresh", opener=True)
    raw = joined(joiner, deltas)
    assert raw == THOUGHT + REBUILT_CLOSE + ANSWER
    assert joiner.source == field
    trace = parse_trace(raw)
    assert (trace.thought, trace.answer, trace.think_state) == (THOUGHT, ANSWER, "normal")


def test_a_prompt_without_the_opener_gets_it_before_the_thought():
    joiner = DeltaJoiner("fresh", opener=False)
    raw = joined(joiner, [("Hm.", "reasoning", ""), ("", None, "Hi.")])
    assert raw == THINK_OPEN + "Hm." + REBUILT_CLOSE + "Hi."
    assert parse_trace(raw).thought == "Hm."


@pytest.mark.parametrize(
    "written",
    [
        f"<think>\n{THOUGHT}\n</think>\n\n{ANSWER}",  # an older template: the model opens it
        f"{THOUGHT}\n</think>\n\n{ANSWER}",  # an R1 template opened it in the prompt
    ],
)
@given(cuts=st.lists(st.integers(0, 200), max_size=8))
def test_inline_think_tags_are_the_text_as_written(written, cuts):
    joiner = DeltaJoiner("fresh", opener=True)
    raw = joined(joiner, [("", None, part) for part in cut(written, cuts)])
    assert raw == written and joiner.source == "inline"
    trace = parse_trace(raw)
    assert (trace.thought, trace.answer) == (THOUGHT, ANSWER)


@given(cuts=st.lists(st.integers(0, 200), max_size=6))
def test_content_without_tags_or_reasoning_is_an_answer_with_no_thought(cuts):
    joiner = DeltaJoiner("fresh", opener=True)
    pushed = [joiner.push("", None, part, 1) for part in cut(ANSWER, cuts)]
    assert all(out == [] for out in pushed), "held until the stream shows what it is"
    released = joiner.end()
    assert released[0] == (REBUILT_CLOSE, 0)
    assert sum(tokens for _, tokens in released) == len(pushed)
    raw = "".join(text for text, _ in released)
    assert joiner.source == "none"
    trace = parse_trace(raw)
    assert (trace.thought, trace.answer) == ("", ANSWER)


def test_after_a_closing_prefill_every_field_is_answer():
    """vLLM's R1 parser looks at the generated text only: after ZeroThink's prefill it calls the
    answer reasoning, up to a close the model writes itself (which it splits at)."""
    joiner = DeltaJoiner("answer")
    raw = joined(joiner, [("Sure", "reasoning_content", ""), ("", None, ", here.")])
    assert raw == "Sure" + REBUILT_CLOSE + ", here." and joiner.source is None
    only_reasoning = DeltaJoiner("answer")
    assert joined(only_reasoning, [("Sure", "reasoning", ""), (", here.", "reasoning", "")]) == (
        "Sure, here."
    )
    assert joined(DeltaJoiner("answer"), [("", None, "Sure"), ("", None, ", here.")]) == (
        "Sure, here."
    )


def test_a_continued_thought_closes_where_the_server_splits_or_reads_inline():
    split = DeltaJoiner("think", known_field="reasoning_content")
    assert joined(split, [("", None, "Done.")]) == REBUILT_CLOSE + "Done."
    inline = DeltaJoiner("think")
    assert joined(inline, [("", None, " more</think>\n\nDone.")]) == " more</think>\n\nDone."
    assert inline.source == "inline"
    reasoned = DeltaJoiner("think")
    raw = joined(reasoned, [(" more", "reasoning", ""), ("", None, "Done.")])
    assert raw == " more" + REBUILT_CLOSE + "Done." and reasoned.source == "reasoning"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> Clock:
        return Clock(sleep=self.sleep, monotonic=lambda: self.now, wall=lambda: self.now)


def test_retry_after_in_seconds_or_as_a_date():
    fake = FakeClock()
    date = format_datetime(datetime.fromtimestamp(fake.now + 90, UTC), usegmt=True)
    assert retry_after("7", fake.clock()) == 7.0
    assert retry_after(date, fake.clock()) == 90.0
    assert retry_after("soon", fake.clock()) is None
    assert retry_after("86400000", fake.clock()) == 3600.0  # a wait this long is given up sooner


def test_rpm_spaces_requests_evenly():
    fake = FakeClock()
    limit = RateLimit(30, fake.clock())  # one request every 2 s
    for _ in range(4):
        limit.wait()
    assert fake.waits == [2.0, 2.0, 2.0]
    fake.now += 10  # idle time is not saved up
    limit.wait()
    limit.wait()
    assert fake.waits[3:] == [2.0]
