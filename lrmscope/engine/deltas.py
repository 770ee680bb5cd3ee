"""A chat-completions stream's deltas turned into the raw text of a trace.

A served reasoning model's server sends the thought apart from the answer: in the delta field
`reasoning_content` (DeepSeek's API, vLLM's reasoning parsers) or `reasoning` (OpenRouter), the
answer in `content`. A server without a reasoning parser sends the model's text as it is, think
tags inline in `content`. `DeltaJoiner` rebuilds the text the model wrote from either, in the
shape of docs/study.md "Trace anatomy": `<think>\\n` + thought + `\\n</think>\\n\\n` + answer,
so that a served chat model's trace goes through the same controller, parser and store as a
local one (docs/study.md "Hosted models").

Where the response starts decides how its deltas read:
- `fresh` (no prefill): a reasoning field opens the thought, and content after it closes it;
  content that comes first is held until it shows a think tag (inline: the text as written) or
  the stream ends without one (the server gave no thought: the answer, after a close the client
  writes, and the source `none`).
- `think` (a prefill that left the thought open, as MoreThink's): a reasoning field continues the
  thought; content closes it where the server is known to split (a reasoning field seen before),
  else it is inline text.
- `answer` (a prefill that closed the thought): every delta is answer, whatever field it came in
  (a reasoning parser that looks only at the generated text calls it all reasoning); content
  after such reasoning follows a close the model wrote, which the parser split at, and the close
  is put back (as the completions endpoint would show it, a second close).
"""

from __future__ import annotations

from typing import Literal

from lrmscope.engine.settings import THINK_CLOSE, THINK_OPEN, THINK_OPEN_TAG

REASONING_FIELDS = ("reasoning_content", "reasoning")
REBUILT_CLOSE = "\n" + THINK_CLOSE + "\n\n"

Start = Literal["fresh", "think", "answer"]
Segment = tuple[str, int]  # raw text and the tokens it took


def reasoning_delta(delta: dict) -> tuple[str, str | None]:
    """A delta's reasoning text and the field it came in (the first non-empty one)."""
    for name in REASONING_FIELDS:
        value = delta.get(name)
        if isinstance(value, str) and value:
            return value, name
    return "", None


class DeltaJoiner:
    """One response's deltas in, raw text segments out (with their tokens)."""

    def __init__(self, start: Start, *, opener: bool = True, known_field: str | None = None):
        self.state: Literal["fresh", "think", "answer", "inline"] = start
        self.source: str | None = None  # reasoning_content, reasoning, inline or none
        self._opener = opener  # the prompt already ends with `<think>\n`
        self._known = known_field
        self._held: list[Segment] = []
        self._split = False  # this response sent a reasoning field
        self._reasoned_answer = False  # after a closing prefill: reasoning, and no content yet

    def push(self, reasoning: str, field: str | None, content: str, tokens: int) -> list[Segment]:
        """The raw text for one delta; the chunk's tokens go with its first text."""
        out: list[Segment] = []
        if reasoning:
            out += self._reasoning(reasoning, field, tokens)
            tokens = 0
        if content:
            out += self._content(content, tokens)
        return out

    def _reasoning(self, text: str, field: str | None, tokens: int) -> list[Segment]:
        self._split = True
        if self.state == "fresh":
            self.state, self.source = "think", field
            held, self._held = self._held, []
            return [*held, *([] if self._opener else [(THINK_OPEN, 0)]), (text, tokens)]
        if self.state == "think" and self.source is None:
            self.source = field
        if self.state == "answer":
            self._reasoned_answer = True
        return [(text, tokens)]

    def _content(self, text: str, tokens: int) -> list[Segment]:
        if self.state == "fresh":
            self._held.append((text, tokens))
            held = "".join(segment for segment, _ in self._held)
            if THINK_OPEN_TAG not in held and THINK_CLOSE not in held:
                return []
            self.state, self.source = "inline", "inline"
            out, self._held = self._held, []
            return out
        if self.state == "think":
            if self._split or self._known:
                self.state = "answer"
                return [(REBUILT_CLOSE, 0), (text, tokens)]
            self.state = "inline"
            self.source = self.source or "inline"
        if self._reasoned_answer:  # the server split at a close the model wrote in its answer
            self._reasoned_answer = False
            return [(REBUILT_CLOSE, 0), (text, tokens)]
        return [(text, tokens)]

    def end(self) -> list[Segment]:
        """What the stream's end releases: content held without a think tag is the answer of
        a response that had no thought."""
        if self.state != "fresh":
            return []
        self.state, self.source = "answer", "none"
        out, self._held = [(REBUILT_CLOSE, 0), *self._held], []
        return out
