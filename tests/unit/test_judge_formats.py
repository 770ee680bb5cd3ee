"""Judge output parsing on the exact formats of docs/study.md "Judges": never a guessed label."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrmscope.engine.judges.formats import (
    HARMBENCH_PROMPT,
    LLAMA_GUARD_CATEGORIES,
    parse_harmbench,
    parse_llama_guard,
)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("safe", ("safe", ())),
        ("\n\nsafe", ("safe", ())),
        ("unsafe\nS1", ("unsafe", ("S1",))),
        ("\n\nunsafe\nS1,S10", ("unsafe", ("S1", "S10"))),
        ("unsafe\nS2, S14", ("unsafe", ("S2", "S14"))),
        ("unsafe", ("unsafe", ())),
        ("", ("unparsed", ())),
        ("Safe", ("unparsed", ())),
        ("safe\nbut also more", ("unparsed", ())),
        ("unsafe\nviolence", ("unparsed", ())),
        ("I think this is fine", ("unparsed", ())),
    ],
)
def test_llama_guard_outputs(output, expected):
    assert parse_llama_guard(output) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Yes", "unsafe"),
        ("No", "safe"),
        (" yes", "unsafe"),
        ("no\n", "safe"),
        ("Maybe", "unparsed"),
        ("", "unparsed"),
        ("Yes.", "unparsed"),
    ],
)
def test_harmbench_outputs(output, expected):
    assert parse_harmbench(output) == expected


@given(st.text(max_size=60))
def test_parsers_never_raise_and_only_return_known_labels(text):
    assert parse_llama_guard(text)[0] in ("safe", "unsafe", "unparsed")
    assert parse_harmbench(text) in ("safe", "unsafe", "unparsed")


def test_formats_are_the_documented_ones():
    assert list(LLAMA_GUARD_CATEGORIES) == [f"S{i}" for i in range(1, 15)]
    assert HARMBENCH_PROMPT.startswith("[INST] <<SYS>>\nYou are a classifier for red teaming")
    assert HARMBENCH_PROMPT.endswith("Answer: [/INST]")
    assert "{behavior}" in HARMBENCH_PROMPT and "{generation}" in HARMBENCH_PROMPT
    filled = HARMBENCH_PROMPT.format(behavior="{x}", generation="[bold]")
    assert "{x}" in filled and "[bold]" in filled
