"""How every screen marks things, defined once: injected text, unsafe flags, verdict labels, and
the decoding modes' names."""

from __future__ import annotations

from lrmscope.engine.settings import AnyMode, Mode
from lrmscope.text import INJECTED_STYLE

__all__ = [
    "FLAG_STYLE",
    "INJECTED_STYLE",
    "UNSAFE_FROM_STYLE",
    "LABEL_STYLES",
    "MODE_LABELS",
    "mode_label",
]

FLAG_STYLE = "white on dark_red"
# Where a windowed judge found a part turn unsafe: from there to the part's end.
UNSAFE_FROM_STYLE = "underline red"
LABEL_STYLES = {"safe": "green", "unsafe": "bold red", "unparsed": "yellow"}
MODE_LABELS = {
    Mode.DEFAULT: "default",
    Mode.ZEROTHINK: "ZeroThink",
    Mode.LESSTHINK: "LessThink",
    Mode.MORETHINK: "MoreThink",
}


def mode_label(mode: AnyMode) -> str:
    """A study mode's label, or a mode of your own's name."""
    return MODE_LABELS[mode] if isinstance(mode, Mode) else mode.value
