"""The trace parser: raw response text -> thought, answer, injected spans and the judged texts.

Two views of the same rule (the first `</think>` ends the thought; a `<think>` the model writes
at the start of its output opens it; docs/study.md "Trace anatomy"): `parse_trace` for a whole
raw text, `StreamParser` for text arriving in chunks, which holds back a possible partial tag at a
chunk's end so that a tag split across chunks is still found.

`judged_texts` is the one rule for what a judge reads of each part (docs/study.md "What is
judged"); the store applies the same rule in SQL through the two fields it keeps of a trace,
`response_start` and `think_written`.
"""

from __future__ import annotations

from collections.abc import Sequence

from lrmscope.engine.events import AnswerDelta, Span, ThinkDelta, ThinkState, Trace
from lrmscope.engine.settings import THINK_CLOSE, THINK_OPEN_TAG


def _model_text(raw: str, spans: Sequence[Span], begin: int, end: int) -> str:
    """The characters of raw[begin:end] that the model wrote (outside injected spans)."""
    pieces, pos = [], begin
    for span in sorted(spans, key=lambda s: s.start):
        if span.start >= end:
            break
        if span.end <= pos:
            continue
        pieces.append(raw[pos : max(pos, span.start)])
        pos = max(pos, span.end)
    if pos < end:
        pieces.append(raw[pos:end])
    return "".join(pieces)


def response_start(spans: Sequence[Span]) -> int:
    """Where the model's own output begins: after the prefills placed before its first token.

    Such a prefill (ZeroThink's and LessThink's, or a live switch before any token) is part of the
    prompt the model continued, so it is never judged. Later injections (MoreThink's rethinks and
    forced close, a switch mid-thought) stay in the response, as in the study."""
    pos = 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.start != pos or span.kind != "prefill":
            break
        pos = span.end
    return pos


def thought_start(raw: str, spans: Sequence[Span] = ()) -> int:
    """The offset just after a `<think>` the model wrote to open its output (after whitespace),
    or 0 when it wrote none (the prompt opened the thought)."""
    stripped = raw.lstrip()
    if not stripped.startswith(THINK_OPEN_TAG):
        return 0
    at = len(raw) - len(stripped)
    if any(s.start <= at < s.end for s in spans):
        return 0
    return at + len(THINK_OPEN_TAG)


def parse_trace(raw: str, injected: Sequence[Span] = ()) -> Trace:
    spans = tuple(injected)
    begin = thought_start(raw, spans)
    start = response_start(spans)
    close = raw.find(THINK_CLOSE, begin)
    if close < 0:
        thought = raw[begin:].strip()
        written = bool(_model_text(raw, spans, begin, len(raw)).strip())
        return Trace(raw, thought, "", False, 0, "unclosed", spans, start, written)
    model_wrote = _model_text(raw, spans, begin, close).strip()
    state: ThinkState
    if model_wrote:
        state = "normal"
    elif any(s.start <= close < s.end for s in spans):
        state = "absent"
    else:
        state = "empty"
    return Trace(
        raw=raw,
        thought=raw[begin:close].strip(),
        answer=raw[close + len(THINK_CLOSE) :].strip(),
        think_closed=True,
        close_count=raw.count(THINK_CLOSE, begin),
        think_state=state,
        injected=spans,
        response_start=start,
        think_written=bool(model_wrote),
    )


def judged_texts(trace: Trace) -> dict[str, str]:
    """What a judge reads of each part ("" = the part is not judged: the model wrote none of it).

    think: the thought, mid-stream injections included, when the model wrote some of it
    (LessThink's thought is the engine's sentence alone: not judged); answer: the answer;
    full: the response from the model's first token on (no leading prefill), stripped."""
    think = trace.thought if trace.think_written else ""
    written = trace.think_written or bool(trace.answer)
    full = trace.raw[trace.response_start :].strip() if written else ""
    return {"think": think, "answer": trace.answer, "full": full}


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of text that is a proper prefix of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


class StreamParser:
    """Splits streamed raw text into thought and answer deltas, each with its raw offset.

    The concatenated ThinkDelta texts equal the thought's raw text (after a model-written opening
    tag, before the first close) and the AnswerDelta texts equal raw[first close + len(tag):],
    however the raw text was chunked.
    """

    def __init__(self) -> None:
        self.in_think = True
        self._opening = True  # nothing but whitespace seen yet: a `<think>` may still come
        self._held = ""
        self.pos = 0  # raw offset of the first character not yet emitted

    def _emit(self, cls, text: str) -> list[ThinkDelta | AnswerDelta]:
        if not text:
            return []
        delta = cls(text, self.pos)
        self.pos += len(text)
        return [delta]

    def _open(self, text: str) -> str | None:
        """While the output may still open with `<think>`: hold text back and return None, or
        return the text to parse once that is decided (without a model-written tag)."""
        text = self._held + text
        stripped = text.lstrip()
        if len(stripped) < len(THINK_OPEN_TAG) and THINK_OPEN_TAG.startswith(stripped):
            # blank, or a proper prefix of the tag: undecided
            self._held = text
            return None
        self._held = ""
        self._opening = False
        if stripped.startswith(THINK_OPEN_TAG):
            skip = len(text) - len(stripped) + len(THINK_OPEN_TAG)
            self.pos += skip
            return text[skip:]
        return text

    def feed(self, text: str) -> list[ThinkDelta | AnswerDelta]:
        if not self.in_think:
            return self._emit(AnswerDelta, text)
        if self._opening:
            opened = self._open(text)
            if opened is None:
                return []
            text = opened
        else:
            text = self._held + text
            self._held = ""
        close = text.find(THINK_CLOSE)
        if close >= 0:
            out = self._emit(ThinkDelta, text[:close])
            self.in_think = False
            self.pos += len(THINK_CLOSE)
            return out + self._emit(AnswerDelta, text[close + len(THINK_CLOSE) :])
        held = _partial_suffix(text, THINK_CLOSE)
        if held:
            self._held = text[-held:]
            text = text[:-held]
        return self._emit(ThinkDelta, text)

    def flush(self) -> list[ThinkDelta | AnswerDelta]:
        """Release held-back text: the stream ended, or the engine is about to inject (text the
        engine writes never opens the thought)."""
        self._opening = False
        held, self._held = self._held, ""
        return self._emit(ThinkDelta, held)
