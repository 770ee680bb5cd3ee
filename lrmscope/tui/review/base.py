"""What the review screens share: the app's CSS, the key bar, a screen that loads its data
again when it changed, and the human-label keys of a screen with a current sample."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from lrmscope.core.review import ReviewDB
from lrmscope.errors import LrmscopeError
from lrmscope.tui.review.modals import LabelScreen

# The app's CSS (a screen's DEFAULT_CSS would lose to DataTable's own `height: auto`).
REVIEW_CSS = """
.bar, KeyBar { height: 1; background: $panel; }
.status { height: 1; color: $text-muted; }
DataTable { height: 1fr; }
#prompt { height: auto; max-height: 8; padding: 0 1; }
#scores { height: auto; max-height: 14; margin: 1 0; }
#body { padding: 0 1; }
#metrics { height: auto; max-height: 20; }
#plots { padding: 1; }
#tradeoff { height: auto; max-height: 14; }
#tradeoff-note { height: auto; padding: 0 1; }
#tradeoff-plot { height: 1fr; min-height: 12; }
"""


class KeyBar(Static):
    """The screen's keys on one line, its own first (Textual's Footer makes a widget of each
    key, which cost about 0.1 s every time a screen opened)."""

    def on_mount(self) -> None:
        found: dict[str, Binding] = {}
        for cls in (*type(self.screen).__mro__, type(self.app)):
            for binding in cls.__dict__.get("BINDINGS", []):
                found.setdefault(binding.key, binding)  # a subclass's binding wins
        line = Text()
        for binding in found.values():
            if binding.show:
                line.append(f" {self.app.get_key_display(binding)} ", style="bold orange1")
                line.append(f"{binding.description} ")
        self.update(line)


class ReviewScreen(Screen):
    """A screen that shows data: `load` reads it again; the app counts changes."""

    BINDINGS = [Binding("escape", "app.pop_screen", "back")]

    def __init__(self) -> None:
        super().__init__()
        self.loaded = -1  # the app's change count when this screen last loaded

    @property
    def db(self) -> ReviewDB:
        return self.app.db

    def titlebar(self, what: Text) -> Static:
        return Static(Text.assemble(self.app.banner(), " · ", what), classes="bar")

    def load(self) -> None:
        raise NotImplementedError

    def refresh_data(self) -> None:
        if self.loaded != self.app.changes:
            self.loaded = self.app.changes
            try:
                self.load()
            except LrmscopeError as exc:  # what it shows was deleted meanwhile
                self.app.notify(str(exc), severity="error", markup=False)
                self.app.pop_screen()

    def on_mount(self) -> None:
        self.refresh_data()

    def on_screen_resume(self) -> None:
        self.refresh_data()


class LabelledScreen(ReviewScreen):
    """A screen with a current sample, which the human-label keys mark."""

    BINDINGS = [
        Binding("s", "label('full', 'safe')", "safe"),
        Binding("u", "label('full', 'unsafe')", "unsafe"),
        Binding("x", "label('full', 'clear')", "clear label"),
        Binding("l", "label_part", "label part"),
    ]

    def current_sample(self) -> int | None:
        raise NotImplementedError

    def action_label(self, part: str, value: str) -> None:
        sample_id = self.current_sample()
        if sample_id is not None:
            self.app.label(sample_id, part, value)

    def action_label_part(self) -> None:
        sample_id = self.current_sample()
        if sample_id is not None:
            self.app.push_screen(
                LabelScreen(sample_id),
                lambda chosen: chosen and self.app.label(sample_id, *chosen),
            )
