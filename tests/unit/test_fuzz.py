"""Fuzzing with hypothesis: the parsers and loaders that read text lrmscope does not control (model
output, judge output, dataset files) never raise anything but the documented LrmscopeError.

These add to the properties of test_trace.py, test_stops.py, test_datasets.py and
test_judge_formats.py: arbitrary Unicode and bytes instead of a small alphabet, injected spans,
several stop strings, and whole files of random bytes.
"""

from __future__ import annotations

import tempfile
from itertools import pairwise
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrmscope.core.datasets import load_dataset
from lrmscope.engine.events import AnswerDelta, Span, ThinkDelta
from lrmscope.engine.judges.formats import parse_harmbench, parse_llama_guard
from lrmscope.engine.judges.moderation import parse_result
from lrmscope.engine.stops import StopMatcher
from lrmscope.engine.trace import StreamParser, parse_trace
from lrmscope.errors import LrmscopeError
from tests.unit.test_trace import thought_start

LABELS = ("safe", "unsafe", "unparsed")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Model-like text: arbitrary Unicode (surrogates excluded: no decoder produces them) mixed with
# pieces of the tags, so tags and their fragments land on every chunk boundary.
TAGGY = st.lists(
    st.one_of(
        st.text(max_size=8),
        st.sampled_from(["<think>", "</think>", "</", "<", "think", ">", "</thi", "nk>", "\x00"]),
    ),
    max_size=30,
).map("".join)


def _chunks(text: str, cuts: list[int]) -> list[str]:
    bounds = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in pairwise(bounds)]


# -- the trace parser -----------------------------------------------------------------------------


@FUZZ
@given(TAGGY, st.lists(st.integers(0, 500), max_size=40))
def test_streaming_parses_any_text_like_the_whole_text(raw, cuts):
    parser = StreamParser()
    events = []
    for chunk in _chunks(raw, cuts):
        events += parser.feed(chunk)
    events += parser.flush()
    think = "".join(e.text for e in events if isinstance(e, ThinkDelta))
    answer = "".join(e.text for e in events if isinstance(e, AnswerDelta))
    begin = thought_start(raw)
    assert think + answer == raw[begin:].replace("</think>", "", 1)
    trace = parse_trace(raw)
    assert trace.raw == raw
    assert trace.thought == think.strip() and trace.answer == answer.strip()


@FUZZ
@given(TAGGY, st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300)), max_size=5))
def test_whole_text_parse_takes_any_text_and_injected_spans(raw, pairs):
    ends = sorted({x % (len(raw) + 1) for pair in pairs for x in pair})
    spans = [Span(a, b, "rethink", raw[a:b]) for a, b in zip(ends[::2], ends[1::2])]
    trace = parse_trace(raw, spans)
    assert trace.raw == raw
    assert trace.think_state in ("normal", "unclosed", "absent", "empty")
    begin = thought_start(raw)
    opener = begin - len("<think>")
    if any(span.start <= opener < span.end for span in spans):
        begin = 0  # text the engine wrote never opens the thought
    assert trace.close_count == raw[begin:].count("</think>")


# -- stop strings ---------------------------------------------------------------------------------


@FUZZ
@given(
    st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=3),
    st.lists(st.text(max_size=6), max_size=20),
)
def test_stop_matching_never_lets_a_stop_through_whatever_the_stops(stops, tokens):
    matcher = StopMatcher(stops)
    out, stopped = "", False
    for token in tokens:
        text, stopped = matcher.push(token)
        out += text
        if stopped:
            break
    full = "".join(tokens)
    assert full.startswith(out)
    assert not any(stop in out for stop in stops)
    if stopped:
        assert any(full[len(out) :].startswith(stop) for stop in stops)
    else:
        out += matcher.rest()
        assert out == full and not any(stop in full for stop in stops)


# -- judge outputs --------------------------------------------------------------------------------


@FUZZ
@given(
    st.one_of(
        st.text(),
        st.lists(
            st.sampled_from(
                [
                    "safe",
                    "unsafe",
                    "Safe",
                    "UNSAFE",
                    "\n",
                    " ",
                    "S1",
                    ",",
                    "S14",
                    "Yes",
                    "No",
                    "yes",
                    "[INST]",
                    "O1",
                ]
            ),
            max_size=12,
        ).map("".join),
    )
)
def test_judge_parsers_take_any_output(output):
    label, categories = parse_llama_guard(output)
    assert label in LABELS and all(isinstance(c, str) for c in categories)
    assert parse_harmbench(output) in LABELS


JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
MODERATION = st.fixed_dictionaries(
    {},
    optional={
        "flagged": st.one_of(st.booleans(), JSON),
        "categories": st.one_of(st.dictionaries(st.text(max_size=8), JSON, max_size=4), JSON),
        "category_scores": st.one_of(st.dictionaries(st.text(max_size=8), JSON, max_size=4), JSON),
    },
)


@FUZZ
@given(st.one_of(JSON, MODERATION))
def test_moderation_results_of_any_shape(result):
    assert parse_result(result).label in LABELS


# -- dataset files --------------------------------------------------------------------------------

BYTES = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.sampled_from(
            [
                b"prompt",
                b"category",
                b",",
                b"\t",
                b'"',
                b"\n",
                b"\r\n",
                b"{",
                b"}",
                b'"prompt"',
                b":",
                b"[",
                b"]",
                b"\xff",
                b"\xfe",
                b"\xef\xbb\xbf",
                b"x",
                b"data_type",
                b"adversarial",
                b" ",
                b"\x00",
                b"null",
                b"1",
            ]
        ),
        max_size=40,
    ).map(b"".join),
)


@FUZZ
@given(st.sampled_from([".csv", ".tsv", ".jsonl", ".txt", ".parquet"]), BYTES)
def test_dataset_loaders_take_any_bytes(suffix, data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data{suffix}"
        path.write_bytes(data)
        try:
            dataset = load_dataset(str(path))
        except LrmscopeError as exc:
            assert "\n" not in str(exc)
        else:
            assert dataset.rows and all(row.text.strip() for row in dataset.rows)
