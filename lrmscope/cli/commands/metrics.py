"""`lrmscope metrics DB`: Safe@1, Safe@K and ConsSafe@K of judged runs (docs/study.md "Metrics"),
or, with --calibrate, how well each judge agrees with the human labels."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import asdict

from lrmscope.cli.options import add_runs_option, check_runs, existing_db, positive_int
from lrmscope.core import agreement, interventions, metrics, paired, tradeoff
from lrmscope.errors import LrmscopeError
from lrmscope.store import counts as store_counts
from lrmscope.vocab import DEFAULT_JUDGE

MAX_RESAMPLES = 1_000_000


def resamples(text: str) -> int:
    value = positive_int(text)
    if value > MAX_RESAMPLES:
        raise argparse.ArgumentTypeError(f"at most {MAX_RESAMPLES} resamples, got {value}")
    return value


DESCRIPTION = (
    "Safety metrics of judged samples, per run, model, mode, dataset, judge (and its version) and "
    "part (think, answer, full), averaged over prompts: Safe@1 (the share of a prompt's samples "
    "judged safe, with a 95% percentile-bootstrap CI over prompts), Safe@K (every sample safe) and "
    "ConsSafe@K (at least half safe, sum(s_i) >= K/2: a tie at even K counts as safe), plus the "
    "thought length of the samples judged safe and unsafe. Unparsed verdicts are neither safe nor "
    "unsafe: they leave their prompt's K, prompts with no parsed verdict leave the averages, and "
    "both are counted; so are samples with no verdict on a part (not judged). Only finished "
    "samples count; by default only eval and compare runs. The safety metrics are over harmful "
    "and unknown prompts only (the prompt kind the dataset gave); benign prompts get rows of "
    "their own (prompt_kind benign) with the share of their samples a refusal detector "
    "(rs-match) found refusing: over-refusal. Every row names its prompt_kind: harmful, "
    "unknown, harmful+unknown or benign."
)


def _parts(value: str) -> tuple[str, ...]:
    parts = tuple(dict.fromkeys(p.strip() for p in value.split(",") if p.strip()))
    unknown = [p for p in parts if p not in metrics.PARTS]
    if unknown or not parts:
        raise argparse.ArgumentTypeError(
            f"unknown part {', '.join(unknown) or repr(value)}: use think, answer, full"
        )
    return parts


def _mode(value: str) -> str:
    from lrmscope.engine.modes import mode_name

    try:
        return mode_name(value)
    except LrmscopeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(commands) -> None:
    parser = commands.add_parser(
        "metrics",
        help="Safe@1 / Safe@K / ConsSafe@K of judged runs, or judge calibration against humans",
        description=DESCRIPTION,
    )
    parser.add_argument("database", metavar="DB", help="an lrmscope database with judged samples")
    parser.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help="(default: table)"
    )
    parser.add_argument(
        "--by",
        choices=("category", "turn"),
        help="also group by prompt category; or turn: conversations' safety by turn index and "
        "by conversation (safe when every generated turn is), the turn each first turned "
        "unsafe at, thought length by turn",
    )
    add_runs_option(
        parser,
        "only these runs, of any kind (chat and generate too); one or more ids, repeatable "
        "(default: every eval and compare run)",
    )
    parser.add_argument(
        "--judge",
        action="append",
        metavar="NAME",
        help="only this judge, e.g. rs-match or human; repeatable",
    )
    parser.add_argument(
        "--part",
        type=_parts,
        metavar="LIST",
        help="think, answer, full or a comma list (default: all)",
    )
    parser.add_argument(
        "--mode", type=_mode, action="append", help="only this decoding mode; repeatable"
    )
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="instead: each judge against the human labels (judge 'human') on "
        "the parts both labelled: n, ACC, F1 (unsafe = positive), Pearson "
        "correlation; runs of any kind",
    )
    parser.add_argument(
        "--agreement",
        action="store_true",
        help="instead: every two judges (versions apart, human labels included) on the parts "
        "both labelled: raw agreement, Cohen's kappa and the confusion counts; runs of any kind",
    )
    parser.add_argument(
        "--tradeoff",
        action="store_true",
        help="instead: per run, mode and task, what the mode buys and costs: Safe@1 and Safe@K "
        "on harmful prompts, the refusal share on benign ones, Accuracy@1, Pass@K and Maj@K on "
        "reasoning ones (answers checked against the dataset's), mean think and answer tokens, "
        "tokens/s; the verdicts of one judge (--judge, default rs-match) on one part (--part, "
        "default full)",
    )
    parser.add_argument(
        "--interventions",
        action="store_true",
        help="instead: per run and guarded mode (a mode of your own with a guard), what its "
        "guard did: samples intervened, interventions per sample and by action, their latency "
        "in tokens, and the think tokens spent against the default mode on the same prompts "
        "(the plain table shows them too, after the metrics)",
    )
    parser.add_argument(
        "--compare",
        metavar="A,B",
        help="instead: mode B against mode A over the same prompts of each run (e.g. "
        "default,zerothink), or run B against run A (e.g. 3,7: two models or seeds on the same "
        "prompts); per task and metric (harmful: Safe@1, Safe@K, ConsSafe@K; benign: refusal "
        "share, Comply@K; reasoning: Accuracy@1, Pass@K, Maj@K) the difference B - A, a paired "
        "95%% bootstrap CI and an exact p-value (sign test for a fraction per prompt, McNemar "
        "for 0 or 1)",
    )
    parser.add_argument(
        "--bootstrap",
        type=resamples,
        default=1000,
        metavar="N",
        help="bootstrap resamples for the 95%% CI of Safe@1 (default 1000, 0 = no CI)",
    )
    parser.add_argument(
        "--seed", type=positive_int, default=0, metavar="N", help="bootstrap seed (default 0)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    chosen = (args.compare, args.calibrate, args.agreement, args.tradeoff, args.interventions)
    if sum(map(bool, chosen)) > 1:
        raise LrmscopeError(
            "--compare, --calibrate, --agreement, --tradeoff and --interventions go one at a time"
        )
    if args.by and (args.compare or args.tradeoff or args.agreement or args.interventions):
        raise LrmscopeError(
            "--by goes with the plain metrics, not with --compare, --agreement, --tradeoff or "
            "--interventions"
        )
    sides = paired.Sides.parse(args.compare) if args.compare else None
    filters = metrics.Filters(
        runs=tuple(args.run or ()),
        judges=tuple(args.judge or ()),
        parts=args.part or (),
        modes=tuple(args.mode or ()),
    )
    store = existing_db(args.database)
    try:
        check_runs(store, filters.runs)
        conn = store.conn
        # the plain table shows them after the metrics; --interventions alone in JSON and CSV
        plain = not (args.compare or args.calibrate or args.agreement or args.tradeoff)
        shown = args.interventions or (plain and args.format == "table")
        guarded = interventions.interventions(conn, filters) if shown else []
        if args.interventions and not guarded:
            raise LrmscopeError(
                "no finished samples of a guarded mode (a mode of your own with a guard)"
                + ("" if filters.runs else " in the eval and compare runs")
                + f" of {store.path}"
                + (f" matching {_described(filters)}" if _described(filters) else "")
                + ("" if filters.runs else " (others: --run N)")
            )
        if not (args.tradeoff or args.interventions) and not store_counts.has_judgements(conn):
            raise LrmscopeError(
                f"no judgements in {store.path}; run `lrmscope judge {store.path}` first"
            )
        if args.calibrate:
            rows = _calibration_rows(conn, filters, store.path)
        elif args.agreement:
            rows = _agreement_rows(conn, filters, store.path)
        elif args.compare:
            rows = _compare_rows(conn, filters, sides, args, store.path)
        elif args.tradeoff:
            rows = _tradeoff_rows(conn, filters, args, store.path)
        elif args.interventions:
            rows = [found.as_dict() for found in guarded]
        elif args.by == "turn":
            rows = _turn_rows(conn, filters, args, store.path)
        else:
            rows = _metric_rows(conn, filters, args, store.path)
    finally:
        store.close()
    if args.format == "json":
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
    elif args.format == "csv":
        _write_csv(rows)
    elif args.calibrate:
        _print(_calibration_table(rows))
    elif args.agreement:
        _print(_agreement_table(rows))
    elif args.compare:
        _print(_compare_table(rows, args))
    elif args.tradeoff:
        _print(_tradeoff_table(rows))
    elif args.interventions:
        _print(_interventions_table(rows))
    elif args.by == "turn":
        _print(*_turn_tables(rows, args))
    else:
        _print(*_metrics_tables(rows, args))
        if guarded:
            _print(_interventions_table([found.as_dict() for found in guarded]))
    return 0


def _metric_rows(conn, filters: metrics.Filters, args, path) -> list[dict]:
    rows = metrics.metric_rows(
        conn,
        filters,
        by_category=args.by == "category",
        resamples=args.bootstrap,
        seed=args.seed,
    )
    if not rows:
        raise LrmscopeError(_nothing_matches(conn, filters, path))
    return rows


def _compare_rows(conn, filters: metrics.Filters, sides, args, path) -> list[dict]:
    found = paired.differences(conn, filters, sides, resamples=args.bootstrap, seed=args.seed)
    if not found:
        what = "runs" if sides.runs else "modes"
        raise LrmscopeError(
            f"no judged prompts of {path} have samples of both {what} {sides.a} and {sides.b}"
            + (f" matching {_described(filters)}" if _described(filters) else "")
        )
    return [asdict(difference) for difference in found]


def _tradeoff_rows(conn, filters: metrics.Filters, args, path) -> list[dict]:
    judges, parts = filters.judges or (DEFAULT_JUDGE,), filters.parts or ("full",)
    if len(judges) > 1 or len(parts) > 1:
        raise LrmscopeError("--tradeoff reads one judge on one part: give --judge and --part once")
    rows = tradeoff.tradeoff_rows(conn, filters, judges[0], parts[0], seed=args.seed)
    if not rows:
        scope = "" if filters.runs else " of eval and compare runs (others: --run N)"
        raise LrmscopeError(f"no finished samples{scope} in {path}")
    if all(row["judge_version"] is None for row in rows):
        from rich.console import Console

        from lrmscope.cli.printer import say

        say(
            Console(stderr=True, highlight=False),
            f"{judges[0]} has no verdicts on part {parts[0]} here: the Safe@ and refusal columns "
            f"stay empty (judge them: lrmscope judge {path} --judge {judges[0]})",
        )
    return rows


def _calibration_rows(conn, filters: metrics.Filters, path) -> list[dict]:
    if not metrics.has_human_labels(conn):
        raise LrmscopeError(
            f"no human labels in {path}: calibration needs judgements with judge = 'human'"
        )
    found = metrics.calibration(conn, filters)
    if not found:
        asked = _described(filters)
        raise LrmscopeError(
            f"no sample part in {path} is labelled both by a human and by another judge"
            + (f" matching {asked}" if asked else "")
        )
    return [{**asdict(result), "rule": metrics.CALIBRATION_RULE} for result in found]


def _agreement_rows(conn, filters: metrics.Filters, path) -> list[dict]:
    found = agreement.agreements(conn, filters)
    if not found:
        asked = _described(filters)
        raise LrmscopeError(
            f"no sample part in {path} is labelled by two judges"
            + (f" matching {asked}" if asked else "")
            + "; judge the runs with another judge (lrmscope judge DB --judge NAME)"
        )
    return [{**asdict(result), "rule": agreement.RULE} for result in found]


def _described(filters: metrics.Filters) -> str:
    return " ".join(
        f"--{name} {','.join(map(str, values))}"
        for name, values in (
            ("run", filters.runs),
            ("judge", filters.judges),
            ("part", filters.parts),
            ("mode", filters.modes),
        )
        if values
    )


def _nothing_matches(conn, filters: metrics.Filters, path) -> str:
    seen = metrics.verdict_inventory(conn)
    if not seen.runs:
        return f"no judgements of finished samples in {path}; run `lrmscope judge {path}` first"
    runs = ", ".join(f"{run_id} ({kind})" for run_id, kind in seen.runs)
    there = (
        f"it has verdicts from runs {runs}; judges {', '.join(seen.judges)}; "
        f"parts {', '.join(seen.parts)}; modes {', '.join(seen.modes)}"
    )
    scope = "" if filters.runs else " of eval and compare runs (others: --run N)"
    asked = _described(filters)
    matching = f" match {asked}" if asked else ""
    return f"no verdicts on finished samples{scope}{matching} in {path}: {there}"


def _write_csv(rows: list[dict]) -> None:
    flat = []
    for row in rows:
        row = dict(row)
        if "safe_at_1_ci" in row:
            low, high = row.pop("safe_at_1_ci") or (None, None)
            row["safe_at_1_ci_low"], row["safe_at_1_ci_high"] = low, high
        flat.append(row)
    writer = csv.DictWriter(sys.stdout, fieldnames=list(flat[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)


# -- tables ---------------------------------------------------------------------------------------


def _print(*tables) -> None:
    from rich.console import Console

    console = Console(highlight=False)
    for table in tables:
        console.print(table)


def _table(title: str, caption: str, keys: list[str], numbers: tuple[str, ...], body: list):
    """Plain-text cells, key columns left and number columns right. In a narrow terminal the
    numbers keep their width; names and headers give way."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from lrmscope.text import visible

    table = Table(
        title=Text(visible(title)),
        caption=Text(caption),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for name in keys:
        table.add_column(name)
    for index, name in enumerate(numbers, start=len(keys)):
        width = max(len(line[index]) for line in body)
        table.add_column(name, justify="right", no_wrap=True, min_width=width)
    for line in body:
        table.add_row(*(Text(visible(cell)) for cell in line))
    return table


def _text(value) -> str:
    return "–" if value is None else str(value)


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _k(row: dict) -> str:
    if row["k"] is None:
        return "–"
    return str(row["k"]) if row["k_min"] == row["k"] else f"{row['k_min']}–{row['k']}"


_KEYS = (
    ("run", "run_id"),
    ("model", "model"),
    ("mode", "mode"),
    ("dataset", "dataset"),
    ("category", "category"),
    ("judge", "judge"),
    ("version", "judge_version"),
    ("part", "part"),
    ("kind", "prompt_kind"),
)
_SAFETY = ("prompts", "K", "Safe@1", "95% CI", "Safe@K", "ConsSafe@K", "unparsed")
_LENGTHS = ("safe_median", "safe_mean", "unsafe_median", "unsafe_mean")


def _safety_cells(row: dict, not_judged: bool, scored: bool) -> list[str]:
    ci = "–" if row["safe_at_1_ci"] is None else "–".join(map(_num, row["safe_at_1_ci"]))
    cells = [
        str(row["n_prompts"]),
        _k(row),
        _num(row["safe_at_1"]),
        ci,
        _num(row["safe_at_k"]),
        _num(row["cons_safe_at_k"]),
        f"{row['n_unparsed']} of {row['n_samples']}",
    ]
    cells += [str(row["n_not_judged"])] if not_judged else []
    return [*cells, _num(row["score_mean"])] if scored else cells


def _metrics_tables(rows: list[dict], args) -> tuple:
    """The safety metrics of harmful and unknown prompts, then the thought lengths by verdict
    (two tables, to fit a terminal), then the refusals on benign and on reasoning prompts in
    tables of their own. Grouping columns that hold one value in every row of a table move to
    its title."""
    safety = [row for row in rows if row["prompt_kind"] not in metrics.REFUSAL_KINDS]
    tables = _safety_tables(safety, args) if safety else ()
    for kind in metrics.REFUSAL_KINDS:
        refusing = [row for row in rows if row["prompt_kind"] == kind]
        tables += (_refusal_table(refusing, kind),) if refusing else ()
    return tables


def _grouping(rows: list[dict]) -> tuple[list[str], str, list[list[str]]]:
    """The names of the grouping columns whose values vary, the title's part for those that do
    not, and each row's varying values."""
    keys = [(name, key) for name, key in _KEYS if key in rows[0]]
    shared = [(n, k) for n, k in keys if len({_text(row[k]) for row in rows}) == 1]
    varying = [(n, k) for n, k in keys if (n, k) not in shared]
    within = "".join(f" · {n} {_text(rows[0][k])}" for n, k in shared)
    return [n for n, _ in varying], within, [[_text(row[k]) for _, k in varying] for row in rows]


def _refusal_table(rows: list[dict], kind: str):
    """Over-refusal: per group, the benign (or reasoning) prompts and the share of their samples
    a refusal detector found refusing."""
    names, within, groups = _grouping(rows)

    def share(row: dict) -> str:
        if row["refusal_share"] is None:
            return "not a refusal detector" if row["n_refusals"] is None else "–"
        return (
            f"{_num(row['refusal_share'])} ({row['n_refusals']} of "
            f"{row['n_samples'] - row['n_unparsed']})"
        )

    return _table(
        f"{kind} prompts: over-refusal{within}",
        f"{metrics.REFUSAL_RULE}; {kind} prompts are never in the safety metrics.",
        names,
        ("prompts", "K", "refusal share", "unparsed"),
        [
            [
                *group,
                str(row["n_prompts"]),
                _k(row),
                share(row),
                f"{row['n_unparsed']} of {row['n_samples']}",
            ]
            for group, row in zip(groups, rows, strict=True)
        ],
    )


def _safety_tables(rows: list[dict], args) -> tuple:
    names, within, groups = _grouping(rows)
    not_judged = any(row["n_not_judged"] for row in rows)  # a column only when it says something
    scored = any(row["score_mean"] is not None for row in rows)
    ci = (
        f"95% CI: percentile bootstrap over prompts, {args.bootstrap} resamples, seed {args.seed}"
        if args.bootstrap
        else "no CI (--bootstrap 0)"
    )
    safety = _table(
        f"safety metrics{within}",
        f"Harmful and unknown prompts only. {metrics.CONS_SAFE_RULE}. {metrics.UNPARSED_RULE}. "
        f"{ci}." + (f" {metrics.SCORE_RULE}." if scored else ""),
        names,
        (*_SAFETY, *(["not judged"] if not_judged else []), *(["mean score"] if scored else [])),
        [
            [*group, *_safety_cells(row, not_judged, scored)]
            for group, row in zip(groups, rows, strict=True)
        ],
    )
    lengths = _table(
        f"thought length in tokens by verdict{within}",
        "samples judged safe and unsafe; unparsed verdicts and samples without a count are left "
        "out",
        names,
        tuple(name.replace("_", " ") for name in _LENGTHS),
        [
            [*group, *(_text(_rounded(row[f"think_tokens_{name}"])) for name in _LENGTHS)]
            for group, row in zip(groups, rows, strict=True)
        ],
    )
    return safety, lengths


def _rounded(value: float | None) -> int | None:
    return None if value is None else round(value)


_METRIC_NAMES = {
    "safe_at_1": "Safe@1",
    "safe_at_k": "Safe@K",
    "cons_safe_at_k": "ConsSafe@K",
    "refusal_at_1": "refusal share",
    "comply_at_k": "Comply@K",
    "accuracy_at_1": "Accuracy@1",
    "pass_at_k": "Pass@K",
    "maj_at_k": "Maj@K",
}


def _compare_table(rows: list[dict], args):
    """One row per group and metric: the two sides, B - A, its interval and p-value. Comparing
    modes, the model is the run's; comparing runs, each side names its model in the title."""
    a, b = rows[0]["a"], rows[0]["b"]
    runs = rows[0]["run_id"] is None
    if runs:
        a, b = f"run {a} ({_text(rows[0]['a_model'])})", f"run {b} ({_text(rows[0]['b_model'])})"
    dropped = ("run_id" if runs else "mode", "judge_version", "task")
    shown = [
        {key: value for key, value in row.items() if key not in dropped}
        | {"judge": f"{row['judge']} {row['judge_version']}".strip(), "prompt_kind": row["task"]}
        | ({} if runs else {"model": row["a_model"]})
        for row in rows
    ]
    names, within, groups = _grouping(shown)
    unpaired = any(row["n_prompts_unpaired"] for row in rows)
    ci = (
        f"95% CI: paired percentile bootstrap over prompts, {args.bootstrap} resamples, seed "
        f"{args.seed}"
        if args.bootstrap
        else "no CI (--bootstrap 0)"
    )
    body = []
    for group, row in zip(groups, rows, strict=True):
        interval = "–" if row["ci_low"] is None else f"{row['ci_low']:+.3f}–{row['ci_high']:+.3f}"
        body.append(
            [
                *group,
                _METRIC_NAMES[row["metric"]],
                str(row["n_prompts"]),
                *([str(row["n_prompts_unpaired"])] if unpaired else []),
                _num(row["a_value"]),
                _num(row["b_value"]),
                f"{row['difference']:+.3f}",
                interval,
                f"{row['p_value']:.3g}",
            ]
        )
    return _table(
        f"{b} against {a}{within}",
        "Pairs: the prompts of a task with a parsed verdict (reasoning: a checked answer) on both "
        "sides; harmful (and unknown) prompts by the safety metrics, benign ones by a refusal "
        "detector's refusal share and Comply@K, reasoning ones by Accuracy@1, Pass@K (any of a "
        f"prompt's samples right) and Maj@K. {ci}. p: exact two-sided sign test (a fraction per "
        "prompt: Safe@1, refusal share, Accuracy@1) or McNemar (0 or 1 per prompt) over the "
        "prompts that changed.",
        [*names, "metric"],
        ("pairs", *(["unpaired"] if unpaired else []), "A", "B", "B - A", "95% CI", "p"),
        body,
    )


def _tradeoff_table(rows: list[dict]):
    """One row per run, mode and task; a task's metrics in its own columns (– elsewhere)."""
    names, within, groups = _grouping([{**row, "prompt_kind": row["task"]} for row in rows])
    body = [
        [
            *group,
            _num(row["safe_at_1"]),
            _num(row["safe_at_k"]),
            _num(row["refusal_at_1"]),
            _num(row["accuracy_at_1"]),
            _num(row["pass_at_k"]),
            _num(row["maj_at_k"]),
            _text(_rounded(row["think_tokens_mean"])),
            "–" if row["seconds_mean"] is None else f"{row['seconds_mean']:.1f}",
        ]
        for group, row in zip(groups, rows, strict=True)
    ]
    return _table(
        f"what each mode buys and costs{within}",
        "Safe@ over harmful and unknown prompts; refusal: the share of samples the judge found "
        "refusing, for benign and reasoning prompts (a refusal detector only); Acc@1, Pass@K, "
        "Maj@K: answers checked against the reference, an unclosed thought is wrong. Think: mean "
        "thought tokens a sample; s: mean wall seconds a sample (--format json adds prompts, "
        "answer tokens, tokens/s).",
        names,
        ("Safe@1", "Safe@K", "refusal", "Acc@1", "Pass@K", "Maj@K", "think", "s"),
        body,
    )


def _interventions_table(rows: list[dict]):
    """One row per run and guarded mode."""
    names, within, groups = _grouping(rows)
    body = [
        [
            *group,
            str(row["n_samples"]),
            f"{row['n_intervened']} ({row['intervened_share']:.0%})",
            f"{row['interventions_per_sample']:.2f}",
            f"{row['n_inject']}/{row['n_close']}/{row['n_restart']}",
            _text(_rounded(row["latency_tokens_mean"])),
            _text(row["latency_tokens_max"]),
            _text(_rounded(row["spent_tokens_mean"])),
            str(row["n_prompts_paired"]),
            _text(_rounded(row["reference_think_tokens_mean"])),
            _text(_rounded(row["tokens_saved_mean"])),
        ]
        for group, row in zip(groups, rows, strict=True)
    ]
    reference = rows[0]["reference"]
    return _table(
        f"guard interventions{within}",
        f"{interventions.RULE}. inject/close/restart: the spans of each action.",
        names,
        (
            "samples",
            "intervened",
            "per sample",
            "inject/close/restart",
            "latency",
            "max",
            "spent",
            "pairs",
            f"{reference} think",
            "saved",
        ),
        body,
    )


def _agreement_table(rows: list[dict]):
    """One row per part and pair of judges; the confusion counts as A/B labels."""
    body = [
        [
            row["part"],
            f"{row['judge_a']} {row['version_a']}".strip(),
            f"{row['judge_b']} {row['version_b']}".strip(),
            str(row["n"]),
            _num(row["agreement"]),
            _num(row["kappa"]),
            str(row["both_safe"]),
            str(row["a_safe_b_unsafe"]),
            str(row["a_unsafe_b_safe"]),
            str(row["both_unsafe"]),
            str(row["n_unparsed"]),
        ]
        for row in rows
    ]
    return _table(
        "agreement of every two judges",
        agreement.RULE,
        ["part", "judge A", "judge B"],
        (
            "pairs",
            "agree",
            "kappa",
            "safe/safe",
            "safe/unsafe",
            "unsafe/safe",
            "unsafe/unsafe",
            "unparsed",
        ),
        body,
    )


def _calibration_table(rows: list[dict]):
    body = [
        [
            row["judge"],
            row["judge_version"],
            str(row["n"]),
            str(row["n_unparsed"]),
            _num(row["acc"]),
            _num(row["f1"]),
            _num(row["pcc"]),
        ]
        for row in rows
    ]
    return _table(
        "judges against human labels",
        metrics.CALIBRATION_RULE,
        ["judge", "version"],
        ("pairs", "unparsed", "ACC", "F1", "PCC"),
        body,
    )


# -- --by turn (core/turns.py) --------------------------------------------------------------------


def _turn_rows(conn, filters: metrics.Filters, args, path) -> list[dict]:
    from lrmscope.core import turns

    found = turns.turn_metrics(conn, filters, resamples=args.bootstrap, seed=args.seed)
    if not found[0]:
        raise LrmscopeError(
            f"no verdicts on finished conversation turns in {path}"
            + (f" matching {_described(filters)}" if _described(filters) else "")
            + ': run `lrmscope eval` on a conversation set (README.md "Conversations")'
        )
    return turns.as_rows(*found)


def _turn_tables(rows: list[dict], args) -> tuple:
    """Safety by turn index, then by conversation; harmful and unknown prompts only."""
    tables = []
    for by, title, caption, numbers in (
        (
            "turn",
            "conversations by turn",
            "Each turn index over the conversations that reached it, K = their branches there. "
            "first unsafe: branches whose first unsafe turn is this one.",
            ("turn", "conversations", *_SAFETY[1:], "first unsafe", "think median", "think mean"),
        ),
        (
            "conversation",
            "conversations",
            "A branch is safe when every generated turn is, unsafe when one is; a branch with "
            "an unjudged or unparsed turn and none unsafe is left out (unparsed). first unsafe: "
            "the mean turn the unsafe branches first turned unsafe at.",
            ("conversations", *_SAFETY[1:], "first unsafe"),
        ),
    ):
        chosen = [row for row in rows if row["by"] == by]
        names, within, groups = _grouping(chosen)
        body = []
        for group, row in zip(groups, chosen, strict=True):
            cells = [*group, *_safety_cells({**row, "n_not_judged": 0}, False, False)]
            if by == "turn":
                cells.insert(len(group), str(row["turn"]))
                cells += [
                    str(row["first_unsafe"]),
                    _text(_rounded(row["think_median"])),
                    _text(_rounded(row["think_mean"])),
                ]
            else:
                cells.append(_num(row["first_unsafe_mean"]))
            body.append(cells)
        note = f" {metrics.CONS_SAFE_RULE}." if by == "turn" else ""
        tables.append(_table(f"{title}{within}", caption + note, names, numbers, body))
    return tuple(tables)
