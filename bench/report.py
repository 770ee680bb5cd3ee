"""The report at scale: `lrmscope report` of the review bench's 100,000-sample database.

The database is bench/review_scale.py's (one eval run, 4 modes, K = 5, thoughts of 2-8 KB, five
judges' verdicts, human labels on 1 % and flags on 10 % of the samples; built once and cached in
the temp folder). Measured, median of --rounds, each in a process of its own (start-up, reads,
figures, HTML and the write included):
  lrmscope report DB -o FILE                (goal < 10 s on 2 cores)
  lrmscope report DB -o FILE --figures DIR  (SVG and PNG files too)
and the size of the HTML (goal < 5 MB). Baselines in the same run: `lrmscope metrics DB` in a
process (the report's tables come from the same cores) and the review bench's plain
`SELECT count(*) FROM samples`. One more pass in-process splits the time into reading (core
report.build), drawing (core figures.draw) and writing the page (render_html).

    python bench/report.py [--samples 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.review_scale import baseline, database, metrics_command  # noqa: E402
from lrmscope.core import figures, report  # noqa: E402

GOAL_S = 10.0
GOAL_MB = 5.0


def report_command(path: Path, out: Path, *more: str) -> float:
    """Seconds of `lrmscope report PATH -o OUT` in a process of its own."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "lrmscope", "report", str(path), "-o", str(out), *more],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def parts(path: Path) -> dict[str, float]:
    """The report's steps in this process: read, draw, render."""
    times = {}
    start = time.perf_counter()
    found = report.build(path)
    times["read (report.build)"] = time.perf_counter() - start
    start = time.perf_counter()
    drawn = figures.draw(found)
    times["draw 5 figures (figures.draw)"] = time.perf_counter() - start
    start = time.perf_counter()
    report.render_html(found, drawn)
    times["HTML (render_html)"] = time.perf_counter() - start
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    path = database(args.samples)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "report.html"
        report_command(path, out)  # warm the page cache and the imports
        rows: dict[str, list[float]] = {
            "SELECT count(*) (baseline)": [],
            "lrmscope metrics DB (baseline)": [],
            "lrmscope report DB": [],
            "lrmscope report DB --figures DIR": [],
        }
        for _ in range(args.rounds):
            rows["SELECT count(*) (baseline)"].append(baseline(path))
            rows["lrmscope metrics DB (baseline)"].append(metrics_command(path))
            rows["lrmscope report DB"].append(report_command(path, out))
            rows["lrmscope report DB --figures DIR"].append(
                report_command(path, out, "--figures", str(Path(folder) / "figures"))
            )
        size = out.stat().st_size / 1e6
        split = parts(path)
    metrics_s = statistics.median(rows["lrmscope metrics DB (baseline)"])
    print(f"\n{args.samples:,} samples · median of {args.rounds} · {path}")
    for name, values in rows.items():
        value = statistics.median(values)
        goal = f" (goal < {GOAL_S:.0f} s)" if name.startswith("lrmscope report") else ""
        ratio = f" · {value / metrics_s:.1f}x metrics" if "report" in name else ""
        print(f"  {name:<34} {value:8.2f} s{ratio}{goal}")
    print(f"  {'HTML size':<34} {size:8.2f} MB (goal < {GOAL_MB:.0f} MB)")
    for name, value in split.items():
        print(f"    {name:<32} {value:8.2f} s")


if __name__ == "__main__":
    main()
