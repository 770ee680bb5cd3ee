"""One exchange on screen: the chat stacks them, compare shows one per column."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Collapsible, Static

from lrmscope.core.judge import Shown
from lrmscope.engine.events import AnswerDelta, Event, Finished, Injected, ThinkDelta
from lrmscope.engine.flags import Flag
from lrmscope.text import visible
from lrmscope.tui.styles import FLAG_STYLE, INJECTED_STYLE, LABEL_STYLES
from lrmscope.tui.widgets.stream_text import StreamText


def status_line(state: str, think_tokens: int, answer_tokens: int, elapsed_s: float) -> Text:
    """A turn's state and counts: while it streams, and when it ends (its finish reason)."""
    rate = (think_tokens + answer_tokens) / elapsed_s if elapsed_s > 0 else 0.0
    return Text(
        f"{state} · think {think_tokens} tok · answer {answer_tokens} tok · {rate:.1f} tok/s · "
        f"{elapsed_s:.1f} s"
    )


class TurnView(Static):
    """One exchange: a header (the prompt), a collapsible thought, the answer, flags and a status
    line. The chat stacks them; compare shows one per column, under a header of its own."""

    DEFAULT_CSS = """
    TurnView { height: auto; margin: 0 0 1 0; }
    TurnView .prompt { color: $accent; text-style: bold; }
    TurnView .thought { color: $text-muted; }
    TurnView .status { color: $text-muted; }
    """

    def __init__(self, prompt: str, header: Text | None = None) -> None:
        super().__init__()
        self.prompt = prompt
        self.header = Text("> " + visible(prompt)) if header is None else header
        self.thought = StreamText(classes="thought")
        self.answer = StreamText(classes="answer")
        self.status = Text()
        self.verdicts = Text()
        self.flags: list[Flag] = []
        self.finished: Finished | None = None
        self.judged: tuple[Shown, ...] | None = None  # the final verdicts, once they are in
        self.error: str | None = None
        self.sample_id: int | None = None  # set by the worker that saves the turn
        self.dirty = False

    def compose(self) -> ComposeResult:
        yield Static(self.header, classes="prompt")
        with Collapsible(title="thought", collapsed=False):
            yield self.thought
        yield self.answer
        yield Static(self.status, classes="status", id="status")

    def add(self, event: Event) -> None:
        if isinstance(event, ThinkDelta):
            self.thought.append(event.text, event.start)
        elif isinstance(event, AnswerDelta):
            self.answer.append(event.text, event.start)
        elif isinstance(event, Injected):
            target = self.thought if event.part == "think" else self.answer
            target.append(event.span.text, event.span.start, style=INJECTED_STYLE)
        elif isinstance(event, Finished):
            self.finished = event
            stats = event.stats
            self.status = status_line(
                stats.finish_reason, stats.think_tokens, stats.answer_tokens, stats.elapsed_s
            )
        self.dirty = True

    def show_progress(self, think_tokens: int, answer_tokens: int, elapsed_s: float) -> None:
        """The counts while the turn streams (compare's column footers)."""
        self.status = status_line("streaming", think_tokens, answer_tokens, elapsed_s)
        self.dirty = True

    def add_flag(self, flag: Flag) -> None:
        self.flags.append(flag)
        if flag.label == "unsafe":
            view = self.thought if flag.part == "think" else self.answer
            view.highlight(flag.start, flag.end, FLAG_STYLE)
            self.dirty = True

    def show_verdicts(self, verdicts: list[Shown]) -> None:
        """Final verdicts: (judge, part, label, categories) for thought, answer and full."""
        self.judged = tuple(verdicts)
        line = Text()
        for name, part, label, categories in verdicts:
            if line:
                line.append(" · ", style="dim")
            line.append(f"{name} {part}: ", style="dim")
            shown = label + (f" {','.join(categories)}" if categories else "")
            line.append(shown, style=LABEL_STYLES[label])
        self.verdicts = line
        self.dirty = True

    def fail(self, message: str) -> None:
        self.error = message
        self.status = Text(f"error: {visible(message)}", style="bold red")
        self.dirty = True

    def render_now(self) -> None:
        """Push what arrived since the last frame to the screen (the app's refresh timer)."""
        self.thought.render_now()
        self.answer.render_now()
        if not self.dirty or not self.is_mounted:
            return
        self.dirty = False
        status = self.status.copy()
        if self.verdicts:
            status.append("\n")
            status.append_text(self.verdicts)
        self.query_one("#status", Static).update(status)
