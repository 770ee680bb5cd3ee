"""`lrmscope report DB`: one self-contained HTML file of the runs, metrics and figures
(core/report.py, core/figures.py), and the figures as SVG and PNG files for a paper."""

from __future__ import annotations

import argparse
from pathlib import Path

from lrmscope.cli.commands.metrics import resamples
from lrmscope.cli.options import add_runs_option, positive_int
from lrmscope.cli.printer import say
from lrmscope.vocab import PARTS

DEFAULT_OUTPUT = "report.html"


def register(commands) -> None:
    from lrmscope.core.report import DEFAULT_SAMPLES, DEFAULT_SLICE, SLICES

    parser = commands.add_parser(
        "report",
        help="write a self-contained HTML report of a database, and its figures",
        description="Write one HTML file a browser opens with nothing else: the runs (model, "
        "dataset, modes, K, settings, judges, versions), the metrics tables (Safe@1 with its "
        "interval, Safe@K, ConsSafe@K per mode, judge and part; over-refusal), the trade-off "
        "table, each mode against the default mode (paired), judge agreement, five figures, and "
        "a slice of samples with injected text and flags marked. The file loads nothing and runs "
        "no script; model text is shown as text. It appears only when complete.",
    )
    parser.add_argument("database", help="an lrmscope SQLite file")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default=DEFAULT_OUTPUT,
        help=f"the HTML file (default: {DEFAULT_OUTPUT})",
    )
    add_runs_option(
        parser,
        "only these runs (default: every eval and compare run)",
    )
    parser.add_argument(
        "--figures",
        metavar="DIR",
        help="also write each figure as DIR/NAME.svg and DIR/NAME.png (made if missing)",
    )
    parser.add_argument(
        "--judge",
        metavar="NAME",
        help="the judge of the figures, the trade-off and the sample slice (default: rs-match "
        "when it has verdicts, else the first judge by name); the tables show every judge",
    )
    parser.add_argument(
        "--part",
        choices=PARTS,
        default="full",
        help="the judged part of the figures, trade-off and slice (default: full)",
    )
    parser.add_argument(
        "--slice",
        choices=tuple(SLICES),
        default=DEFAULT_SLICE,
        help=f"the samples shown (default: {DEFAULT_SLICE}): "
        + "; ".join(f"{name}: {what}" for name, what in SLICES.items()),
    )
    parser.add_argument(
        "--samples",
        type=positive_int,
        default=DEFAULT_SAMPLES,
        metavar="N",
        help=f"at most N samples of the slice (default: {DEFAULT_SAMPLES})",
    )
    parser.add_argument(
        "--bootstrap",
        type=resamples,
        default=1000,
        metavar="N",
        help="bootstrap resamples of the intervals (default 1000; 0: none)",
    )
    parser.add_argument(
        "--seed", type=positive_int, default=0, help="seed of the bootstrap (default 0)"
    )
    parser.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lrmscope.cli.options import check_runs, existing_db
    from lrmscope.core import figures, report
    from lrmscope.core.export import atomic_output, check_output
    from lrmscope.text import visible

    store = existing_db(args.database)  # a missing or foreign file: its one line, first
    try:
        check_runs(store, tuple(dict.fromkeys(args.run or ())))
    finally:
        store.close()
    options = report.ReportOptions(
        runs=tuple(dict.fromkeys(args.run or ())),
        judge=args.judge,
        part=args.part,
        slice=args.slice,
        samples=args.samples,
        resamples=args.bootstrap,
        seed=args.seed,
    )
    output = Path(args.output).expanduser()
    check_output(output)
    folder = Path(args.figures).expanduser() if args.figures is not None else None
    if folder is not None:
        figures.check_folder(folder)
    found = report.build(args.database, options)
    drawn = figures.draw(found, png=folder is not None)
    page = report.render_html(found, drawn)
    with atomic_output(output) as out:
        out.write(page)
    console = Console(stderr=True)
    message = f"wrote the report of {len(found.runs)} run{'s' * (len(found.runs) != 1)} to "
    say(console, message + visible(str(output)))
    for line in found.missing:
        say(console, f"not in the report: {visible(line)}")
    if folder is not None:
        written = figures.write(drawn, folder)
        say(console, f"wrote {len(written)} figure files to {visible(args.figures)}")
    return 0
