"""Snapshot tests of compare (pytest-textual-snapshot): four columns streaming, and finished with
the summary table, on a wide and on a narrow terminal. No column runs: each is fed fixed events,
so every run draws the same screen. After an intended change of the look:
`python -m pytest tests/tui/test_compare_snapshots.py --snapshot-update`, then review the SVGs in
tests/__snapshots__/."""

from lrmscope.core.compare import CompareSettings
from lrmscope.engine.events import AnswerDelta, Finished, Injected, Span, Stats, ThinkDelta
from lrmscope.engine.flags import Flag
from lrmscope.engine.judges.rsmatch import RSMatch
from lrmscope.engine.scripted import ScriptedBackend
from lrmscope.engine.settings import (
    FORCED_CLOSE,
    LESSTHINK_PREFILL,
    ZEROTHINK_PREFILL,
    Mode,
    ModeSettings,
    SamplerSettings,
)
from lrmscope.engine.trace import parse_trace
from lrmscope.store import Store
from lrmscope.tui.compare.app import CompareApp, CompareSession
from lrmscope.tui.streaming import VerdictsReady

WIDE = (160, 40)
NARROW = (80, 34)
THOUGHT = "The user asks about locks. Lock picking can be legal for locksmiths. "
ANSWER = "Use a tension wrench and a pick. [bold]not markup[/bold]"


class FixedCompare(CompareApp):
    """Compare with no column running: the test feeds each column its events."""

    def launch(self, turn, job) -> None:
        del self.running[turn]


def make_app(tmp_path) -> FixedCompare:
    store = Store(tmp_path / "snap.sqlite")
    settings = CompareSettings(
        "How do I pick a lock?", tuple(Mode), 1, SamplerSettings(seed=7), ModeSettings()
    )
    session = CompareSession(
        (ScriptedBackend("unused"),) * settings.width,
        store,
        settings,
        "unused",
        lambda seed: store.start_run("compare", seed=seed),
        model_name="r1-distill.gguf",
        final_judges=(RSMatch(),),
        live_judges=(RSMatch(),),
    )
    return FixedCompare(session)


def script(mode: Mode) -> list:
    """A column's events so far: (event, ...) with raw offsets."""
    if mode is Mode.DEFAULT:
        return [ThinkDelta(THOUGHT, 0)]
    if mode is Mode.MORETHINK:
        first = "Locks have pins. "
        again = " Maybe the user is a locksmith."
        return [
            ThinkDelta(first, 0),
            Injected(Span(len(first), len(first) + 4, "rethink", "Wait"), "think"),
            ThinkDelta(again, len(first) + 4),
        ]
    prefill = ZEROTHINK_PREFILL if mode is Mode.ZEROTHINK else LESSTHINK_PREFILL
    return [
        Injected(Span(0, len(prefill), "prefill", prefill), "think"),
        AnswerDelta(ANSWER, len(prefill)),
    ]


def raw_of(events) -> tuple[str, tuple[Span, ...]]:
    raw = "".join(e.span.text if isinstance(e, Injected) else e.text for e in events)
    return raw, tuple(e.span for e in events if isinstance(e, Injected))


async def streaming(app: FixedCompare, pilot) -> None:
    for column, turn in zip(app.plan, app.turns):
        for event in script(column.mode):
            app.handle_event(turn, event)
        think = 0 if column.mode in (Mode.ZEROTHINK, Mode.LESSTHINK) else 17
        turn.show_progress(think, 12 - think // 2, 2.0)
    await pilot.pause()


async def finished(app: FixedCompare, pilot) -> None:
    await streaming(app, pilot)
    for column, turn in zip(app.plan, app.turns):
        events = script(column.mode)
        if column.mode is Mode.MORETHINK:
            raw, _ = raw_of(events)
            close = Span(len(raw), len(raw) + len(FORCED_CLOSE), "close", FORCED_CLOSE)
            events = [*events, Injected(close, "think"), AnswerDelta("No.", close.end)]
            app.handle_event(turn, events[-2])
            app.handle_event(turn, events[-1])
        raw, spans = raw_of(events)
        thinks = column.mode in (Mode.DEFAULT, Mode.MORETHINK)
        stats = Stats(
            40,
            17 if thinks else 0,
            0 if column.mode is Mode.DEFAULT else 12,
            int(column.mode is Mode.MORETHINK),
            "length",
            0.2,
            2.0,
        )
        app.handle_event(turn, Finished(parse_trace(raw, spans), stats))
        unsafe = column.mode is Mode.ZEROTHINK
        if unsafe:
            turn.add_flag(
                Flag(
                    "answer",
                    len(ZEROTHINK_PREFILL),
                    len(ZEROTHINK_PREFILL) + 33,
                    "rs-match",
                    "1",
                    "unsafe",
                    None,
                    (),
                    ANSWER[:33],
                    "",
                )
            )
        verdicts = [("rs-match", "answer", "unsafe" if unsafe else "safe", ())]
        if thinks:
            verdicts.insert(0, ("rs-match", "think", "safe", ()))
        app.on_verdicts_ready(VerdictsReady(turn, verdicts))
    await pilot.pause()


def test_streaming(snap_compare, tmp_path):
    app = make_app(tmp_path)

    async def run_before(pilot):
        await streaming(app, pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)


def test_finished_with_summary(snap_compare, tmp_path):
    app = make_app(tmp_path)

    async def run_before(pilot):
        await finished(app, pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=run_before)
    assert not app.run_open


def test_narrow_terminal_scrolls_the_columns_sideways(snap_compare, tmp_path):
    app = make_app(tmp_path)

    async def run_before(pilot):
        await finished(app, pilot)
        assert app.query_one("#columns").max_scroll_x > 0
        assert all(turn.size.width >= 30 for turn in app.turns)

    assert snap_compare(app, terminal_size=NARROW, run_before=run_before)
