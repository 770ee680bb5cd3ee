"""Driving a Textual app in a test through its `Pilot`."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import App
from textual.pilot import Pilot


async def send(pilot: Pilot, app: App, text: str) -> None:
    """Type `text` into the focused input and press enter."""
    for ch in text:
        await pilot.press(ch if ch != " " else "space")
    await pilot.press("enter")


async def until(pilot: Pilot, condition: Callable[[], object], timeout: float = 30) -> None:
    """Let the app run until `condition()` holds; fail after `timeout` seconds."""
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not reached")
