"""`lrmscope review`: an offline browser of every saved run, with human labels and metrics.

The screens are in screens.py (runs, samples, a prompt), sample.py and metrics.py, the
dialogs in modals.py. The app polls the database's change marker:
when another process (a running eval) commits, the screen on top loads again and keeps its place;
the others load when they come back on top. A load costs time in proportion to the rows shown (a
table scrolled far down holds many pages), so after one the app waits nine times as long before
it looks again: following a live eval never takes more than a tenth of the app's time.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import App
from textual.binding import Binding

from lrmscope.core.review import ReviewDB, SampleFilter
from lrmscope.errors import LrmscopeError
from lrmscope.tui.review.base import REVIEW_CSS, ReviewScreen
from lrmscope.tui.review.modals import ExportScreen, HelpScreen
from lrmscope.tui.review.screens import RunsScreen, describe
from lrmscope.tui.review.text import plain

POLL_S = 1.0


class ReviewApp(App[None]):
    TITLE = "lrmscope review"
    ENABLE_COMMAND_PALETTE = False
    CSS = REVIEW_CSS
    BINDINGS = [
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, db: ReviewDB, *, note: str | None = None, poll_s: float = POLL_S) -> None:
        super().__init__()
        self.db = db
        self.note = note  # e.g. that this is a temporary copy of the demo
        self.poll_s = poll_s
        self.changes = 0  # counts changes to the data; a screen loads again when it moves
        self.marker = db.change_marker()
        self.quiet_until = 0.0  # no polling before this time.monotonic()

    def banner(self) -> Text:
        text = Text("lrmscope review", style="bold")
        text.append(" · ")
        text.append_text(plain(self.note or self.db.path))
        return text

    def get_default_screen(self) -> RunsScreen:
        return RunsScreen()

    def on_mount(self) -> None:
        self.set_interval(self.poll_s, self.poll)

    def poll(self) -> None:
        start = time.monotonic()
        if start < self.quiet_until:
            return
        marker = self.db.change_marker()
        if marker != self.marker:
            self.marker = marker
            self.data_changed()
            self.quiet_until = time.monotonic() + 9 * (time.monotonic() - start)

    def data_changed(self) -> None:
        """The data changed (here or in another process): the screen on top loads again now."""
        self.changes += 1
        if self.screen_stack and isinstance(self.screen, ReviewScreen):  # none while closing
            self.screen.refresh_data()

    def write(self, change, *args) -> bool:
        """A change to the database (`change(*args)`); one it refuses (a run still running, a
        sample deleted meanwhile) is a notification."""
        try:
            change(*args)
        except LrmscopeError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return False
        self.data_changed()
        return True

    def label(self, sample_id: int, part: str, value: str) -> None:
        """A human label ('safe', 'unsafe', or 'clear' to remove it) on a part of a sample."""
        if value == "clear":
            done = self.write(self.db.clear_label, sample_id, part)
        else:
            done = self.write(self.db.set_label, sample_id, part, value)
        if done:
            shown = "cleared" if value == "clear" else value
            self.notify(f"sample {sample_id} {part}: {shown} (human)", markup=False, timeout=2)

    def export(self, f: SampleFilter) -> None:
        what = Text(f"run{'s' if len(f.runs) > 1 else ''} {', '.join(map(str, f.runs))}")
        if describe(f):
            what.append(" · ")
            what.append_text(plain(describe(f)))

        def write(chosen) -> None:
            if chosen is None:
                return
            fmt, path = chosen
            try:
                count = self.db.export(f, path, fmt)
            except (LrmscopeError, OSError) as exc:
                self.notify(f"export failed: {exc}", severity="error", markup=False)
                return
            self.notify(f"exported {count:,} samples to {path}", markup=False)

        self.push_screen(ExportScreen(what), write)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())
