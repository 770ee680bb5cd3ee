"""What the commands print with Rich: a streaming trace (the `generate` command's output), status
lines and the progress bar of long commands.

Model text is untrusted: it is printed as plain `Text` (never parsed as markup) after control
characters, which could drive the terminal (ANSI/OSC escapes, title and hyperlink sequences), are
replaced by visible escapes (lrmscope.text.visible).
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from lrmscope.engine.events import AnswerDelta, Event, Finished, Injected, ThinkDelta
from lrmscope.text import INJECTED_STYLE, visible

THOUGHT_STYLE = "dim"


class TracePrinter:
    """Feed it events; it prints the thought dimmed, injected spans marked «like this», then the
    answer, under a header each."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._part: str | None = None

    def _enter(self, part: str) -> None:
        if part != self._part:
            if self._part is not None:
                self.console.print()
            style = "dim" if part == "thought" else "cyan"
            self.console.rule(Text(part), style=style, align="left")
            self._part = part

    def _write(self, text: str, style: str = "") -> None:
        self.console.print(Text(visible(text), style=style), end="", soft_wrap=True)

    def __call__(self, event: Event) -> None:
        if isinstance(event, ThinkDelta):
            self._enter("thought")
            self._write(event.text, THOUGHT_STYLE)
        elif isinstance(event, AnswerDelta):
            self._enter("answer")
            self._write(event.text)
        elif isinstance(event, Injected):
            self._enter("thought" if event.part == "think" else "answer")
            self._write(f"«{event.span.text}»", INJECTED_STYLE)
        elif isinstance(event, Finished):
            self.console.print()
            stats = event.stats
            self.console.print(
                Text(
                    f"{stats.finish_reason} · thought {event.trace.think_state} · "
                    f"think {stats.think_tokens} tok · answer {stats.answer_tokens} tok · "
                    f"{len(event.trace.injected)} injected · {stats.tokens_per_s:.1f} tok/s · "
                    f"{stats.elapsed_s:.1f} s",
                    style="dim",
                ),
                soft_wrap=True,
            )


def say(console: Console, message: str) -> None:
    """A status line: never parsed as markup (it may hold paths), never wrapped."""
    console.print(message, markup=False, highlight=False, soft_wrap=True)


def progress_columns() -> tuple:
    """The progress bar of long commands: what, bar, done/total, rate, elapsed, ETA."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
