"""`lrmscope report DB`: one self-contained HTML file of a database's runs, for people who will not
install lrmscope: the runs, the metrics tables (core/metrics.py), the trade-off
(core/tradeoff.py) and paired comparisons against the default mode (core/paired.py), the figures
(core/figures.py), and a slice of samples with their injected spans and flags marked.

Nothing here computes a metric: every number comes from the cores `lrmscope metrics` prints. The
page is rendered by Jinja with autoescaping on, every printed string made visible first
(lrmscope.text.visible: control and bidi characters as escapes), and it forbids itself any
script or request by its Content-Security-Policy: model text can never become markup or code,
and nothing is fetched. Figures are inline SVG images (data: URIs).
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from lrmscope import __version__
from lrmscope.core import agreement, metrics, paired, tradeoff
from lrmscope.core.review import ReviewDB, SampleDetail, pieces, trace_bounds
from lrmscope.errors import LrmscopeError
from lrmscope.store import counts as store_counts
from lrmscope.store import reads
from lrmscope.store.db import connect, now
from lrmscope.store.filters import SampleFilter
from lrmscope.text import visible
from lrmscope.vocab import DEFAULT_JUDGE, HUMAN

# The sample slices a report can show: what each selects, by the report's judge and part.
SLICES = {
    "thought-unsafe-answer-safe": "the thought judged unsafe, the answer safe",
    "unsafe": "judged unsafe",
    "judges-disagree": "two judges disagree (one safe, one unsafe)",
    "all": "every finished sample",
}
DEFAULT_SLICE = "thought-unsafe-answer-safe"
DEFAULT_SAMPLES = 50
INJECTED, FLAG = "injected", "flag"  # the marks of a sample's text (CSS classes)
METRIC_NAMES = {  # the paired comparisons' metrics as the tables name them
    "safe_at_1": "Safe@1",
    "safe_at_k": "Safe@K",
    "cons_safe_at_k": "ConsSafe@K",
    "refusal_at_1": "refusal",
    "comply_at_k": "Comply@K",
    "accuracy_at_1": "Acc@1",
    "pass_at_k": "Pass@K",
    "maj_at_k": "Maj@K",
}


@dataclass(frozen=True)
class ReportOptions:
    """What the report covers: these runs (none: every eval and compare run); `judge` (None: the
    default judge when it has verdicts, else the first by name) and `part` for the figures, the
    trade-off, the paired comparisons and the slice (agreement: `part`, every judge); `samples`
    samples of `slice`; the bootstrap's resamples and seed."""

    runs: tuple[int, ...] = ()
    judge: str | None = None
    part: str = "full"
    slice: str = DEFAULT_SLICE
    samples: int = DEFAULT_SAMPLES
    resamples: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class RunInfo:
    id: int
    kind: str
    title: str | None
    model: str
    modes: tuple[str, ...]
    dataset: str | None
    k: int | None
    n_samples: int
    status: str
    started_at: str
    ended_at: str | None
    backend: str | None
    seed: int | None
    sampler: dict
    mode_params: dict
    lrmscope_version: str | None
    judges: tuple[str, ...]


@dataclass(frozen=True)
class SampleView:
    """One sample of the slice, its text cut into (text, marks) pieces, each already visible."""

    detail: SampleDetail
    prompt: str
    thought: list[tuple[str, tuple[str, ...]]]
    answer: list[tuple[str, tuple[str, ...]]]
    verdicts: dict[str, dict[str, str]]


@dataclass(frozen=True)
class Report:
    database: str
    generated_at: str
    options: ReportOptions
    judge: str | None
    runs: tuple[RunInfo, ...]
    metrics: list[dict]
    by_category: list[dict]
    tradeoff: list[dict]
    paired: list[dict]
    agreement: list[agreement.Agreement]
    think_lengths: dict[str, dict[str, list[tuple[int, int]]]]  # mode, label: (length, n)
    slice_count: int
    samples: tuple[SampleView, ...]
    missing: list[str] = field(default_factory=list)  # what the report could not show, and why

    @property
    def modes(self) -> list[str]:
        """The modes of the metrics rows, in the study's order."""
        found = {row["mode"] for row in self.metrics}
        return sorted(found, key=lambda mode: (metrics.mode_rank(mode), mode))


def _loads(text: str | None) -> dict:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _runs(db: ReviewDB, conn: sqlite3.Connection, ids: Sequence[int]) -> tuple[RunInfo, ...]:
    settings = {row[0]: row[1:] for row in reads.run_settings(conn, ids)}
    found = []
    for run in sorted((r for r in db.runs() if r.id in settings), key=lambda r: r.id):
        backend, sampler, mode_params, seed, versions, ended_at = settings[run.id]
        found.append(
            RunInfo(
                run.id,
                run.kind,
                run.title,
                run.model,
                run.modes,
                run.dataset,
                run.k,
                run.n_samples,
                run.status,
                run.started_at,
                ended_at,
                backend,
                seed,
                _loads(sampler),
                _loads(mode_params),
                _loads(versions).get("lrmscope"),
                tuple(reads.judges(conn, (run.id,))),
            )
        )
    return tuple(found)


def _judge(runs: Sequence[RunInfo], asked: str | None) -> str | None:
    """The judge of the figures, trade-off and slice: the one asked (it must have verdicts on the
    runs), else the default judge when it has verdicts, else the first other than human, else
    human."""
    judges = sorted({judge for run in runs for judge in run.judges})
    if asked is not None:
        if asked not in judges:
            raise LrmscopeError(
                f"judge {visible(asked)!r} has no verdicts on these runs (judges there: "
                f"{', '.join(map(visible, judges)) or 'none; run lrmscope judge'})"
            )
        return asked
    if DEFAULT_JUDGE in judges:
        return DEFAULT_JUDGE
    others = [judge for judge in judges if judge != HUMAN]
    return next(iter(others or judges), None)


def _think_lengths(
    conn: sqlite3.Connection, ids: tuple[int, ...], judge: str, part: str
) -> dict[str, dict[str, list[tuple[int, int]]]]:
    """Per mode, safe and unsafe: how many samples had each thought length, (length, samples)
    shortest first, from the tallies. A judge with two versions on a mode: the version that
    judged the most samples of it (the metrics table has each)."""
    found: dict[str, dict[str, dict[str, list[tuple[int, int]]]]] = {}
    for mode, version, label, tokens, n in store_counts.think_length_counts(
        conn, SampleFilter(runs=ids, statuses=("done",)), judge=judge, part=part
    ):
        found.setdefault(mode, {}).setdefault(version, {}).setdefault(label, []).append((tokens, n))
    chosen = {}
    for mode in sorted(found, key=lambda m: (metrics.mode_rank(m), m)):
        versions = found[mode]
        version = max(
            versions, key=lambda v: (sum(n for h in versions[v].values() for _, n in h), v)
        )
        chosen[mode] = versions[version]
    return chosen


def _slice_filter(options: ReportOptions, runs: tuple[int, ...], judge: str | None):
    base = SampleFilter(runs=runs, statuses=("done",))
    if options.slice == "all":
        return base
    if judge is None:
        return None
    if options.slice == "unsafe":
        return SampleFilter(
            runs=runs, statuses=("done",), judge=judge, part=options.part, verdict="unsafe"
        )
    if options.slice == "judges-disagree":
        return SampleFilter(runs=runs, statuses=("done",), part=options.part, judges_disagree=True)
    return SampleFilter(runs=runs, statuses=("done",), judge=judge, thought_unsafe_answer_safe=True)


def _sample_view(detail: SampleDetail, verdicts: dict[str, dict[str, str]]) -> SampleView:
    ranges = [(start, end, INJECTED) for start, end, _kind, _text in detail.injected]
    ranges += [(f.start, f.end, FLAG) for f in detail.flags if f.label == "unsafe"]
    (t0, t1), (a0, a1) = trace_bounds(detail.raw)
    return SampleView(
        detail,
        visible(detail.prompt),
        pieces(detail.raw, t0, t1, ranges),
        pieces(detail.raw, a0, a1, ranges),
        verdicts,
    )


def build(path: str | Path, options: ReportOptions = ReportOptions()) -> Report:
    """Everything the report shows, read from the database at `path` (which must exist; an
    older schema is migrated on open, as every reading command does). Runs asked that it does
    not hold are left out (the command refuses them first)."""
    if options.slice not in SLICES:
        raise LrmscopeError(f"unknown slice {options.slice!r}; one of {', '.join(SLICES)}")
    db = ReviewDB(path)
    conn = connect(db.path)
    try:
        return _build(db, conn, options)
    finally:
        conn.close()
        db.close()


def _build(db: ReviewDB, conn: sqlite3.Connection, options: ReportOptions) -> Report:
    where = visible(str(db.path))
    ids = tuple(options.runs or reads.run_ids_of_kinds(conn, metrics.METRIC_KINDS))
    runs = _runs(db, conn, ids) if ids else ()
    judge = _judge(runs, options.judge)
    missing: list[str] = []
    report: dict[str, Any] = {
        "metrics": [],
        "by_category": [],
        "tradeoff": [],
        "paired": [],
        "agreement": [],
        "think_lengths": {},
    }
    if not ids:
        missing.append(
            "no eval or compare runs in this database (lrmscope eval makes one; --run N reports "
            "a run of another kind)"
        )
    elif judge is None:
        missing.append(
            f"no judgements on these runs: run `lrmscope judge {where}` for the metrics, the "
            "figures and the sample slice"
        )
    else:
        report.update(_judged(conn, options, ids, judge, missing))
    found = _slice_filter(options, ids, judge) if ids else None
    count, samples = 0, tuple[SampleView, ...]()
    if found is not None:
        count = db.count_samples(found)
        rows = db.sample_page(found, 0, options.samples)
        samples = tuple(_sample_view(db.sample_detail(row.id), row.verdicts) for row in rows)
    return Report(
        database=str(db.path),
        generated_at=now(),
        options=options,
        judge=judge,
        runs=runs,
        slice_count=count,
        samples=samples,
        missing=missing,
        **report,
    )


def _judged(
    conn: sqlite3.Connection,
    options: ReportOptions,
    ids: tuple[int, ...],
    judge: str,
    missing: list[str],
) -> dict[str, Any]:
    """The metrics, trade-off, paired comparisons, agreement and think lengths of judged runs."""
    filters = metrics.Filters(runs=ids)
    rows = metrics.metric_rows(conn, filters, resamples=options.resamples, seed=options.seed)
    if not rows:
        missing.append("no verdicts on finished samples of these runs: no metrics")
    by_category = metrics.metric_rows(
        conn,
        metrics.Filters(runs=ids, judges=(judge,), parts=(options.part,)),
        by_category=True,
        resamples=0,
    )
    try:
        trade = tradeoff.tradeoff_rows(conn, filters, judge, options.part, seed=options.seed)
    except LrmscopeError as exc:
        trade = []
        missing.append(f"trade-off: {exc}")
    modes = {row["mode"] for row in rows}
    differences: list[dict] = []
    if "default" in modes:
        for mode in sorted(modes - {"default"}, key=metrics.mode_rank):
            try:
                differences += map(
                    asdict,
                    paired.differences(
                        conn,
                        metrics.Filters(runs=ids, judges=(judge,), parts=(options.part,)),
                        paired.Sides("default", mode),
                        resamples=options.resamples,
                        seed=options.seed,
                    ),
                )
            except LrmscopeError as exc:
                missing.append(f"paired comparison default against {mode}: {exc}")
    else:
        missing.append("no default-mode samples: no paired comparison against the default mode")
    lengths = _think_lengths(conn, ids, judge, options.part)
    # One part: on 100,000 samples each part costs a self-join of its verdicts (0.6 s).
    agreed = agreement.agreements(conn, metrics.Filters(runs=ids, parts=(options.part,)))
    if not agreed:
        missing.append("one judge only: no judge agreement (judge the runs with another judge)")
    return {
        "metrics": rows,
        "by_category": by_category,
        "tradeoff": trade,
        "paired": differences,
        "agreement": agreed,
        "think_lengths": lengths,
    }


# -- HTML ------------------------------------------------------------------------------------------


def _finalize(value: object) -> object:
    """Every string the page prints, made visible before Jinja escapes it."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value)
    return value


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _interval(value: Sequence[float] | None) -> str:
    return "–" if not value else f"{value[0]:.3f}–{value[1]:.3f}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lrmscope", "data"),
        autoescape=True,
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["interval"] = _interval
    env.filters["settings"] = lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True)
    return env


def render_html(report: Report, figures: Sequence[Any]) -> str:
    """The page: `figures` are core/figures.py Figures, shown inline as SVG images."""
    images = [
        {
            "name": figure.name,
            "title": figure.title,
            "caption": figure.caption,
            "uri": "data:image/svg+xml;base64," + base64.b64encode(figure.svg).decode("ascii"),
        }
        for figure in figures
    ]
    template = _environment().get_template("report.html.j2")
    return template.render(
        report=report,
        figures=images,
        slices=SLICES,
        version=__version__,
        cons_safe_rule=metrics.CONS_SAFE_RULE,
        unparsed_rule=metrics.UNPARSED_RULE,
        refusal_kinds=metrics.REFUSAL_KINDS,
        metric_names=METRIC_NAMES,
        agreement_rule=agreement.RULE,
    )
