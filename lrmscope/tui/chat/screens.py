"""The chat's dialogs: the keys, and the settings for the next turns."""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from lrmscope.engine.settings import ModeSettings, SamplerSettings
from lrmscope.errors import LrmscopeError


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "close")]
    DEFAULT_CSS = (
        "HelpScreen { align: center middle; } HelpScreen > Static { width: 64; "
        "border: round $accent; padding: 1 2; background: $surface; }"
    )

    def compose(self) -> ComposeResult:
        lines = [
            "enter      send the prompt",
            "f2 .. f5   mode: default, ZeroThink, LessThink, MoreThink",
            "           (while the model thinks: applies at once)",
            "f6         re-run the last prompt under the current mode",
            "f7         settings: sampling and thinking budgets for the next turns",
            "f8         while the model thinks: type a text to inject into the",
            "           thought at the next token (enter: inject, escape: cancel)",
            "f9         mode: the modes file's modes, in turn (--modes-file)",
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
            whole = {
                k: int(v) for k, v in values.items() if k not in ("temperature", "top_p") and v
            }
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
