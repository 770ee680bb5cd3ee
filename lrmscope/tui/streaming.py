"""What the chat and compare share to stream a generation onto the screen.

A worker thread runs the turn (lrmscope/core/generate.py `run_turn`: saved, flagged, judged). Its
events go to an inbox, and one message tells the app there is something to take: when the app
falls behind, events merge into one batch instead of queueing thousands of messages ahead of the
user's key presses. The widgets keep Rich `Text` (model text is never parsed as markup) in
append-only views, and the screen is refreshed from them at most REFRESH_HZ times a second: one
render per frame, not one per token.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

from textual.app import App
from textual.message import Message
from textual.widget import Widget

from lrmscope.core.generate import TurnJob, run_turn
from lrmscope.core.judge import Shown
from lrmscope.engine.events import Event
from lrmscope.engine.flags import Flag
from lrmscope.tui.widgets.turn import TurnView

REFRESH_HZ = 20
SLICE_S = 0.005  # the longest the app spends taking in engine events before other messages


class EventsReady(Message):
    """Engine events are waiting in the app's inbox (at most one of these is queued)."""


class FlagFound(Message):
    def __init__(self, turn: TurnView, flag: Flag) -> None:
        super().__init__()
        self.turn = turn
        self.flag = flag


class VerdictsReady(Message):
    def __init__(self, turn: TurnView, verdicts: list) -> None:
        super().__init__()
        self.turn = turn
        self.verdicts = verdicts


class EngineError(Message):
    def __init__(self, turn: TurnView, error: str, fatal: bool = True) -> None:
        super().__init__()
        self.turn = turn
        self.error = error
        self.fatal = fatal


class Follower:
    """Keeps a scrolling view at its end while a stream grows it: scrolling up stops following,
    scrolling back to the end resumes it."""

    def __init__(self) -> None:
        self.following = True
        self._followed_y = 0.0

    def check(self, view: Widget) -> None:
        """Before new text is drawn: has the user moved the view since the last frame?"""
        if view.scroll_y >= view.max_scroll_y - 1:
            self.following = True
        elif view.scroll_y < self._followed_y - 1:
            self.following = False  # the user scrolled up since the last frame

    def follow(self, view: Widget) -> None:
        """After new text is drawn: to the end, if following."""
        if self.following:
            view.scroll_end(animate=False, immediate=True)
            self._followed_y = view.scroll_y


@dataclass(frozen=True)
class TurnPoster:
    """A TurnObserver that posts what a turn reports to the app, for one TurnView."""

    app: StreamingApp
    turn: TurnView

    def on_sample(self, sample_id: int) -> None:
        self.turn.sample_id = sample_id

    def on_event(self, event: Event) -> None:
        self.app.deliver(self.turn, event)

    def on_flag(self, flag: Flag) -> None:
        self.app.post_message(FlagFound(self.turn, flag))

    def on_live_error(self, error: str) -> None:
        self.app.post_message(EngineError(self.turn, f"live judge: {error}", fatal=False))

    def on_verdicts(self, verdicts: list[Shown]) -> None:
        self.app.post_message(VerdictsReady(self.turn, verdicts))


class StreamingApp(App[None]):
    """The plumbing the chat and compare share: a worker thread streams a generation into a
    TurnView and saves it (`stream_turn`); its events reach the app through an inbox (see the
    module docstring) and go to `handle_event`."""

    def __init__(self) -> None:
        super().__init__()
        self._inbox: list[tuple[TurnView, Event]] = []
        self._inbox_lock = threading.Lock()
        self._notified = False

    def stream_turn(self, turn: TurnView, job: TurnJob) -> None:
        """Run in a worker thread: what the turn reports is posted to the app (events,
        FlagFound, VerdictsReady, EngineError)."""
        try:
            run_turn(job, TurnPoster(self, turn))
        except Exception as exc:  # noqa: BLE001 - any engine error is shown, the app goes on
            self.post_message(EngineError(turn, f"{type(exc).__name__}: {exc}"))

    def deliver(self, turn: TurnView, event: Event) -> None:
        """From the worker thread: put an event in the inbox, and say so once."""
        with self._inbox_lock:
            self._inbox.append((turn, event))
            if self._notified:
                return
            self._notified = True
        self.post_message(EventsReady())

    async def on_events_ready(self, message: EventsReady) -> None:
        """Take in what the engine sent, for at most SLICE_S; if more is waiting, let the event
        loop run (timers, the screen) and come back after whatever else is queued, so key
        presses and frames stay regular during a fast stream."""
        deadline = time.perf_counter() + SLICE_S
        with self._inbox_lock:
            batch, self._inbox = self._inbox, []
        taken = 0
        for turn, event in batch:
            self.handle_event(turn, event)
            taken += 1
            if taken % 64 == 0 and time.perf_counter() > deadline:
                break
        with self._inbox_lock:
            self._inbox[:0] = batch[taken:]
            if not self._inbox:
                self._notified = False
                return
        await asyncio.sleep(0)
        self.post_message(EventsReady())

    def handle_event(self, turn: TurnView, event: Event) -> None:
        turn.add(event)
