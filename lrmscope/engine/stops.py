"""Stop-string matching over streamed text, shared by the backends."""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    """Tells how much of a stream of text is safe to emit.

    Text that might be the start of a stop string is held back until it is resolved, so a stop
    string never reaches the consumer, whatever the tokenization. Only the held-back tail is
    kept, so the cost per push does not grow with the length of the generation.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.matched = ""  # after a match: the stop string that matched
        self.after = ""  # and the text that came after it in the same push

    def push(self, text: str) -> tuple[str, bool]:
        """Add text; return (text now safe to emit, whether a stop string matched)."""
        if not self.stops:
            return text, False
        pending = self.pending + text
        hits = [(i, s) for s, i in ((s, pending.find(s)) for s in self.stops) if i >= 0]
        if hits:
            at, stop = min(hits, key=lambda hit: (hit[0], -len(hit[1])))
            self.pending = ""
            self.matched, self.after = stop, pending[at + len(stop) :]
            return pending[:at], True
        held = self._partial_suffix(pending)
        self.pending = pending[len(pending) - held :] if held else ""
        return pending[: len(pending) - held], False

    def rest(self) -> str:
        """The held-back text, once the stream has ended without a match."""
        out, self.pending = self.pending, ""
        return out

    def _partial_suffix(self, text: str) -> int:
        longest = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if stop.startswith(text[-size:]):
                    longest = size
                    break
        return longest
