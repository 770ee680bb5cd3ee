"""Untrusted text made inert for a terminal: model output, prompts, dataset rows, GGUF metadata
and error messages that quote them are shown, never obeyed."""

from __future__ import annotations

import re

# How engine-written text (prefills, rethinks, forced closes) is marked, in terminal and TUI.
INJECTED_STYLE = "bold black on yellow"

# C0 and C1 controls (but newline and tab), DEL, and the bidirectional marks, embeddings,
# overrides and isolates that can make a line read differently from what it holds.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """The text with every control character except newline and tab (and every bidi control)
    shown as an escape: `\\x1b`, `\\u202e`."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
