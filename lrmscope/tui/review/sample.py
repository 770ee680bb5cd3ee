"""One sample in full: `lrmscope review`'s detail screen."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from lrmscope.core.review import SampleDetail, Thread, trace_bounds
from lrmscope.tui.review.base import KeyBar, LabelledScreen
from lrmscope.tui.review.text import (
    highlight_ranges,
    label,
    marked,
    plain,
    settings,
)
from lrmscope.tui.styles import FLAG_STYLE, INJECTED_STYLE, UNSAFE_FROM_STYLE


class DetailScreen(LabelledScreen):
    """A sample: prompt, thought and answer (injected spans and unsafe flags highlighted, and
    where a windowed judge found a part turn unsafe underlined from there on), each judge's
    verdict, the settings; `v` shows the exact prompt and the raw text instead, `w` scrolls to
    where the text turns unsafe."""

    BINDINGS = [Binding("v", "raw", "raw view"), Binding("w", "unsafe_from", "turns unsafe")]

    def __init__(self, sample_id: int) -> None:
        super().__init__()
        self.sample_id = sample_id
        self.raw_view = False
        self.body = Text()  # what the screen shows

    def compose(self) -> ComposeResult:
        yield self.titlebar(Text(f"sample {self.sample_id}"))
        with VerticalScroll():
            yield Static(id="body")
        yield KeyBar()

    def current_sample(self) -> int:
        return self.sample_id

    def action_raw(self) -> None:
        self.raw_view = not self.raw_view
        self.load()

    def action_unsafe_from(self) -> None:
        """Scroll to the first place a windowed judge found unsafe, if any."""
        starts = [span.start for span in self.body.spans if span.style == UNSAFE_FROM_STYLE]
        if starts:
            width = max(1, self.query_one("#body", Static).content_region.width)
            before = self.body[: min(starts)].wrap(self.app.console, width)
            self.query_one(VerticalScroll).scroll_to(y=max(0, len(before) - 1), animate=False)

    def load(self) -> None:
        d = self.db.sample_detail(self.sample_id)
        body = Text()

        def section(title: str, content: Text) -> None:
            body.append(f"\n── {title} ", style="bold")
            body.append("─" * max(0, 60 - len(title)), style="dim")
            body.append("\n")
            body.append_text(content or Text("(empty)", style="dim"))
            body.append("\n")

        body.append_text(
            plain(
                f"run {d.run_id} · prompt {d.prompt_id} · {d.mode} · k {d.k} · {d.status}"
                f" · {d.finish_reason or 'no finish reason'} · think {d.think_tokens} tok"
                f" · answer {d.answer_tokens} tok · "
                + ("–" if d.elapsed_s is None else f"{d.elapsed_s:.1f} s")
                + f" · seed {d.seed}"
            )
        )
        body.append("\n")
        body.append("injected text", style=INJECTED_STYLE)
        body.append(" · ")
        body.append("flagged unsafe", style=FLAG_STYLE)
        body.append("\n")
        if d.error:
            body.append_text(plain(f"error: {d.error}", "bold red"))
            body.append("\n")
        if d.thread is not None:
            t = d.thread
            name = f"conversation {t.conversation}" if t.conversation else "conversation"
            section(f"{name} · turn {t.turn} · branch k {d.k}", self._thread(t))
        section("prompt", plain(d.prompt))
        ranges = highlight_ranges(d.injected, d.flags) + _unsafe_from(d)
        if self.raw_view:
            section("rendered prompt", plain(d.rendered_prompt))
            section("raw", marked(d.raw, 0, len(d.raw), ranges))
        else:
            (t0, t1), (a0, a1) = trace_bounds(d.raw)
            section("thought", marked(d.raw, t0, t1, ranges))
            section("answer", marked(d.raw, a0, a1, ranges))
        section("verdicts", self._verdicts(d))
        if d.interventions:
            section("guard interventions", self._interventions(d))
        section(
            "settings",
            Text.assemble(
                "sampler ",
                settings(d.sampler),
                "\nmode ",
                settings(d.mode_params),
                "\nmode switches ",
                settings(d.mode_switches),
            ),
        )
        self.body = body
        self.query_one("#body", Static).update(body)

    @staticmethod
    def _interventions(d: SampleDetail) -> Text:
        """Each intervention of a guarded mode: what it did, where, on which judge's verdict on
        which sentence, and how many tokens after that sentence's end."""
        text = Text()
        for i in d.interventions:
            if text:
                text.append("\n")
            late = f"{i.latency_tokens} token{'s' * (i.latency_tokens != 1)}"
            text.append_text(plain(f"{i.number}. {i.action} at character {i.at}", "bold"))
            text.append_text(plain(f" · {i.judge} {i.part}: "))
            text.append_text(label(i.label))
            text.append_text(plain(f" · {late} after the flagged sentence"))
            if i.dropped_tokens is not None:
                text.append_text(plain(f" · dropped {i.dropped_tokens} tokens"))
            text.append("\n  ")
            text.append_text(plain(i.text.strip(), FLAG_STYLE))
        return text

    @staticmethod
    def _thread(thread: Thread) -> Text:
        """The turns before this one on its branch, oldest first: the user's text, then the
        answer (a generated turn's with its thought, mode, sample and verdicts)."""
        text = Text()
        if thread.system is not None:
            text.append_text(plain(f"system: {thread.system}", "dim"))
            text.append("\n")
        for turn in thread.earlier:
            head = f"turn {turn.turn}" + (
                "" if turn.sample_id is None else f" · {turn.mode} · sample {turn.sample_id}"
            )
            text.append_text(plain(head, "bold"))
            text.append("\n")
            text.append_text(plain(f"user: {turn.user}"))
            text.append("\n")
            if turn.thought:
                text.append_text(plain(f"thought: {turn.thought}", "dim"))
                text.append("\n")
            text.append_text(plain(f"assistant: {turn.answer}"))
            text.append("\n")
            for verdict in turn.verdicts:
                judge, part, found = verdict.rsplit(" ", 2)
                text.append_text(plain(f"  {judge} {part}: "))
                text.append_text(label(found))
                text.append("\n")
        return text

    @staticmethod
    def _verdicts(d: SampleDetail) -> Text:
        text = Text()
        if not d.judgements:
            return Text("not judged", style="dim")
        for j in d.judgements:
            if text:
                text.append("\n")
            text.append_text(plain(f"{j.judge} {j.judge_version}".strip(), "bold"))
            text.append(f" {j.part}: ")
            text.append_text(label(j.label))
            if j.score is not None:
                text.append(f" · score {j.score:.3f}")
            if j.categories:
                text.append(" · ")
                text.append_text(plain(", ".join(j.categories)))
            if j.truncated:
                text.append(" · text cut to fit the judge", style="yellow")
            if j.unsafe_offset is not None:
                text.append(
                    f" · unsafe from character {j.unsafe_offset} (w)", style=UNSAFE_FROM_STYLE
                )
            if j.raw:
                text.append("\n  ")
                text.append_text(plain(j.raw.strip().replace("\n", "\n  "), "dim"))
        for f in d.flags:
            text.append("\n")
            text.append_text(plain(f"flag {f.judge} {f.part} [{f.start}:{f.end}]: "))
            text.append_text(label(f.label))
            if f.categories:
                text.append_text(plain(" " + ", ".join(f.categories)))
        return text


def _unsafe_from(d: SampleDetail) -> list[tuple[int, int, str]]:
    """The raw ranges from where each windowed judge found a part turn unsafe to the part's end.
    A judge's offset counts in the part's judged text (its stored text, stripped), found in the
    raw text from the part's start; the full response starts where its thought (or, without
    one, its answer) does."""
    (t0, t1), (a0, a1) = trace_bounds(d.raw)
    starts = {}
    for part, text, begin, end in (("think", d.thought, t0, t1), ("answer", d.answer, a0, a1)):
        judged = (text or "").strip()
        at = d.raw.find(judged[:64], begin) if judged else -1
        if at >= 0:
            starts[part] = (at, end)
    first = starts.get("think") or starts.get("answer")
    if first:
        starts["full"] = (first[0], a1)
    found = []
    for j in d.judgements:
        if j.unsafe_offset is not None and j.part in starts:
            start, end = starts[j.part]
            found.append((min(start + j.unsafe_offset, end), end, UNSAFE_FROM_STYLE))
    return found
