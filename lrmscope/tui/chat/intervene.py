"""The chat's free-text intervention: a one-line input, hidden until its key opens it, whose text
the app injects into the running thought (Generation.inject)."""

from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input


class InterveneInput(Input):
    """Enter hands the text to the app (Input.Submitted); escape closes it unsent."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    class Cancelled(Message):
        """The input was closed with nothing injected."""

    def __init__(self) -> None:
        super().__init__(
            placeholder="text to inject into the thought (enter: inject, escape: cancel)",
            id="intervene",
        )
        self.display = False

    def open(self) -> None:
        self.value = ""
        self.display = True
        self.focus()

    def close(self) -> None:
        self.value = ""
        self.display = False

    def action_cancel(self) -> None:
        self.post_message(self.Cancelled())
