"""`lrmscope chat`: the thought streams apart from the answer; the decoding mode switches live.

The engine runs in a worker thread. Its events go to an inbox, and one message tells the app
there is something to take: when the app falls behind, events merge into one batch instead of
queueing thousands of messages ahead of the user's key presses. The widgets keep Rich `Text`
(model text is never parsed as markup) in append-only views, and the screen is refreshed from
them at most REFRESH_HZ times a second: one render per frame, not one per token.

`lrmscope compare` (lrmscope/tui/compare.py) is built from the same parts: a TurnView per column,
the StreamingApp plumbing that streams and saves a generation into it, and the Follower.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message as TextualMessage
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Collapsible, Footer, Input, Static

from lrmscope.text import visible
from lrmscope.engine.backend import Backend, Message
from lrmscope.engine.events import AnswerDelta, Event, Finished, Injected, ThinkDelta
from lrmscope.engine.flags import Flag, SegmentFlagger
from lrmscope.engine.generation import Generation
from lrmscope.engine.judges.base import Judge
from lrmscope.engine.prompt import with_think_opener
from lrmscope.engine.settings import Mode, ModeSettings, SamplerSettings
from lrmscope.errors import LrmscopeError
from lrmscope.core.judge import Shown, judge_trace
from lrmscope.core.generate import FlagSaver, record, start_sample
from lrmscope.store import Store
from lrmscope.tui.stream import StreamText

REFRESH_HZ = 20
SLICE_S = 0.005  # the longest the app spends taking in engine events before other messages
INJECTED_STYLE = "bold black on yellow"
FLAG_STYLE = "white on dark_red"
LABEL_STYLES = {"safe": "green", "unsafe": "bold red", "unparsed": "yellow"}
MODE_KEYS = {"f2": Mode.DEFAULT, "f3": Mode.ZEROTHINK, "f4": Mode.LESSTHINK, "f5": Mode.MORETHINK}
MODE_LABELS = {
    Mode.DEFAULT: "default",
    Mode.ZEROTHINK: "ZeroThink",
    Mode.LESSTHINK: "LessThink",
    Mode.MORETHINK: "MoreThink",
}


@dataclass(frozen=True)
class ChatSession:
    """What a chat runs with: the backend, the store and run it saves to, and its settings."""

    backend: Backend
    store: Store
    run_id: int
    sampler: SamplerSettings
    mode: ModeSettings
    model_name: str = ""
    device: str = "cpu"
    final_judges: tuple[Judge, ...] = ()  # verdicts on thought / answer / full at turn end
    live_judges: tuple[Judge, ...] = ()  # segment flags while the turn streams
    notices: tuple[str, ...] = ()  # e.g. judges that failed to load
    title: str | None = None
    restored: tuple[dict, ...] = ()  # earlier turns of a resumed chat (Store.chat_turns)


class EventsReady(TextualMessage):
    """Engine events are waiting in the app's inbox (at most one of these is queued)."""


class FlagFound(TextualMessage):
    def __init__(self, turn: TurnView, flag: Flag) -> None:
        super().__init__()
        self.turn = turn
        self.flag = flag


class VerdictsReady(TextualMessage):
    def __init__(self, turn: TurnView, verdicts: list) -> None:
        super().__init__()
        self.turn = turn
        self.verdicts = verdicts


class EngineError(TextualMessage):
    def __init__(self, turn: TurnView, error: str, fatal: bool = True) -> None:
        super().__init__()
        self.turn = turn
        self.error = error
        self.fatal = fatal


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
class TurnJob:
    """A generation to stream into a TurnView and save as a sample of a run."""

    store_path: Path
    run_id: int
    generation: Generation
    text: str  # the user's prompt, as saved and as the judges see it
    dataset: str
    think_opener_added: bool
    k: int = 0
    parent_id: int | None = None
    live_judges: tuple[Judge, ...] = ()  # segment flags while it streams
    final_judges: tuple[Judge, ...] = ()  # verdicts on thought / answer / full at the end


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
        """Run in a worker thread: save the generation as it streams (with a database
        connection of this thread's own), flag it live, judge it at the end; what happens is
        posted to the app (events, FlagFound, VerdictsReady, EngineError)."""
        store = None
        try:
            store = Store(job.store_path)
            ref = start_sample(
                store, job.run_id, job.generation, user_text=job.text, dataset=job.dataset,
                think_opener_added=job.think_opener_added, k=job.k, parent_id=job.parent_id,
            )
            turn.sample_id = ref.sample_id
            flagger = saver = None
            if job.live_judges:
                saver = FlagSaver(store, ref.sample_id)

                def on_flag(flag: Flag) -> None:
                    saver(flag)
                    self.post_message(FlagFound(turn, flag))

                flagger = SegmentFlagger(job.live_judges, job.text, on_flag=on_flag)
            finished = None
            for event in record(store, ref, job.generation):
                if flagger is not None:
                    flagger.feed(event)
                if isinstance(event, Finished):
                    finished = event
                else:
                    self._deliver(turn, event)
            if flagger is not None:
                flagger.close()
                saver.close()
                for error in flagger.errors:
                    self.post_message(EngineError(turn, f"live judge: {error}", fatal=False))
            self._deliver(turn, finished)
            if job.final_judges and finished is not None:
                verdicts = judge_trace(
                    store, ref.sample_id, job.text, finished.trace, job.final_judges
                )
                self.post_message(VerdictsReady(turn, verdicts))
        except Exception as exc:  # noqa: BLE001 - any engine error is shown, the app goes on
            self.post_message(EngineError(turn, f"{type(exc).__name__}: {exc}"))
        finally:
            if store is not None:
                store.close()

    def _deliver(self, turn: TurnView, event: Event) -> None:
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


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "close")]
    DEFAULT_CSS = "HelpScreen { align: center middle; } HelpScreen > Static { width: 64; " \
        "border: round $accent; padding: 1 2; background: $surface; }"

    def compose(self) -> ComposeResult:
        lines = [
            "enter      send the prompt",
            "f2 .. f5   mode: default, ZeroThink, LessThink, MoreThink",
            "           (while the model thinks: applies at once)",
            "f6         re-run the last prompt under the current mode",
            "f7         settings: sampling and thinking budgets for the next turns",
            "escape     stop the generation (the turn is saved as stopped)",
            "ctrl+n     jump to the next unsafe flag",
            "f1         this help",
            "ctrl+q     quit",
        ]
        yield Static(Text("\n".join(lines)))


class SettingsScreen(ModalScreen[tuple[SamplerSettings, ModeSettings] | None]):
    """Sampling and thinking budgets for the next turns; each turn stores what it ran with."""

    BINDINGS = [Binding("escape", "cancel", "cancel"), Binding("ctrl+s", "save", "save")]
    DEFAULT_CSS = """
    SettingsScreen { align: center middle; }
    SettingsScreen > Vertical { width: 60; height: auto; border: round $accent;
                                 padding: 1 2; background: $surface; }
    SettingsScreen Input { margin: 0 0 0 0; }
    SettingsScreen #error { color: $error; }
    """
    FIELDS = (
        ("temperature", "temperature"),
        ("top_p", "top-p"),
        ("top_k", "top-k (0 = off)"),
        ("max_tokens", "max tokens"),
        ("seed", "seed"),
        ("think_budget", "MoreThink budget (tokens)"),
        ("enforce_num", "MoreThink rounds"),
        ("max_think", "max-think cap (empty = none)"),
    )

    def __init__(self, sampler: SamplerSettings, mode: ModeSettings) -> None:
        super().__init__()
        self.sampler = sampler
        self.mode = mode

    def _value(self, name: str) -> str:
        source = self.sampler if hasattr(self.sampler, name) else self.mode
        value = getattr(source, name)
        return "" if value is None else str(value)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("settings (ctrl+s: save, escape: cancel)", style="bold"))
            for name, label in self.FIELDS:
                yield Static(Text(label))
                yield Input(self._value(name), id=name)
            yield Static(id="error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_save()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        values = {name: self.query_one(f"#{name}", Input).value.strip() for name, _ in self.FIELDS}
        try:
            number = {k: float(v) for k, v in values.items() if k in ("temperature", "top_p") and v}
            whole = {k: int(v) for k, v in values.items()
                     if k not in ("temperature", "top_p") and v}
            sampler = replace(
                self.sampler,
                **number,
                **{k: whole[k] for k in ("top_k", "max_tokens", "seed") if k in whole},
            )
            mode = replace(
                self.mode,
                think_budget=whole.get("think_budget", self.mode.think_budget),
                enforce_num=whole.get("enforce_num", self.mode.enforce_num),
                max_think=whole.get("max_think"),
            )
        except ValueError as exc:
            self.query_one("#error", Static).update(Text(f"not a number: {exc}"))
            return
        except LrmscopeError as exc:
            self.query_one("#error", Static).update(Text(str(exc)))
            return
        self.dismiss((sampler, mode))


class ChatApp(StreamingApp):
    TITLE = "lrmscope chat"
    CSS = """
    #main { height: 1fr; }
    #conversation { width: 1fr; }
    #flags { width: 34; border-left: solid $panel; padding: 0 1; }
    #modebar { height: 1; background: $panel; }
    #statusbar { height: 1; background: $panel; color: $text-muted; }
    """
    BINDINGS = [
        Binding("f1", "help", "help"),
        # Priority: the app takes a mode key at once, before the focused input sees it (fewer
        # hops through the widgets' queues while a fast stream keeps the app busy).
        Binding("f2", "mode('default')", "default", priority=True),
        Binding("f3", "mode('zerothink')", "ZeroThink", priority=True),
        Binding("f4", "mode('lessthink')", "LessThink", priority=True),
        Binding("f5", "mode('morethink')", "MoreThink", priority=True),
        Binding("f6", "rerun", "re-run"),
        Binding("f7", "settings", "settings"),
        Binding("ctrl+n", "next_flag", "next flag"),
        Binding("escape", "stop", "stop"),
        Binding("ctrl+q", "quit", "quit"),
    ]

    def __init__(self, session: ChatSession) -> None:
        super().__init__()
        self.session = session
        self.mode = session.mode
        self.sampler = session.sampler
        self.history: list[tuple[str, str]] = []  # (prompt, answer) of finished turns
        self.generation: Generation | None = None
        self.turns: list[TurnView] = []
        self.last_sample_id: int | None = None
        self.last_prompt: str | None = None
        self.unsafe_flags: list[tuple[TurnView, Flag]] = []
        self.flag_cursor = -1
        self.follower = Follower()  # auto-follow the stream (see _refresh_turns)

    def compose(self) -> ComposeResult:
        yield Static(id="modebar")
        with Horizontal(id="main"):
            yield VerticalScroll(id="conversation")
            yield Static(Text("flags", style="bold"), id="flags")
        yield Input(placeholder="Type a prompt and press enter (f1: help)", id="prompt")
        yield Static(id="statusbar")
        yield Footer()

    def on_mount(self) -> None:
        if self.session.title:
            self.title = f"lrmscope chat · {visible(self.session.title)}"
        self._restore()
        self._show_mode()
        self._show_status("; ".join(self.session.notices) or "ready")
        self.set_interval(1 / REFRESH_HZ, self._refresh_turns)
        self.query_one(Input).focus()

    def _restore(self) -> None:
        """Show a resumed chat's turns; finished ones go back into the context."""
        conversation = self.query_one("#conversation", VerticalScroll)
        for row in self.session.restored:
            turn = TurnView(row["prompt"])
            turn.thought.append(row["thought"])
            turn.answer.append(row["answer"])
            turn.status = Text(f"earlier turn · {row['status']}")
            turn.dirty = True
            self.turns.append(turn)
            conversation.mount(turn)
            if row["status"] == "done":
                self.history.append((row["prompt"], row["answer"]))
            self.last_sample_id = row["sample_id"]
            self.last_prompt = row["prompt"]

    # -- display -------------------------------------------------------------------------------

    def _show_mode(self) -> None:
        bar = Text("mode: ")
        for key, mode in MODE_KEYS.items():
            label = f" {key} {MODE_LABELS[mode]} "
            bar.append(label, style="reverse bold" if mode is self.mode.mode else "")
        self.query_one("#modebar", Static).update(bar)

    def _show_status(self, state: str) -> None:
        s = self.session
        self.query_one("#statusbar", Static).update(
            Text(f"{visible(s.model_name)} · {s.device} · {MODE_LABELS[self.mode.mode]} · {state}")
        )

    def _refresh_turns(self) -> None:
        """Follow the stream only while the view is at the bottom: scrolling up stops
        auto-follow, scrolling back down resumes it."""
        if not self.screen_stack:  # the app is closing; its timers still tick
            return
        found = self.screen.query("#conversation")
        if not found:  # a modal screen is on top
            return
        conversation = found.first(VerticalScroll)
        self.follower.check(conversation)
        for turn in self.turns:
            if turn.dirty or turn is self.turns[-1]:
                turn.render_now()
        self.follower.follow(conversation)

    # -- actions -------------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value
        if not text.strip() or self.generation is not None:
            return
        event.input.value = ""
        self._start_turn(text)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The mode keys are priority bindings: not while a settings or help screen is open."""
        if action == "mode" and len(self.screen_stack) > 1:
            return False
        return True

    def action_mode(self, name: str) -> None:
        self.mode = self.mode.with_mode(name)
        if self.generation is not None:
            self.generation.switch_mode(self.mode)
        self._show_mode()
        self._show_status("generating" if self.generation else "ready")

    def action_stop(self) -> None:
        if self.generation is not None:
            self.generation.stop()

    def action_rerun(self) -> None:
        if self.generation is None and self.last_prompt is not None:
            self._start_turn(self.last_prompt, rerun=True)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_settings(self) -> None:
        def apply(result: tuple[SamplerSettings, ModeSettings] | None) -> None:
            if result is not None:
                self.sampler, mode = result
                self.mode = mode.with_mode(self.mode.mode)
                self._show_status("settings saved for the next turns")

        self.push_screen(SettingsScreen(self.sampler, self.mode), apply)

    def action_next_flag(self) -> None:
        if not self.unsafe_flags:
            self._show_status("no unsafe flags")
            return
        self.flag_cursor = (self.flag_cursor + 1) % len(self.unsafe_flags)
        turn, flag = self.unsafe_flags[self.flag_cursor]
        self.query_one("#conversation", VerticalScroll).scroll_to_widget(turn, animate=False)
        self._show_flags()
        self._show_status(f"flag {self.flag_cursor + 1}/{len(self.unsafe_flags)}: {flag.judge}")

    def _show_flags(self) -> None:
        listing = Text("flags", style="bold")
        for index, (_turn, flag) in enumerate(self.unsafe_flags):
            listing.append("\n")
            marker = "▶ " if index == self.flag_cursor else "  "
            categories = f" {','.join(flag.categories)}" if flag.categories else ""
            listing.append(f"{marker}{flag.judge}{categories} · {flag.part}\n", style="bold red")
            listing.append("  " + visible(flag.text.strip())[:60], style="dim")
        self.query_one("#flags", Static).update(listing)

    # -- turns ---------------------------------------------------------------------------------

    def _messages(self, text: str) -> list[Message]:
        """Earlier turns go back without their thoughts (docs/study.md "Trace anatomy")."""
        messages: list[Message] = []
        for prompt, answer in self.history:
            messages += [Message("user", prompt), Message("assistant", answer)]
        return [*messages, Message("user", text)]

    def _start_turn(self, text: str, rerun: bool = False) -> None:
        if rerun and self.history:
            self.history.pop()  # a re-run replaces the last turn in the context
        turn = TurnView(text)
        self.turns.append(turn)
        self.query_one("#conversation", VerticalScroll).mount(turn)
        self.last_prompt = text
        try:
            prompt, added = with_think_opener(
                self.session.backend.render(self._messages(text)), self.mode
            )
            self.session.backend.check_prompt(prompt)
        except LrmscopeError as exc:
            turn.fail(str(exc))
            turn.render_now()
            return
        self.generation = Generation(
            self.session.backend, prompt, sampler=self.sampler, mode=self.mode
        )
        self._show_status("generating")
        session = self.session
        self._generate(turn, TurnJob(
            session.store.path, session.run_id, self.generation, text, "chat", added,
            parent_id=self.last_sample_id, live_judges=session.live_judges,
            final_judges=session.final_judges,
        ))

    @work(thread=True, exclusive=True)
    def _generate(self, turn: TurnView, job: TurnJob) -> None:
        self.stream_turn(turn, job)

    def handle_event(self, turn: TurnView, event: Event) -> None:
        super().handle_event(turn, event)
        if isinstance(event, Finished):
            self.last_sample_id = turn.sample_id
            self.history.append((turn.prompt, event.trace.answer))
            self._end_turn(turn, event.stats.finish_reason)

    def on_flag_found(self, message: FlagFound) -> None:
        message.turn.add_flag(message.flag)
        if message.flag.label == "unsafe":
            self.unsafe_flags.append((message.turn, message.flag))
            self._show_flags()

    def on_verdicts_ready(self, message: VerdictsReady) -> None:
        message.turn.show_verdicts(message.verdicts)
        message.turn.render_now()

    def on_engine_error(self, message: EngineError) -> None:
        if not message.fatal:
            self._show_status(visible(message.error))
            return
        message.turn.fail(message.error)
        self._end_turn(message.turn, "error")

    def _end_turn(self, turn: TurnView, state: str) -> None:
        if self.generation is not None:
            self.mode = self.generation.next_mode
        self.generation = None
        turn.render_now()
        self._show_mode()
        self._show_status(state)
