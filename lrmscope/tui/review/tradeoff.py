"""The trade-off screen of `lrmscope review`: the table of `lrmscope metrics --tradeoff` and, per
mode, safety against accuracy, drawn by plotext (docs/study.md "Trade-off")."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker
from textual_plotext import PlotextPlot

from lrmscope.core.review import SampleFilter
from lrmscope.errors import LrmscopeError
from lrmscope.tui.review.base import KeyBar, ReviewScreen
from lrmscope.tui.review.text import number, plain, seconds, whole


class TradeoffScreen(ReviewScreen):
    """Per run, mode and task what the mode buys and costs, by the judge and part the metrics
    screen shows; below, each mode as a point: Safe@1 of its harmful prompts across, Accuracy@1
    of its reasoning prompts up (modes with both only)."""

    def __init__(self, runs: tuple[int, ...], judge: str, part: str) -> None:
        super().__init__()
        self.filter = SampleFilter(runs=runs)
        self.judge, self.part = judge, part

    def compose(self) -> ComposeResult:
        yield self.titlebar(Text(f"trade-off · judge {self.judge} on {self.part}"))
        table = DataTable(cursor_type="row", zebra_stripes=True, id="tradeoff")
        table.add_columns(
            "run", "mode", "task", "prompts", "Safe@1", "Safe@K", "refusal", "Acc@1", "Pass@K",
            "Maj@K", "think", "tok/s", "time",
        )  # fmt: skip
        yield table
        yield Static(id="tradeoff-note")
        yield PlotextPlot(id="tradeoff-plot")
        yield KeyBar()

    def load(self) -> None:
        self._compute()

    @work(thread=True, exclusive=True)
    def _compute(self) -> None:
        try:
            rows = self.db.tradeoff(self.filter, self.judge, self.part)
        except LrmscopeError as exc:
            self.app.call_from_thread(self.app.notify, str(exc), severity="error", markup=False)
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, rows)

    def _show(self, rows: list[dict]) -> None:
        if not self.is_attached:
            return
        table = self.query_one("#tradeoff", DataTable)
        table.clear()
        for r in rows:
            table.add_row(
                whole(r["run_id"]),
                plain(r["mode"]),
                plain(r["task"]),
                whole(r["n_prompts"]),
                number(r["safe_at_1"]),
                number(r["safe_at_k"]),
                number(r["refusal_at_1"]),
                number(r["accuracy_at_1"]),
                number(r["pass_at_k"]),
                number(r["maj_at_k"]),
                whole(None if r["think_tokens_mean"] is None else round(r["think_tokens_mean"])),
                whole(None if r["tokens_per_s"] is None else round(r["tokens_per_s"])),
                seconds(r["seconds_mean"]),
            )
        points = _points(rows)
        note = self.query_one("#tradeoff-note", Static)
        note.update(
            Text(
                "Safe@1 (harmful prompts) against Accuracy@1 (reasoning prompts), per mode", "bold"
            )
            if points
            else Text(
                "no mode has both harmful and reasoning prompts judged and checked: the plot "
                'needs a dataset with both (docs/study.md "Prompt kinds")',
                style="dim",
            )
        )
        chart = self.query_one("#tradeoff-plot", PlotextPlot)
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        for label, (safety, accuracy) in points.items():
            plt.scatter([safety], [accuracy], label=label, marker="dot")
        plt.xlim(0, 1)
        plt.ylim(0, 1)
        plt.xlabel("Safe@1")
        plt.ylabel("Accuracy@1")
        chart.refresh()


def _points(rows: list[dict]) -> dict[str, tuple[float, float]]:
    """Each mode's (Safe@1, Accuracy@1), named `mode` or `run N mode` over several runs, where
    the same run and mode has both."""
    several = len({r["run_id"] for r in rows}) > 1
    safety, accuracy = {}, {}
    for r in rows:
        key = (r["run_id"], r["mode"], r["dataset"])
        if r["safe_at_1"] is not None:
            safety[key] = r["safe_at_1"]
        if r["accuracy_at_1"] is not None:
            accuracy[key] = r["accuracy_at_1"]
    return {
        (f"run {key[0]} {key[1]}" if several else key[1]): (safety[key], accuracy[key])
        for key in safety
        if key in accuracy
    }
