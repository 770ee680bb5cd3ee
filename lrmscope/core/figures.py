"""The report's figures, drawn by matplotlib in one style (STYLE): Safe@1 by mode with its
interval, thought lengths of safe and unsafe samples, Safe@1 per category, judge agreement, and
safety against accuracy per mode. Each is drawn from a core/report.py Report (numbers the metrics
cores computed) and saved as SVG (vector, for the page and papers) and PNG (FIGSIZE at DPI).

A figure whose data is missing is still drawn, saying what is missing, so a report and a figures
folder always hold the same five. Figures are made without pyplot (no global state, no GUI
backend); model text never reaches them, only names of modes, judges, runs and categories, which
are made visible (control and bidi characters as escapes) and drawn as plain text (mathtext is
off: STYLE `text.parse_math`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from lrmscope.core import metrics
from lrmscope.core.report import Report
from lrmscope.errors import LrmscopeError
from lrmscope.text import visible

FIGSIZE = (6.4, 4.0)  # inches
DPI = 150  # PNG: 960 x 600 pixels
# Okabe and Ito's colour-blind-safe palette: modes in the study's order, then the rest.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P")  # runs, in the trade-off's points
SAFE_COLOR, UNSAFE_COLOR = "#009E73", "#D55E00"
STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "svg.fonttype": "path",  # glyphs as paths: the SVG needs no font
    "svg.hashsalt": "lrmscope",  # ids the same from run to run
    "text.parse_math": False,  # a `$` in a name is a dollar, not TeX
}


@dataclass(frozen=True)
class Figure:
    name: str  # the file name, without extension
    title: str
    caption: str
    svg: bytes
    png: bytes | None = None


def _new():
    from matplotlib.figure import Figure as MplFigure

    return MplFigure(figsize=FIGSIZE, dpi=DPI, layout="constrained")


def _name(value: object) -> str:
    """A name from the database (a judge, mode, category, version) as the figures draw it:
    control and bidi characters as escapes, as everywhere untrusted text is shown."""
    return visible(str(value))


def _judged_by(report: Report) -> str:
    return f"{_name(report.judge)}, {report.options.part}"


def _note(ax, text: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, color="#555555")


def _colors(names: Sequence[str]) -> dict[str, str]:
    return {name: PALETTE[index % len(PALETTE)] for index, name in enumerate(names)}


def _safe_at_1(report: Report, fig) -> None:
    """Per part a panel: per mode, a bar per run (and judge version) with its 95% interval."""
    rows = [
        row
        for row in report.metrics
        if row["judge"] == report.judge
        and row["prompt_kind"] not in ("benign", "reasoning")
        and row["safe_at_1"] is not None
    ]
    if not rows:
        _note(fig.add_subplot(), "no Safe@1: no judged harmful or unknown prompts")
        return
    parts = [part for part in ("think", "answer", "full") if any(r["part"] == part for r in rows)]
    modes = report.modes
    series = sorted({(r["run_id"], r["judge_version"]) for r in rows})
    colors = _colors([_name(f"run {run} {version}") for run, version in series])
    axes = fig.subplots(1, len(parts), sharey=True, squeeze=False)[0]
    width = 0.8 / len(series)
    for ax, part in zip(axes, parts):
        for index, (run, version) in enumerate(series):
            xs, ys, low, high = [], [], [], []
            for x, mode in enumerate(modes):
                for r in rows:
                    if (r["run_id"], r["judge_version"], r["mode"], r["part"]) == (
                        run,
                        version,
                        mode,
                        part,
                    ):
                        ci = r["safe_at_1_ci"] or (r["safe_at_1"], r["safe_at_1"])
                        xs.append(x - 0.4 + width * (index + 0.5))
                        ys.append(r["safe_at_1"])
                        low.append(r["safe_at_1"] - ci[0])
                        high.append(ci[1] - r["safe_at_1"])
            label = _name(f"run {run} {version}")
            ax.bar(xs, ys, width * 0.9, color=colors[label], label=label)
            ax.errorbar(xs, ys, yerr=[low, high], fmt="none", ecolor="#333333", capsize=2, lw=0.8)
        ax.set_title(part)
        ax.set_xticks(range(len(modes)), [_name(mode) for mode in modes], rotation=20)
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel(f"Safe@1 ({_name(report.judge)})")
    if len(series) > 1:
        axes[-1].legend(fontsize=7)


def box_stats(histogram: Sequence[tuple[int, int]]) -> dict[str, float]:
    """A box plot's numbers (matplotlib's bxp) of values given as (value, how many) pairs sorted
    by value: the median, the quartiles (the values at ranks (n-1)/4 rounded down and 3(n-1)/4
    rounded up, so the box holds the median), and whiskers at the furthest values within 1.5 IQR
    of the box."""
    n = sum(count for _, count in histogram)
    ranks = [(n - 1) // 4, (n - 1) // 2, n // 2, -(-3 * (n - 1) // 4)]  # q3 rounds up
    at = dict(zip(sorted(ranks), metrics.ranked(histogram, sorted(ranks))))
    q1, low_median, high_median, q3 = (at[rank] for rank in ranks)
    reach = 1.5 * (q3 - q1)
    inside = [value for value, _ in histogram if q1 - reach <= value <= q3 + reach]
    return {
        "q1": q1,
        "med": (low_median + high_median) / 2,
        "q3": q3,
        "whislo": min(inside),
        "whishi": max(inside),
    }


def _think_lengths(report: Report, fig) -> None:
    """Per mode, box plots of the think tokens of samples judged safe and of those unsafe."""
    lengths = {
        mode: found
        for mode, found in report.think_lengths.items()
        if found.get("safe") or found.get("unsafe")
    }
    ax = fig.add_subplot()
    if not lengths:
        _note(ax, "no judged samples with a thought length")
        return
    positions, stats, colors, ticks = [], [], [], []
    for x, (mode, found) in enumerate(lengths.items()):
        ticks.append(mode)
        for offset, label, color in ((-0.2, "safe", SAFE_COLOR), (0.2, "unsafe", UNSAFE_COLOR)):
            if found.get(label):
                positions.append(x + offset)
                stats.append(box_stats(found[label]))
                colors.append(color)
    boxes = ax.bxp(stats, positions=positions, widths=0.35, patch_artist=True, showfliers=False)
    for patch, color in zip(boxes["boxes"], colors):
        patch.set_facecolor(color)
        patch.set_alpha(0.75)
    for median in boxes["medians"]:
        median.set_color("#222222")
    ax.set_xticks(range(len(ticks)), [_name(tick) for tick in ticks])
    ax.set_ylabel("thought length (tokens)")
    ax.set_title(f"thought length of samples judged safe and unsafe ({_judged_by(report)})")
    from matplotlib.patches import Patch

    ax.legend(
        handles=[Patch(color=SAFE_COLOR, label="safe"), Patch(color=UNSAFE_COLOR, label="unsafe")]
    )


def _categories(report: Report, fig) -> None:
    """Safe@1 per prompt category (rows) and mode (columns), as a heat map with its values."""
    rows = [row for row in report.by_category if row["safe_at_1"] is not None]
    ax = fig.add_subplot()
    if not rows:
        _note(ax, "no Safe@1 per category: no judged harmful or unknown prompts")
        return
    categories = sorted({row["category"] or "(none)" for row in rows})
    modes = [mode for mode in report.modes if any(row["mode"] == mode for row in rows)]
    grid: list[list[float]] = [[float("nan")] * len(modes) for _ in categories]
    for row in rows:
        i, j = categories.index(row["category"] or "(none)"), modes.index(row["mode"])
        grid[i][j] = row["safe_at_1"]  # several runs: the last one's (the table has each)
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
    for i, values in enumerate(grid):
        for j, value in enumerate(values):
            if value == value:  # not NaN: the category has this mode
                color = "white" if value < 0.2 or value > 0.85 else "black"
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(len(modes)), [_name(mode) for mode in modes])
    ax.set_yticks(range(len(categories)), [_name(c[:40]) for c in categories])
    ax.grid(False)
    ax.set_title(f"Safe@1 per category ({_judged_by(report)})")
    fig.colorbar(image, ax=ax, label="Safe@1")


def _agreement(report: Report, fig) -> None:
    """Per part, how often each pair of judges agrees: a matrix of judges with the share."""
    ax = fig.add_subplot()
    if not report.agreement:
        _note(ax, "one judge only: no agreement to show (judge the runs with another judge)")
        return
    labels = [
        _name(f"{a.judge_a} {a.version_a} × {a.judge_b} {a.version_b} ({a.part})")
        for a in report.agreement
    ]
    values = [a.agreement if a.agreement is not None else 0.0 for a in report.agreement]
    ys = range(len(labels))
    ax.barh(ys, values, color=PALETTE[0])
    for y, a in zip(ys, report.agreement):
        ax.text(
            min(values[y], 1.0) + 0.01,
            y,
            f"{_pct(a.agreement)} of {a.n} (κ {_kappa(a.kappa)})",
            va="center",
            fontsize=7,
        )
    ax.set_yticks(list(ys), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("share of sample parts where the two judges agree")
    ax.set_title("judge agreement")


def _kappa(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _tradeoff(report: Report, fig) -> None:
    """Each mode as a point: Safe@1 on harmful prompts across, Accuracy@1 on reasoning prompts
    up (left), and compliance on benign prompts, 1 - refusal share, up (right)."""
    by_key: dict[tuple, dict[str, Any]] = {}
    for row in report.tradeoff:
        point = by_key.setdefault((row["run_id"], row["mode"]), {})
        for key in ("safe_at_1", "accuracy_at_1", "refusal_at_1"):
            if row[key] is not None:
                point[key] = row[key]
    modes = _colors(report.modes or sorted({mode for _, mode in by_key}))
    axes = fig.subplots(1, 2, sharex=True)
    for ax, key, name in (
        (axes[0], "accuracy_at_1", "Accuracy@1 (reasoning prompts)"),
        (axes[1], "refusal_at_1", "compliance, 1 - refusal (benign prompts)"),
    ):
        points = [
            (run, mode, point["safe_at_1"], point[key])
            for (run, mode), point in by_key.items()
            if "safe_at_1" in point and key in point
        ]
        if not points:
            what = "reasoning" if key == "accuracy_at_1" else "judged benign"
            _note(ax, f"no {what} prompts with Safe@1 in these runs")
            continue
        runs = sorted({run for run, *_ in points})
        for run, mode, x, y in points:
            label = _name(mode if len(runs) == 1 else f"{mode} (run {run})")
            marker = MARKERS[runs.index(run) % len(MARKERS)]
            y = 1 - y if key == "refusal_at_1" else y
            color = modes.get(mode, PALETTE[-1])
            ax.scatter([x], [y], color=color, marker=marker, s=40, zorder=3, label=label)
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel(f"Safe@1 ({_judged_by(report)})")
        ax.set_ylabel(name)
        ax.legend(fontsize=7, loc="best")


# name, title, caption, drawing function
FIGURES = (
    (
        "safe_at_1_by_mode",
        "Safe@1 by mode",
        "Safe@1 per decoding mode and judged part, with its 95% bootstrap interval over prompts "
        "(harmful and unknown prompts).",
        _safe_at_1,
    ),
    (
        "think_lengths",
        "Thought length of safe and unsafe samples",
        "The thought length in tokens of samples judged safe and of those judged unsafe, per "
        "mode (boxes: quartiles, whiskers: 1.5 IQR; the study found unsafe thoughts longer).",
        _think_lengths,
    ),
    (
        "categories",
        "Safe@1 per category",
        "Safe@1 per prompt category and mode.",
        _categories,
    ),
    (
        "judge_agreement",
        "Judge agreement",
        "The share of sample parts two judges both labelled (safe or unsafe) on which they agree.",
        _agreement,
    ),
    (
        "safety_vs_accuracy",
        "Safety against accuracy",
        "Each mode as a point: Safe@1 on harmful prompts against Accuracy@1 on reasoning prompts "
        "and against compliance on benign prompts (core/tradeoff.py).",
        _tradeoff,
    ),
)


def draw(report: Report, *, png: bool = False) -> list[Figure]:
    """Every figure of the report, as SVG (and PNG when asked)."""
    import matplotlib

    found = []
    with matplotlib.rc_context(cast(Any, STYLE)):  # its keys are typed as literals
        for name, title, caption, function in FIGURES:
            fig = _new()
            function(report, fig)
            svg = io.BytesIO()
            fig.savefig(svg, format="svg", metadata={"Date": None})
            image = None
            if png:
                buffer = io.BytesIO()
                fig.savefig(buffer, format="png", dpi=DPI)
                image = buffer.getvalue()
            found.append(Figure(name, title, caption, svg.getvalue(), image))
    return found


def write(figures: Sequence[Figure], folder: Path) -> list[Path]:
    """Each figure as NAME.svg and NAME.png in `folder` (made if missing; its parent must exist),
    each file written whole or not at all."""
    from lrmscope.core.export import atomic_output

    check_folder(folder)
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise LrmscopeError(
            f"cannot make the folder {folder} ({exc.strerror}); choose another --figures"
        ) from None
    written = []
    for figure in figures:
        for suffix, data in ((".svg", figure.svg), (".png", figure.png)):
            if data is not None:
                path = folder / f"{figure.name}{suffix}"
                with atomic_output(path, binary=True) as out:
                    out.write(data)
                written.append(path)
    return written


def check_folder(folder: Path) -> None:
    """One line if `folder` cannot take the figures: a file, or its parent missing (call it
    before slow work)."""
    if folder.exists() and not folder.is_dir():
        raise LrmscopeError(f"--figures {folder} is a file; give a folder")
    if not folder.parent.is_dir():
        raise LrmscopeError(
            f"--figures: the folder {folder.parent} does not exist; create it or choose another"
        )
