from hypothesis import given
from hypothesis import strategies as st

from lrmscope.engine.stops import StopMatcher


@given(
    st.lists(st.sampled_from(["</", "think", ">", "a", " ", "</think>", "<", "/th"]), max_size=25),
)
def test_emitted_text_is_everything_before_the_first_stop(tokens):
    matcher = StopMatcher(["</think>"])
    out, stopped = "", False
    for token in tokens:
        text, stopped = matcher.push(token)
        out += text
        if stopped:
            break
    if not stopped:
        out += matcher.rest()
    full = "".join(tokens)
    index = full.find("</think>")
    assert stopped == (index >= 0)
    assert out == (full[:index] if index >= 0 else full)


def test_no_stops_passes_text_through():
    assert StopMatcher([]).push("abc") == ("abc", False)
