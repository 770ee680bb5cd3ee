"""`lrmscope compare`: one prompt under several decoding modes, one column each, streaming together.

Built from the chat's parts: each column is a TurnView (lrmscope/tui/widgets/turn.py: its header,
thought panel, answer, injected spans, live flags, and a footer with the counts and the final
verdicts) fed by StreamingApp's plumbing (lrmscope/tui/streaming.py), which saves it as a sample.
The columns run in threads of their own (not Textual's worker pool, which holds fewer threads than
a comparison may have columns), on the sequences of one BatchDecoder (one column: on the backend
itself). When every column has ended
and been judged, a summary table compares them, and the run is closed.

Each run is one `compare` run in the database, one sample per column (its mode, k and seed). `r`
re-runs every column with the next seed as a new run, so each run is one group in review; the
screen shows the newest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import HorizontalScroll, ScrollableContainer
from textual.widgets import Footer, Static

from lrmscope.core.compare import DATASET, Column, CompareSettings, next_seed
from lrmscope.core.generate import TurnJob
from lrmscope.engine.backend import Backend
from lrmscope.engine.events import Event, Finished
from lrmscope.engine.generation import NO_THOUGHT, Generation
from lrmscope.engine.guard import GuardJudges
from lrmscope.engine.judges.base import Judge
from lrmscope.store import Store
from lrmscope.text import visible
from lrmscope.tui.streaming import (
    REFRESH_HZ,
    EngineError,
    FlagFound,
    Follower,
    StreamingApp,
    VerdictsReady,
)
from lrmscope.tui.styles import LABEL_STYLES, mode_label
from lrmscope.tui.widgets.turn import TurnView
from lrmscope.vocab import PARTS, Status

COLUMN_MIN_WIDTH = 36  # narrower terminals scroll the columns sideways


@dataclass(frozen=True)
class CompareSession:
    """What a comparison runs with."""

    backends: tuple[Backend, ...]  # one per column (BackendSlots.open)
    store: Store
    settings: CompareSettings
    rendered: str  # the prompt as the model's template renders it, before the think opener
    start_run: Callable[[int], int]  # a new compare run with this seed; its id
    model_name: str = ""
    device: str = "cpu"
    final_judges: tuple[Judge, ...] = ()  # shared by the columns' threads: one call at a time
    live_judges: tuple[Judge, ...] = ()
    notices: tuple[str, ...] = ()
    guard_judges: GuardJudges = field(default_factory=GuardJudges)  # guarded columns' judges


@dataclass(frozen=True)
class Running:
    """A column whose generation has not ended yet."""

    generation: Generation
    started: float


def column_label(column: Column) -> str:
    return f"{mode_label(column.mode)} · k={column.k}"


def column_header(column: Column) -> Text:
    header = Text(column_label(column), style="bold")
    header.append(f" · seed {column.seed}", style="dim")
    return header


class Columns(HorizontalScroll):
    """The columns share the width, but none gets narrower than COLUMN_MIN_WIDTH: on a narrow
    terminal they keep that width and scroll sideways. (A `1fr` width with a `min-width` in a
    scrolling container gives each column the whole width.)"""

    def on_resize(self) -> None:
        self.fit()

    def fit(self) -> None:
        if self.children:
            fits = self.size.width // len(self.children) >= COLUMN_MIN_WIDTH
            for column in self.children:
                column.styles.width = "1fr" if fits else COLUMN_MIN_WIDTH


class CompareApp(StreamingApp):
    TITLE = "lrmscope compare"
    CSS = """
    #prompt { height: auto; max-height: 3; background: $panel; padding: 0 1; }
    #columns { height: 1fr; }
    #columns > TurnView {
        width: 1fr; height: 1fr; margin: 0;
        padding: 0 1; border-right: solid $panel; overflow-y: auto;
    }
    #columns > TurnView > .prompt { dock: top; background: $boost; }
    #columns > TurnView > #status { dock: bottom; height: auto; background: $boost; }
    #summary { height: auto; max-height: 45%; display: none; overflow: auto auto; }
    #summary-table { width: auto; }
    #summary.shown { display: block; }
    #statusbar { height: 1; background: $panel; color: $text-muted; }
    """
    BINDINGS = [
        Binding("r", "rerun", "re-run (new seed)"),
        Binding("escape", "stop", "stop"),
        Binding("q", "quit", "quit"),
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),
    ]

    def __init__(self, session: CompareSession) -> None:
        super().__init__()
        self.session = session
        self.seed = session.settings.sampler.seed
        self.run_ids: list[int] = []
        self.run_open = False  # the newest run has columns that have not settled
        self.plan: tuple[Column, ...] = ()  # the newest run's columns, one per turn
        self.turns: list[TurnView] = []
        self.running: dict[TurnView, Running] = {}
        self.no_thought = False  # a served model gave no thought in some column
        self.said_no_thought = False  # and the status said so (once)
        self.followers: dict[TurnView, Follower] = {}
        self._threads: list[threading.Thread] = []

    def compose(self) -> ComposeResult:
        yield Static(Text("> " + visible(self.session.settings.text)), id="prompt")
        yield Columns(id="columns")
        with ScrollableContainer(id="summary"):
            yield Static(id="summary-table")
        yield Static(id="statusbar")
        yield Footer()

    async def on_mount(self) -> None:
        self.set_interval(1 / REFRESH_HZ, self._refresh_columns)
        await self.run_columns(self.seed)

    # -- runs ----------------------------------------------------------------------------------

    async def run_columns(self, seed: int) -> None:
        """A new run: every column, from scratch, with seeds derived from `seed`."""
        for thread in self._threads:  # all settled: their last messages are posted
            thread.join()
        session, settings = self.session, self.session.settings
        self.seed = seed
        run_id = session.start_run(seed)
        self.run_ids.append(run_id)
        self.run_open = True
        columns = self.query_one("#columns", Columns)
        await columns.remove_children()
        self.query_one("#summary").remove_class("shown")
        self.plan = settings.columns(seed)
        self.turns = [TurnView(settings.text, header=column_header(c)) for c in self.plan]
        self.followers = {turn: Follower() for turn in self.turns}
        await columns.mount_all(self.turns)
        columns.fit()
        self._threads = []
        for index, (turn, column) in enumerate(zip(self.turns, self.plan)):
            prompt, opener_added = settings.prompt(session.rendered, column)
            generation = settings.generation(
                session.backends[index], prompt, column, session.guard_judges
            )
            self.running[turn] = Running(generation, time.perf_counter())
            self.launch(
                turn,
                TurnJob(
                    session.store.path,
                    run_id,
                    generation,
                    settings.text,
                    DATASET,
                    opener_added,
                    k=column.k,
                    live_judges=session.live_judges,
                    final_judges=session.final_judges,
                ),
            )
        self._show_status("streaming")

    def launch(self, turn: TurnView, job: TurnJob) -> None:
        thread = threading.Thread(
            target=self.stream_turn,
            args=(turn, job),
            daemon=True,
            name=f"lrmscope-compare-{len(self._threads)}",
        )
        self._threads.append(thread)
        thread.start()

    def _settled(self, turn: TurnView) -> bool:
        """Ended, and judged when there are judges (or failed)."""
        if turn.error is not None:
            return True
        judged = not self.session.final_judges or turn.judged is not None
        return turn not in self.running and turn.finished is not None and judged

    def _check_done(self) -> None:
        """Once every column has settled: close the run and show the summary."""
        if not self.run_open or not all(self._settled(turn) for turn in self.turns):
            return
        reasons = [t.finished.stats.finish_reason for t in self.turns if t.finished]
        status: Status
        if any(turn.error is not None for turn in self.turns):
            status = "failed"
        elif "stopped" in reasons:
            status = "interrupted"
        else:
            status = "done"
        self.session.store.end_run(self.run_ids[-1], status)
        self.run_open = False
        self.query_one("#summary-table", Static).update(self.summary())
        self.query_one("#summary").add_class("shown")
        note = ""
        if self.no_thought and not self.said_no_thought:
            self.said_no_thought, note = True, f" · {NO_THOUGHT}"
        self._show_status(f"{status} · r re-runs with seed {next_seed(self.seed)}{note}")

    def summary(self) -> Table:
        """One row per column: think length, how it ended, and each final verdict."""
        judges = [j.name for j in self.session.final_judges]
        judged = {(name, part) for turn in self.turns for name, part, _, _ in turn.judged or ()}
        verdict_columns = sorted(
            judged, key=lambda key: (judges.index(key[0]), (*PARTS, "all").index(key[1]))
        )
        table = Table(padding=(0, 1), show_edge=False)
        table.add_column("column", no_wrap=True)
        table.add_column("end")
        for heading in ("think tok", "answer tok", "rethinks", "tok/s"):
            table.add_column(heading, justify="right")
        if self.session.live_judges:
            table.add_column("flags", justify="right")
        for name, part in verdict_columns:
            table.add_column(f"{name} {part}")
        think = []
        for column, turn in zip(self.plan, self.turns):
            row = [Text(column_label(column))]
            if turn.finished is None:
                row += [Text("error", style="bold red"), *[Text("")] * 4]
            else:
                stats = turn.finished.stats
                think.append(stats.think_tokens)
                row += [
                    Text(stats.finish_reason),
                    Text(str(stats.think_tokens)),
                    Text(str(stats.answer_tokens)),
                    Text(str(stats.rethinks)),
                    Text(f"{stats.tokens_per_s:.1f}"),
                ]
            if self.session.live_judges:
                row.append(Text(str(sum(f.label == "unsafe" for f in turn.flags))))
            labels = {(name, part): label for name, part, label, _ in turn.judged or ()}
            for key in verdict_columns:
                label = labels.get(key, "")
                row.append(Text(label, style=LABEL_STYLES.get(label, "")))
            table.add_row(*row)
        if think:
            table.caption = Text(
                f"think tokens {min(think)}–{max(think)} across {len(self.turns)} columns",
                style="dim",
            )
        return table

    # -- display -------------------------------------------------------------------------------

    def _show_status(self, state: str) -> None:
        s = self.session
        self.query_one("#statusbar", Static).update(
            Text(
                f"{visible(s.model_name)} · {s.device} · run {self.run_ids[-1]} · "
                f"seed {self.seed} · {len(self.turns)} columns · {state}"
                + (f" · {'; '.join(s.notices)}" if s.notices else "")
            )
        )

    def _refresh_columns(self) -> None:
        """Once a frame: the counts of the columns still streaming, what arrived, and each
        column kept at its end while its reader leaves it there."""
        now = time.perf_counter()
        for turn, running in self.running.items():
            g = running.generation
            turn.show_progress(g.think_tokens, g.answer_tokens, now - running.started)
        for turn in self.turns:
            follower = self.followers[turn]
            follower.check(turn)
            turn.render_now()
            follower.follow(turn)

    # -- events from the columns ---------------------------------------------------------------

    def handle_event(self, turn: TurnView, event: Event) -> None:
        super().handle_event(turn, event)
        if isinstance(event, Finished):
            running = self.running.pop(turn, None)
            if running is not None and not running.generation.thought_given:
                self.no_thought = True
            self._check_done()

    def on_flag_found(self, message: FlagFound) -> None:
        message.turn.add_flag(message.flag)

    def on_verdicts_ready(self, message: VerdictsReady) -> None:
        message.turn.show_verdicts(message.verdicts)
        self._check_done()

    def on_engine_error(self, message: EngineError) -> None:
        if not message.fatal:
            self._show_status(visible(message.error))
            return
        message.turn.fail(message.error)
        self.running.pop(message.turn, None)
        self._check_done()

    # -- actions -------------------------------------------------------------------------------

    async def action_rerun(self) -> None:
        if self.run_open:
            self._show_status("still streaming: escape stops every column, then r re-runs")
            return
        await self.run_columns(next_seed(self.seed))

    def action_stop(self) -> None:
        for running in self.running.values():
            running.generation.stop()

    async def action_quit(self) -> None:
        """Stop what streams (each column is saved as interrupted) and leave; the columns'
        threads are waited for when the app closes (on_unmount)."""
        self.action_stop()
        if self.run_open:
            self.session.store.end_run(self.run_ids[-1], "interrupted")
            self.run_open = False
        self.exit()

    def on_unmount(self) -> None:
        for thread in self._threads:
            thread.join()
