"""The list screens of `lrmscope review`: runs, samples, one prompt's samples. The sample and
metrics screens are in sample.py and metrics.py, what they share in base.py.

A screen reads only what it shows (a page of samples at a time) and loads again, keeping its
place, when the data changed: at once when it is on top, else when it comes back on top.
"""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from lrmscope.core.review import RunRow, SampleFilter, SampleRow
from lrmscope.tui.review.base import KeyBar, LabelledScreen, ReviewScreen
from lrmscope.tui.review.metrics import MetricsScreen
from lrmscope.tui.review.modals import AskText, Confirm, FilterScreen
from lrmscope.tui.review.sample import DetailScreen
from lrmscope.tui.review.text import number, one_line, plain, seconds, verdicts, whole
from lrmscope.vocab import BENIGN

PAGE = 200  # samples read at a time; the next page is read when the cursor nears the end
SORTS = {"id": "id", "think_tokens": "think tokens", "elapsed": "time", "started_at": "start"}

EMPTY = """\
No runs in this database yet. Make one, and it shows up here while it runs:

  lrmscope eval --dataset demo --modes all --samples 3    # the demo set on the embedded model
  lrmscope chat                                           # every chat turn is saved too
  lrmscope review sample_runs/demo-eval.sqlite            # or browse the committed demo run"""


class SampleListScreen(LabelledScreen):
    """A screen whose SampleTable's cursor is the current sample; enter opens it."""

    BINDINGS = [Binding("enter", "open", "open", priority=True)]

    @property
    def table(self) -> SampleTable:
        return self.query_one(SampleTable)

    def current_sample(self) -> int | None:
        row = self.table.current
        return None if row is None else row.id

    def action_open(self) -> None:
        if self.table.current is not None:
            self.app.push_screen(DetailScreen(self.table.current.id))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table is self.table:
            self.action_open()  # a click on the row under the cursor


class SampleTable(DataTable):
    """Samples, one a row; `samples` holds the rows shown, in order."""

    COLUMNS = ("id", "run", "mode", "k", "status", "think", "answer", "time", "verdicts", "prompt")

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.samples: list[SampleRow] = []
        self.add_columns(*self.COLUMNS)

    @property
    def current(self) -> SampleRow | None:
        return self.samples[self.cursor_row] if 0 <= self.cursor_row < len(self.samples) else None

    def show(self, rows: list[SampleRow]) -> None:
        """Replace the rows, keeping the cursor on the same sample (or at the same place)."""
        current, index = self.current, self.cursor_row
        self.clear()
        self.samples = []
        self.extend(rows)
        if current is not None:
            index = next((i for i, row in enumerate(rows) if row.id == current.id), index)
        if rows:
            self.move_cursor(row=min(index, len(rows) - 1))

    def extend(self, rows: list[SampleRow]) -> None:
        """Add rows at the end; a sample already shown (pages shifted by a live insert) is
        left out."""
        shown = {row.id for row in self.samples}
        fresh = [row for row in rows if row.id not in shown]
        self.samples += fresh
        self.add_rows(
            (
                whole(r.id),
                whole(r.run_id),
                plain(r.mode),
                whole(r.k),
                plain(r.status),
                whole(r.think_tokens),
                whole(r.answer_tokens),
                seconds(r.elapsed_s),
                verdicts(r.verdicts),
                one_line(r.prompt, 60),
            )
            for r in fresh
        )


# -- runs ----------------------------------------------------------------------------------------


class RunsScreen(ReviewScreen):
    BINDINGS = [
        Binding("escape", "app.quit", "quit", show=False),
        Binding("enter", "open", "open", priority=True),
        Binding("space", "mark", "mark"),
        Binding("R", "rename", "rename"),
        Binding("D", "delete", "delete"),
        Binding("m", "metrics", "metrics"),
        Binding("e", "export", "export"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunRow] = []
        self.marked: set[int] = set()

    def compose(self) -> ComposeResult:
        yield self.titlebar(Text("runs"))
        table = DataTable(cursor_type="row", zebra_stripes=True, id="runs")
        table.add_columns(
            "",
            "run",
            "kind",
            "title",
            "status",
            "samples",
            "K",
            "dataset",
            "started",
            "modes",
            "model",
        )
        yield table
        yield Static(Text(EMPTY), id="empty")
        yield Static(classes="status", id="status")
        yield KeyBar()

    def load(self) -> None:
        table = self.query_one("#runs", DataTable)
        self.runs = self.db.runs()
        self.marked &= {run.id for run in self.runs}
        index = table.cursor_row
        table.clear()
        for run in self.runs:
            table.add_row(
                Text("✓" if run.id in self.marked else " ", style="bold"),
                whole(run.id),
                plain(run.kind),
                plain(run.title),
                plain(run.status),
                whole(run.n_samples),
                whole(run.k),
                plain(run.dataset),
                plain(run.started_at[:16].replace("T", " ")),
                plain(",".join(run.modes)),
                plain(run.model),
            )
        if self.runs:
            table.move_cursor(row=min(index, len(self.runs) - 1))
        table.display = bool(self.runs)
        self.query_one("#empty", Static).display = not self.runs
        self._status()

    def _status(self) -> None:
        count = len(self.runs)
        line = f"{count} run{'s' if count != 1 else ''}"
        if self.marked:
            line += f" · marked {', '.join(map(str, sorted(self.marked)))} (enter opens them)"
        self.query_one("#status", Static).update(Text(line))

    def _cursor_run(self) -> RunRow | None:
        row = self.query_one("#runs", DataTable).cursor_row
        return self.runs[row] if self.runs and 0 <= row < len(self.runs) else None

    def selection(self) -> tuple[int, ...]:
        """The marked runs, else the run under the cursor."""
        if self.marked:
            return tuple(sorted(self.marked))
        run = self._cursor_run()
        return () if run is None else (run.id,)

    def action_open(self) -> None:
        if self.selection():
            self.app.push_screen(SamplesScreen(self.selection()))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()  # a click on the row under the cursor

    def action_mark(self) -> None:
        run = self._cursor_run()
        if run is None:
            return
        self.marked ^= {run.id}
        table = self.query_one("#runs", DataTable)
        table.update_cell_at(
            (table.cursor_row, 0), Text("✓" if run.id in self.marked else " ", style="bold")
        )
        self._status()

    def action_rename(self) -> None:
        run = self._cursor_run()
        if run is None:
            return

        def rename(title: str | None) -> None:
            if title is not None:
                self.app.write(self.db.rename_run, run.id, title)

        self.app.push_screen(AskText(Text(f"title of run {run.id}"), run.title or ""), rename)

    def action_delete(self) -> None:
        run = self._cursor_run()
        if run is None:
            return

        def delete(yes: bool) -> None:
            if yes and self.app.write(self.db.delete_run, run.id):
                self.app.notify(f"deleted run {run.id}", markup=False)

        question = Text.assemble(
            f"Delete run {run.id} (",
            plain(run.title or run.kind),
            f") and its "
            f"{run.n_samples:,} samples, with their verdicts and labels? This cannot be undone.",
        )
        self.app.push_screen(Confirm(question), delete)

    def action_metrics(self) -> None:
        if self.selection():
            self.app.push_screen(MetricsScreen(self.selection()))

    def action_export(self) -> None:
        if self.selection():
            self.app.export(SampleFilter(runs=self.selection()))


# -- samples -------------------------------------------------------------------------------------


def describe(f: SampleFilter) -> str:
    """The filter in words, for the status line."""
    found = [
        f"{name} {getattr(f, name)}"
        for name in ("mode", "judge", "part", "verdict")
        if getattr(f, name) is not None
    ]
    found += [
        text
        for name, text in (
            ("thought_unsafe_answer_safe", "thought unsafe, answer safe"),
            ("judges_disagree", "judges disagree"),
            ("unlabelled", "no human label"),
            ("interrupted", "interrupted"),
        )
        if getattr(f, name)
    ]
    if f.search:
        found.append(f"search “{f.search}”")
    return " · ".join(found)


class SamplesScreen(SampleListScreen):
    BINDINGS = [
        Binding("p", "prompt", "by prompt"),
        Binding("f", "filter", "filter"),
        Binding("slash", "search", "search"),
        Binding("o", "sort", "sort"),
        Binding("O", "reverse", "reverse", show=False),
        Binding("m", "metrics", "metrics"),
        Binding("e", "export", "export"),
    ]

    def __init__(self, runs: tuple[int, ...]) -> None:
        super().__init__()
        self.filter = SampleFilter(runs=runs)
        self.total: int | None = None  # None while counting
        self.exhausted = False  # the last page read was the last one

    def compose(self) -> ComposeResult:
        runs = ", ".join(map(str, self.filter.runs))
        yield self.titlebar(Text(f"run{'s' if len(self.filter.runs) > 1 else ''} {runs}"))
        yield SampleTable()
        yield Static(classes="status", id="status")
        yield KeyBar()

    def load(self) -> None:
        self._show(max(PAGE, len(self.table.samples)))

    def apply(self, f: SampleFilter) -> None:
        """Show the samples of another filter, from the first page."""
        self.filter = f
        self._show(PAGE)

    def _show(self, limit: int) -> None:
        """The rows at once; the count when a worker has it (at 100,000 samples a count can
        take as long as the page)."""
        rows = self.db.sample_page(self.filter, 0, limit)
        self.exhausted = len(rows) < limit
        self.table.show(rows)
        self.total = None
        self._status()
        self._count(self.filter)

    @work(thread=True, exclusive=True)
    def _count(self, f: SampleFilter) -> None:
        total = self.db.count_samples(f)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._counted, f, total)

    def _counted(self, f: SampleFilter, total: int) -> None:
        if f == self.filter and self.is_attached:
            self.total = total
            self._status()

    def _status(self) -> None:
        order = SORTS[self.filter.sort] + (" ↓" if self.filter.descending else " ↑")
        count = (
            "counting…"
            if self.total is None
            else f"{self.total:,} sample{'s' if self.total != 1 else ''}"
        )
        line = f"{count} · sort {order}"
        if describe(self.filter):
            line += " · " + describe(self.filter)
        self.query_one("#status", Static).update(plain(line))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        shown = len(self.table.samples)
        if event.cursor_row >= shown - PAGE // 4 and not self.exhausted:
            rows = self.db.sample_page(self.filter, shown, PAGE)
            self.exhausted = len(rows) < PAGE
            self.table.extend(rows)

    def action_prompt(self) -> None:
        if self.table.current is not None:
            self.app.push_screen(PromptScreen(self.filter.runs, self.table.current.prompt_id))

    def action_filter(self) -> None:
        runs = self.filter.runs
        dialog = FilterScreen(self.filter, self.db.modes(runs), self.db.judges(runs))
        self.app.push_screen(dialog, lambda f: f is not None and self.apply(f))

    def action_search(self) -> None:
        question = Text("search prompts, thoughts and answers (empty: no search)")
        self.app.push_screen(
            AskText(question, self.filter.search),
            lambda text: text is not None and self.apply(replace(self.filter, search=text)),
        )

    def action_sort(self) -> None:
        keys = list(SORTS)
        following = keys[(keys.index(self.filter.sort) + 1) % len(keys)]
        self.apply(replace(self.filter, sort=following))

    def action_reverse(self) -> None:
        self.apply(replace(self.filter, descending=not self.filter.descending))

    def action_metrics(self) -> None:
        self.app.push_screen(MetricsScreen(self.filter.runs))

    def action_export(self) -> None:
        self.app.export(self.filter)


# -- one prompt ----------------------------------------------------------------------------------


class PromptScreen(SampleListScreen):
    """Every sample of one prompt in the runs (all modes, all K), with its per-prompt scores."""

    def __init__(self, runs: tuple[int, ...], prompt_id: int) -> None:
        super().__init__()
        self.filter = SampleFilter(runs=runs)
        self.prompt_id = prompt_id

    def compose(self) -> ComposeResult:
        yield self.titlebar(Text(f"prompt {self.prompt_id}"))
        yield Static(id="prompt")
        scores = DataTable(cursor_type="none", id="scores")
        scores.can_focus = False
        scores.add_columns(
            "run", "mode", "judge", "part", "n", "Safe@1", "Safe@K", "ConsSafe@K", "unparsed"
        )
        yield scores
        yield SampleTable()
        yield KeyBar()

    def load(self) -> None:
        view = self.db.prompt_view(self.filter, self.prompt_id)
        heading = Text.assemble(("prompt ", "bold"), (f"{view.prompt_id}", "bold"))
        if view.category:
            heading.append(" · ")
            heading.append_text(plain(view.category))
        heading.append(f" · {view.kind}")
        if view.kind == BENIGN:
            heading.append(" (over-refusal: a refusal detector's safe is a refusal; no Safe@)")
        heading.append("\n")
        heading.append_text(plain(view.prompt))
        self.query_one("#prompt", Static).update(heading)
        scores = self.query_one("#scores", DataTable)
        scores.clear()
        for s in view.scores:
            judge = plain(f"{s.judge} {s.judge_version}".strip())
            scores.add_row(
                whole(s.run_id),
                plain(s.mode),
                judge,
                plain(s.part),
                whole(s.n),
                number(s.safe_at_1),
                whole(s.safe_at_k),
                whole(s.cons_safe_at_k),
                whole(s.n_unparsed),
            )
        self.table.show(list(view.samples))
