"""An append-only text view for a streaming thought or answer.

Text accumulates in a tail; when the tail grows past BLOCK_CHARS it is cut (at a line break when
there is one) and the head becomes a frozen block. Frozen blocks are wrapped into lines once (again
only when the width changes or a flag restyles a block) and drawn through Textual's Line API by one
widget whose height is its line count, so neither a frame nor a layout pass renders them again: a
frame renders only the tail, and the cost per token stays flat however long the trace grows (no
full re-render per token, no quadratic growth). One Static per block made every layout pass
measure every block, which grew with the trace.

Positions: every append records where its raw-trace offset lands in the view's text, so a flag's
raw range [start, end) can be highlighted in place.
"""

from __future__ import annotations

from bisect import bisect_right

from rich.text import Text
from textual.containers import Vertical
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from lrmscope.text import visible

BLOCK_CHARS = 2000


class FrozenText(Widget):
    """The frozen blocks of a stream, wrapped once per width and drawn line by line."""

    DEFAULT_CSS = "FrozenText { height: auto; }"

    def __init__(self) -> None:
        super().__init__()
        self._texts: list[Text] = []
        self._wrapped: list[list[Strip]] = []
        self._lines: list[Strip] = []
        self._width = 0

    def _wrap(self, text: Text) -> list[Strip]:
        if text.plain.endswith("\n"):  # the next block starts on the next line by itself
            text = text[: len(text) - 1]
        console = self.app.console
        options = console.options.update_width(self._width)
        return [Strip(line) for line in console.render_lines(text, options, pad=False)]

    def _rewrap(self, width: int) -> None:
        self._width = width
        self._wrapped = [self._wrap(text) for text in self._texts]
        self._lines = [line for lines in self._wrapped for line in lines]

    def add(self, text: Text) -> None:
        self._texts.append(text)
        if self._width:
            lines = self._wrap(text)
            self._wrapped.append(lines)
            self._lines.extend(lines)
        self.refresh(layout=True)

    def restyled(self, index: int) -> None:
        """Block `index` was restyled in place (a flag): wrap it again."""
        if self._width:
            self._wrapped[index] = self._wrap(self._texts[index])
            self._lines = [line for lines in self._wrapped for line in lines]
        self.refresh(layout=True)

    def get_content_height(self, container, viewport, width: int) -> int:
        if width != self._width and width > 0:
            self._rewrap(width)
        return len(self._lines)

    def render_line(self, y: int) -> Strip:
        if y >= len(self._lines):
            return Strip.blank(self.size.width, self.rich_style)
        return self._lines[y].apply_style(self.rich_style)


class StreamText(Vertical):
    DEFAULT_CSS = "StreamText { height: auto; } StreamText > Static { height: auto; }"

    def __init__(self, *, classes: str = "") -> None:
        super().__init__(classes=classes)
        self._blocks: list[tuple[int, Text]] = []  # (global start, text) of each frozen block
        self._frozen = FrozenText()
        self._frozen_chars = 0
        self._tail_text = Text()
        self._tail = Static(self._tail_text)
        self._raw_starts: list[int] = []  # raw offset of each appended piece
        self._positions: list[tuple[int, int]] = []  # (view offset, view length) of each piece
        self._dirty = False

    def compose(self):
        yield self._frozen
        yield self._tail

    @property
    def text(self) -> Text:
        """Everything shown, as one Text (for tests and snapshots; the view never builds it)."""
        return Text.assemble(*(text for _, text in self._blocks), self._tail_text)

    @property
    def plain(self) -> str:
        return "".join(text.plain for _, text in self._blocks) + self._tail_text.plain

    def append(self, text: str, raw_start: int | None = None, style: str = "") -> None:
        shown = visible(text)
        if raw_start is not None and shown:
            self._raw_starts.append(raw_start)
            self._positions.append((self._frozen_chars + len(self._tail_text), len(shown)))
        self._tail_text.append(shown, style=style)
        self._dirty = True

    def render_now(self) -> None:
        """Freeze full blocks, then render the tail; call once per frame."""
        if not self._dirty or not self.is_mounted:
            return
        self._dirty = False
        while len(self._tail_text) > BLOCK_CHARS:
            plain = self._tail_text.plain
            cut = plain.rfind("\n", 0, BLOCK_CHARS) + 1 or BLOCK_CHARS
            head, rest = self._tail_text.divide([cut])
            self._blocks.append((self._frozen_chars, head))
            self._frozen_chars += len(head)
            self._frozen.add(head)
            self._tail_text = rest
        self._tail.update(self._tail_text)

    def _view_range(self, raw_start: int, raw_end: int) -> tuple[int, int] | None:
        index = bisect_right(self._raw_starts, raw_start) - 1
        if index < 0:
            return None
        view_start, length = self._positions[index]
        start = view_start + min(raw_start - self._raw_starts[index], length)
        end_index = bisect_right(self._raw_starts, raw_end - 1) - 1
        end_view, end_length = self._positions[end_index]
        end = end_view + min(raw_end - self._raw_starts[end_index], end_length)
        return (start, end) if end > start else None

    def highlight(self, raw_start: int, raw_end: int, style: str) -> bool:
        """Style the text of a raw range (a flagged segment); False if it is not shown here."""
        span = self._view_range(raw_start, raw_end)
        if span is None:
            return False
        start, end = span
        for index, (block_start, text) in enumerate(self._blocks):
            if block_start < end and start < block_start + len(text):
                text.stylize(style, max(0, start - block_start), end - block_start)
                self._frozen.restyled(index)
        tail_start = self._frozen_chars
        if end > tail_start:
            self._tail_text.stylize(style, max(0, start - tail_start), end - tail_start)
            self._dirty = True
        return True
