"""`lrmscope chat`: the thought streams apart from the answer; the decoding mode switches live.

Each turn is a TurnView (lrmscope/tui/widgets/turn.py) that StreamingApp's worker streams and saves
(lrmscope/tui/streaming.py); `lrmscope compare` is built from the same parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Input, Static

from lrmscope.core.generate import TurnJob
from lrmscope.engine.backend import Backend, Message
from lrmscope.engine.events import Event, Finished, Injected
from lrmscope.engine.flags import Flag
from lrmscope.engine.generation import NO_THOUGHT, Generation
from lrmscope.engine.guard import GuardJudges, guard_note
from lrmscope.engine.judges.base import Judge
from lrmscope.engine.prompt import with_think_opener
from lrmscope.engine.settings import AnyMode, CustomMode, Mode, ModeSettings, SamplerSettings
from lrmscope.errors import LrmscopeError
from lrmscope.store import Store
from lrmscope.text import visible
from lrmscope.tui.chat.intervene import InterveneInput
from lrmscope.tui.chat.screens import HelpScreen, SettingsScreen
from lrmscope.tui.streaming import (
    REFRESH_HZ,
    EngineError,
    FlagFound,
    Follower,
    StreamingApp,
    VerdictsReady,
)
from lrmscope.tui.styles import MODE_LABELS, mode_label
from lrmscope.tui.widgets.turn import TurnView

MODE_KEYS = {"f2": Mode.DEFAULT, "f3": Mode.ZEROTHINK, "f4": Mode.LESSTHINK, "f5": Mode.MORETHINK}


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
    modes: tuple[Mode, ...] = tuple(Mode)  # what the backend can run (a served chat model: less)
    own_modes: tuple[CustomMode, ...] = ()  # the modes file's, in its order (f9 cycles them)
    # a guarded mode's judge, built with the command's judge options when a turn first needs it
    guard_judges: GuardJudges = field(default_factory=GuardJudges)


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
        Binding("f8", "intervene", "inject"),
        Binding("f9", "own_mode", "own mode"),
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
        self.said_no_thought = False  # a served model gave no thought: said once, in the status

    def compose(self) -> ComposeResult:
        yield Static(id="modebar")
        with Horizontal(id="main"):
            yield VerticalScroll(id="conversation")
            yield Static(Text("flags", style="bold"), id="flags")
        yield InterveneInput()
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
        self.query_one("#prompt", Input).focus()

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
        own = self.mode.mode not in MODE_KEYS.values()  # a mode of your own (--mode NAME, f9)
        key = "f9 " if self.session.own_modes else ""
        if own:
            bar.append(f" {key}{mode_label(self.mode.mode)} ", style="reverse bold")
        elif self.session.own_modes:
            bar.append(f" {key}{mode_label(self.session.own_modes[0])} ")
        self.query_one("#modebar", Static).update(bar)

    def _show_status(self, state: str) -> None:
        s = self.session
        self.query_one("#statusbar", Static).update(
            Text(f"{visible(s.model_name)} · {s.device} · {mode_label(self.mode.mode)} · {state}")
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
        if isinstance(event.input, InterveneInput):
            self._intervene(event.value)
            return
        text = event.value
        if not text.strip() or self.generation is not None:
            return
        event.input.value = ""
        self._start_turn(text)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The mode keys are priority bindings: not while a settings or help screen is open."""
        if action in ("mode", "own_mode", "intervene") and len(self.screen_stack) > 1:
            return False
        return True

    def action_mode(self, name: str) -> None:
        self._switch(Mode.parse(name))

    def action_own_mode(self) -> None:
        """The modes file's modes in turn: the one after the mode of your own in effect, or the
        first."""
        own = self.session.own_modes
        if not own:
            self._show_status("no modes of your own: give a modes file (--modes-file)")
            return
        current = self.mode.mode
        at = own.index(current) + 1 if current in own else 0
        self._switch(own[at % len(own)])

    def _switch(self, mode: AnyMode) -> None:
        if self.session.modes != tuple(Mode) and mode not in self.session.modes:
            runs = ", ".join(m.value for m in self.session.modes)
            self._show_status(
                f"this endpoint runs {runs} only (--api chat without --prefill-style)"
            )
            return
        self.mode = self.mode.with_mode(mode)
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

    def action_intervene(self) -> None:
        if self.generation is None:
            self._show_status("nothing is streaming: f8 injects text into a running thought")
            return
        self.query_one(InterveneInput).open()

    def on_intervene_input_cancelled(self, _message: InterveneInput.Cancelled) -> None:
        self._close_intervene()
        self._show_status("generating (nothing injected)" if self.generation else "ready")

    def _close_intervene(self) -> None:
        self.query_one(InterveneInput).close()
        self.query_one("#prompt", Input).focus()

    def _intervene(self, text: str) -> None:
        """Hand the text to the generation; it lands at the next token boundary (handle_event
        says when)."""
        self._close_intervene()
        if not text:
            return
        if self.generation is None or not self.generation.inject(text):
            self._show_status("the thought has already closed: nothing injected")
            return
        self._show_status("injecting at the next token boundary")

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
            guard_judge = self.session.guard_judges.of(self.mode.mode)
        except LrmscopeError as exc:
            turn.fail(str(exc))
            turn.render_now()
            return
        self.generation = Generation(
            self.session.backend,
            prompt,
            sampler=self.sampler,
            mode=self.mode,
            guard_judge=guard_judge,
            user_text=text,
        )
        self._show_status("generating")
        session = self.session
        self._generate(
            turn,
            TurnJob(
                session.store.path,
                session.run_id,
                self.generation,
                text,
                "chat",
                added,
                parent_id=self.last_sample_id,
                live_judges=session.live_judges,
                final_judges=session.final_judges,
            ),
        )

    @work(thread=True, exclusive=True)
    def _generate(self, turn: TurnView, job: TurnJob) -> None:
        self.stream_turn(turn, job)

    def handle_event(self, turn: TurnView, event: Event) -> None:
        super().handle_event(turn, event)
        if isinstance(event, Injected) and event.span.kind == "inject":
            self._show_status(f"injected into the thought at character {event.span.start}")
        if isinstance(event, Injected) and event.span.trigger is not None:
            self._show_status(guard_note(event.span.trigger))
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
            if self.generation.pending_injections:
                state = f"{state} · the thought closed before the text landed: nothing injected"
            guard = self.generation.guard
            if guard is not None and guard.done:
                state = f"{state} · guard intervened {guard.done}x"
            if not self.generation.thought_given and not self.said_no_thought:
                self.said_no_thought = True
                state = f"{state} · {NO_THOUGHT}"
        self.generation = None
        turn.render_now()
        self._show_mode()
        self._show_status(state)
