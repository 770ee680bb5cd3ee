"""Rich `Text` for the review screens: table cells, a sample's text with its injected spans and
flags styled by raw offsets, and terminal plots drawn with block characters.

Everything from the database (prompts, model output, judge output, titles) goes through `plain`
or `marked`: control characters become visible escapes and nothing is parsed as markup.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from rich.text import Text

from lrmscope.core.review import pieces
from lrmscope.text import visible
from lrmscope.tui.styles import FLAG_STYLE, INJECTED_STYLE, LABEL_STYLES
from lrmscope.vocab import PARTS

PART_LETTERS = {"think": "T", "answer": "A", "full": "F"}
LABEL_MARKS = {"safe": "✓", "unsafe": "✗", "unparsed": "?"}
SAFE_STYLE = "green"
UNSAFE_STYLE = "red"
EIGHTHS = " ▏▎▍▌▋▊▉"


def plain(value: object, style: str = "") -> Text:
    """Untrusted or not, a value shown as it is (None as a dash)."""
    return Text("–" if value is None else visible(str(value)), style=style)


def one_line(text: str, width: int) -> Text:
    """The start of a text on one line (a prompt in a table cell)."""
    flat = " ".join(text.split())
    return plain(flat if len(flat) <= width else flat[: width - 1] + "…")


def number(value: float | None, digits: int = 3) -> Text:
    return Text("–" if value is None else f"{value:.{digits}f}", justify="right")


def whole(value: int | None) -> Text:
    return Text("–" if value is None else f"{value:,}", justify="right")


def seconds(value: float | None) -> Text:
    return Text("–" if value is None else f"{value:.1f} s", justify="right")


def label(value: str) -> Text:
    return plain(value, LABEL_STYLES.get(value, ""))


def verdicts(found: dict[str, dict[str, str]]) -> Text:
    """A sample's verdicts in one cell: `human F✓ · rs-match T✗ A✓ F✗` (human labels first)."""
    cell = Text()
    for judge in sorted(found, key=lambda name: (name != "human", name)):
        if cell:
            cell.append(" · ", style="dim")
        cell.append_text(plain(judge, "bold" if judge == "human" else ""))
        for part in PARTS:
            value = found[judge].get(part)
            if value is not None:
                cell.append(
                    f" {PART_LETTERS[part]}{LABEL_MARKS.get(value, '?')}",
                    style=LABEL_STYLES.get(value, ""),
                )
    return cell


def marked(raw: str, start: int, end: int, ranges: Iterable[tuple[int, int, str]]) -> Text:
    """raw[start:end] with each (start, end, style) range of raw offsets styled (core/review.py
    `pieces`: escapes never shift the styles)."""
    text = Text()
    for piece, styles in pieces(raw, start, end, ranges):
        text.append(piece, style=" ".join(styles))
    return text


def highlight_ranges(injected: Sequence, flags: Sequence) -> list[tuple[int, int, str]]:
    """Injected spans and unsafe flags as styled raw ranges."""
    found = [(start, end, INJECTED_STYLE) for start, end, _kind, _text in injected]
    found += [(f.start, f.end, FLAG_STYLE) for f in flags if f.label == "unsafe"]
    return found


def settings(value: object) -> Text:
    """Stored settings (a dict or list) as one line of JSON."""
    return plain(json.dumps(value, ensure_ascii=False, sort_keys=True))


def bar(share: float, width: int) -> str:
    """A horizontal bar of `share` (0..1) of `width` cells, to an eighth of a cell."""
    eighths = round(max(0.0, min(1.0, share)) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (EIGHTHS[rest] if rest else "")


def bars(values: Sequence[tuple[str, float | None]], width: int = 40) -> Text:
    """One bar per (name, value in 0..1), with its value."""
    text = Text()
    pad = max((len(name) for name, _ in values), default=0)
    for name, value in values:
        if text:
            text.append("\n")
        text.append_text(plain(name.ljust(pad)))
        text.append(" │")
        if value is None:
            text.append(" –", style="dim")
            continue
        text.append(bar(value, width).ljust(width), style=SAFE_STYLE)
        text.append(f" {value:.3f}")
    return text


def histograms(lengths: dict[str, list[int]], bins: int = 10, width: int = 30) -> Text:
    """The think-length distributions of safe and unsafe samples over the same bins; a bar is the
    share of its group in the bin, so groups of different sizes compare."""
    groups = [(name, lengths.get(name, [])) for name in ("safe", "unsafe")]
    every = [value for _, values in groups for value in values]
    if not every:
        return Text("no judged samples with a think length", style="dim")
    low, high = min(every), max(every)
    step = max(1, -(-(high - low + 1) // bins))
    count = (high - low) // step + 1
    shares = {}
    for name, values in groups:
        counts = [0] * count
        for value in values:
            counts[(value - low) // step] += 1
        shares[name] = [(c, c / len(values) if values else 0.0) for c in counts]
    top = max(share for rows in shares.values() for _, share in rows) or 1.0
    edge = len(str(low + count * step))
    text = Text()
    for name, values in groups:
        style = SAFE_STYLE if name == "safe" else UNSAFE_STYLE
        if text:
            text.append("\n\n")
        text.append(f"{name} ({len(values)} samples)", style=f"bold {style}")
        for index, (n, share) in enumerate(shares[name]):
            start = low + index * step
            text.append(f"\n{start:>{edge}}-{start + step - 1:<{edge}} │")
            text.append(bar(share / top, width).ljust(width), style=style)
            text.append(f" {n}")
    return text
