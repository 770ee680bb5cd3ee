"""The metrics screen of `lrmscope review`: the table of `lrmscope metrics` and plots."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from lrmscope.core.interventions import Interventions
from lrmscope.core.metrics import REFUSAL_KINDS
from lrmscope.core.review import SampleFilter
from lrmscope.errors import LrmscopeError
from lrmscope.tui.review.base import KeyBar, ReviewScreen
from lrmscope.tui.review.text import bars, histograms, number, plain, whole
from lrmscope.tui.review.tradeoff import TradeoffScreen
from lrmscope.vocab import BENIGN, DEFAULT_JUDGE, PARTS


class MetricsScreen(ReviewScreen):
    """The metrics of runs (as `lrmscope metrics --run`), Safe@1 by mode and the think-length
    distributions of safe and unsafe samples for one judge and part. The table and the plots are
    of harmful and unknown prompts; benign prompts, when there are any, get their own plot: the
    share of their samples a refusal detector found refusing (over-refusal)."""

    BINDINGS = [
        Binding("j", "judge", "next judge"),
        Binding("t", "part", "next part"),
        Binding("o", "tradeoff", "trade-off"),
    ]

    def __init__(self, runs: tuple[int, ...]) -> None:
        super().__init__()
        self.filter = SampleFilter(runs=runs)
        self.rows: list[dict] = []
        self.guarded: list[Interventions] = []  # what the guards of guarded modes did
        self.judge: str | None = None
        self.part = "full"

    def compose(self) -> ComposeResult:
        runs = ", ".join(map(str, self.filter.runs))
        plural = "s" if len(self.filter.runs) > 1 else ""
        yield self.titlebar(Text(f"metrics of run{plural} {runs}"))
        table = DataTable(cursor_type="row", zebra_stripes=True, id="metrics")
        table.add_columns(
            "run",
            "mode",
            "judge",
            "part",
            "prompts",
            "K",
            "Safe@1",
            "Safe@K",
            "ConsSafe@K",
            "unparsed",
            "dataset",
            "model",
        )
        yield table
        with VerticalScroll():
            yield Static(id="plots")
        yield KeyBar()

    def load(self) -> None:
        self.query_one("#plots", Static).update(Text("computing the metrics…", style="dim"))
        self._compute(self.judge, self.part, fresh=True)

    @work(thread=True, exclusive=True)
    def _compute(self, judge: str | None, part: str, fresh: bool) -> None:
        """The metrics (fresh) and the think lengths of one judge and part, off the event loop:
        at 100,000 samples the SQL over every verdict takes seconds."""
        try:
            rows = self.db.metrics(self.filter) if fresh else self.rows
            guarded = self.db.interventions(self.filter) if fresh else self.guarded
            judges = sorted({r["judge"] for r in rows})
            if judge not in judges:
                judge = next((j for j in judges if j != "human"), judges[0] if judges else None)
            lengths = self.db.think_lengths(self.filter, judge, part) if judge else {}
        except LrmscopeError as exc:
            self.app.call_from_thread(self.app.notify, str(exc), severity="error", markup=False)
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, rows, guarded, judge, part, lengths, fresh)

    def _show(
        self,
        rows: list[dict],
        guarded: list[Interventions],
        judge: str | None,
        part: str,
        lengths: dict[str, list[int]],
        fresh: bool,
    ) -> None:
        if not self.is_attached:
            return
        self.rows, self.guarded, self.judge, self.part = rows, guarded, judge, part
        if fresh:
            table = self.query_one("#metrics", DataTable)
            table.clear()
            for r in rows:
                if r["prompt_kind"] in REFUSAL_KINDS:
                    continue
                table.add_row(
                    whole(r.get("run_id")),
                    plain(r["mode"]),
                    plain(r["judge"]),
                    plain(r["part"]),
                    whole(r["n_prompts"]),
                    whole(r["k"]),
                    number(r["safe_at_1"]),
                    number(r["safe_at_k"]),
                    number(r["cons_safe_at_k"]),
                    whole(r["n_unparsed"]),
                    plain(r["dataset"]),
                    plain(r["model"]),
                )
        plots = self.query_one("#plots", Static)
        if judge is None:
            plots.update(
                Text(
                    "no judged samples in this selection: run `lrmscope judge DB` "
                    "or label samples (s / u on the samples screen)"
                )
            )
            return
        several = len({r.get("run_id") for r in rows}) > 1
        shown = [r for r in rows if r["judge"] == judge and r["part"] == part]
        safe = [
            ((f"run {r.get('run_id')} " if several else "") + r["mode"], r["safe_at_1"])
            for r in shown
            if r["prompt_kind"] not in REFUSAL_KINDS
        ]
        text = Text.assemble(
            ("Safe@1 by mode", "bold"),
            " · judge ",
            plain(judge),
            f" · part {part}  (j: next judge, t: next part)\n",
        )
        text.append_text(bars(safe) if safe else Text(f"no {part} verdicts", style="dim"))
        text.append("\n\n")
        text.append("think length (tokens) of safe and unsafe samples\n", style="bold")
        text.append_text(histograms(lengths))
        benign = [r for r in shown if r["prompt_kind"] == BENIGN]
        if benign:
            text.append("\n\n")
            text.append("benign prompts: refusal share by mode (over-refusal)\n", style="bold")
            if benign[0]["refusal_share"] is None and benign[0]["n_refusals"] is None:
                text.append_text(plain(judge, "dim"))
                text.append(
                    " is not a refusal detector; benign prompts are not in the safety metrics",
                    style="dim",
                )
            else:
                text.append_text(
                    bars(
                        [
                            (
                                (f"run {r.get('run_id')} " if several else "") + r["mode"],
                                r["refusal_share"],
                            )
                            for r in benign
                        ]
                    )
                )
        if guarded:
            text.append("\n\n")
            text.append_text(_interventions(guarded, several))
        plots.update(text)

    def action_judge(self) -> None:
        judges = sorted({r["judge"] for r in self.rows})
        if judges:
            following = judges[(judges.index(self.judge) + 1) % len(judges)]
            self._compute(following, self.part, fresh=False)

    def action_tradeoff(self) -> None:
        self.app.push_screen(
            TradeoffScreen(self.filter.runs, self.judge or DEFAULT_JUDGE, self.part)
        )

    def action_part(self) -> None:
        self._compute(self.judge, PARTS[(PARTS.index(self.part) + 1) % len(PARTS)], fresh=False)


def _interventions(guarded: list[Interventions], several: bool) -> Text:
    """What each guarded mode's guard did (as `lrmscope metrics --interventions`)."""
    text = Text("guard interventions by guarded mode\n", style="bold")
    for g in guarded:
        spent = "–" if g.spent_tokens_mean is None else f"{g.spent_tokens_mean:.0f}"
        saved = (
            f"{g.tokens_saved_mean:+.0f} vs {g.reference} over {g.n_prompts_paired} prompts"
            if g.tokens_saved_mean is not None
            else f"no {g.reference} samples of the same prompts"
        )
        text.append_text(plain((f"run {g.run_id} " if several else "") + g.mode, "bold"))
        text.append_text(
            plain(
                f": {g.n_intervened} of {g.n_samples} samples intervened "
                f"({g.intervened_share:.0%}) · {g.interventions_per_sample:.2f} a sample "
                f"(inject {g.n_inject}, close {g.n_close}, restart {g.n_restart})"
                + (
                    ""
                    if g.latency_tokens_mean is None
                    else f" · latency {g.latency_tokens_mean:.1f} tokens (max "
                    f"{g.latency_tokens_max})"
                )
                + f" · think tokens spent {spent} · saved {saved}\n"
            )
        )
    return text
