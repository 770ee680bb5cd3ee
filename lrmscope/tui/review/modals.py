"""The review app's dialogs: a line of text, a yes/no question, the sample filter, a human label,
an export, and the list of keys."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Select, Static

from lrmscope.core.review import SampleFilter
from lrmscope.tui.review.text import plain
from lrmscope.vocab import LABELS, PARTS

MODAL_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{ width: 72; height: auto; border: round $accent; padding: 1 2;
                    background: $surface; }}
{name} .hint {{ color: $text-muted; }}
"""
TOGGLES = (
    ("thought_unsafe_answer_safe", "thought unsafe, answer safe"),
    ("judges_disagree", "judges disagree"),
    ("unlabelled", "no human label"),
    ("interrupted", "interrupted"),
)
EXPORT_FORMATS = ("jsonl", "csv")


class AskText(ModalScreen[str | None]):
    """One line of text (a title, a search, a path); None when cancelled."""

    BINDINGS = [Binding("escape", "dismiss(None)", "cancel")]
    DEFAULT_CSS = MODAL_CSS.format(name="AskText")

    def __init__(self, question: Text, value: str = "") -> None:
        super().__init__()
        self.question = question
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question)
            yield Input(self.value)
            yield Static(Text("enter: ok · escape: cancel"), classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())


class Confirm(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "dismiss(True)", "yes"),
        Binding("n,escape", "dismiss(False)", "no"),
    ]
    DEFAULT_CSS = MODAL_CSS.format(name="Confirm")

    def __init__(self, question: Text) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question)
            yield Static(Text("y: yes · n: no"), classes="hint")


class FilterScreen(ModalScreen[SampleFilter | None]):
    """Mode, judge, part, verdict (blank: any) and the toggles, over the current filter."""

    BINDINGS = [
        Binding("ctrl+s", "apply", "apply"),
        Binding("ctrl+r", "reset", "clear all"),
        Binding("escape", "dismiss(None)", "cancel"),
    ]
    DEFAULT_CSS = MODAL_CSS.format(name="FilterScreen")

    def __init__(self, current: SampleFilter, modes: list[str], judges: list[str]) -> None:
        super().__init__()
        self.current = current
        self.choices = {"mode": modes, "judge": judges, "part": list(PARTS), "verdict": LABELS}

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("filter samples", style="bold"))
            for name, values in self.choices.items():
                chosen = getattr(self.current, name)
                yield Select(
                    [(plain(value), value) for value in values],
                    prompt=f"{name}: any",
                    value=chosen if chosen in values else Select.NULL,
                    id=name,
                )
            for name, text in TOGGLES:
                yield Checkbox(text, getattr(self.current, name), id=name)
            yield Static(
                Text(
                    "judge and part narrow the verdict, 'thought unsafe, answer safe' and "
                    "'judges disagree' (blank: any)\n"
                    "ctrl+s: apply · ctrl+r: clear all · escape: cancel"
                ),
                classes="hint",
            )

    def action_reset(self) -> None:
        for name in self.choices:
            self.query_one(f"#{name}", Select).clear()
        for name, _ in TOGGLES:
            self.query_one(f"#{name}", Checkbox).value = False

    def action_apply(self) -> None:
        chosen = {}
        for name in self.choices:
            value = self.query_one(f"#{name}", Select).value
            chosen[name] = None if value is Select.NULL else value
        for name, _ in TOGGLES:
            chosen[name] = self.query_one(f"#{name}", Checkbox).value
        self.dismiss(replace(self.current, **chosen))


class LabelScreen(ModalScreen[tuple[str, str] | None]):
    """A human label on one part: pick the part (t, a, f), then safe, unsafe or clear."""

    BINDINGS = [
        Binding("t", "part('think')", "thought"),
        Binding("a", "part('answer')", "answer"),
        Binding("f", "part('full')", "full"),
        Binding("s", "label('safe')", "safe"),
        Binding("u", "label('unsafe')", "unsafe"),
        Binding("x", "label('clear')", "clear"),
        Binding("escape", "dismiss(None)", "cancel"),
    ]
    DEFAULT_CSS = MODAL_CSS.format(name="LabelScreen")

    def __init__(self, sample_id: int) -> None:
        super().__init__()
        self.sample_id = sample_id
        self.part = "full"

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(id="choice")
            yield Static(
                Text(
                    "t: thought · a: answer · f: full response\n"
                    "s: safe · u: unsafe · x: clear the label · escape: cancel"
                ),
                classes="hint",
            )

    def on_mount(self) -> None:
        self._show()

    def _show(self) -> None:
        line = Text(f"human label of sample {self.sample_id}, part: ")
        for part in PARTS:
            line.append(f" {part} ", style="reverse bold" if part == self.part else "")
        self.query_one("#choice", Static).update(line)

    def action_part(self, part: str) -> None:
        self.part = part
        self._show()

    def action_label(self, label: str) -> None:
        self.dismiss((self.part, label))


class ExportScreen(ModalScreen[tuple[str, Path] | None]):
    """Format and file of an export of the current selection."""

    BINDINGS = [Binding("escape", "dismiss(None)", "cancel")]
    DEFAULT_CSS = MODAL_CSS.format(name="ExportScreen")

    def __init__(self, what: Text) -> None:
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text.assemble(("export ", "bold"), self.what))
            yield Select(
                [(f, f) for f in EXPORT_FORMATS], value="jsonl", allow_blank=False, id="format"
            )
            yield Input(str(Path.cwd() / "lrmscope-export.jsonl"), id="path")
            yield Static(Text("enter: export · escape: cancel"), classes="hint")

    def on_select_changed(self, event: Select.Changed) -> None:
        path = self.query_one("#path", Input)
        path.value = str(Path(path.value).with_suffix(f".{event.value}"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            fmt = self.query_one("#format", Select).value
            self.dismiss((fmt, Path(event.value.strip()).expanduser()))


HELP = """\
everywhere    ?  this help · escape  back · q  quit
runs          enter  open the run (or the runs marked with space) · space  mark a run
              R  rename · D  delete · m  metrics · e  export
samples       enter  the sample · p  all samples of its prompt · f  filter · /  search
              o  sort by id, think tokens, time, start · O  reverse the order
              m  metrics of the runs · e  export the samples that match
human labels  s  safe · u  unsafe · x  clear (the full response)
              l  label the thought, the answer or the full response
sample        v  raw view (the exact prompt and the raw text) · labels as above
metrics       j  next judge · t  next part (plots)
The screens update by themselves while a running eval writes to the database."""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss(None)", "close")]
    DEFAULT_CSS = (
        "HelpScreen { align: center middle; } HelpScreen > Static { width: 96; "
        "height: auto; border: round $accent; padding: 1 2; background: $surface; }"
    )

    def compose(self) -> ComposeResult:
        yield Static(Text(HELP))
