"""`lrmscope report` and `lrmscope export --format inspect` on real SQLite files: the committed
sample runs and databases built here through the Store.

The report is opened in a real headless Chromium (Debian's `chromium`, driven by Playwright; .ci/run
installs it): a screenshot, no console error, no request but the file itself, every figure
decoded. Untrusted text (`<script>`, HTML entities, a bidi override) shows as text. The figures
files parse (SVG as XML, PNG of the expected size), and the Inspect logs read back with
inspect_ai hold what the database holds. Expected values are read from the databases, never
written down here (sample_runs/ is regenerated as the demo set grows).
"""

from __future__ import annotations

import base64
import html.parser
import os
import re
import shutil
import sqlite3
import struct
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lrmscope.cli.main import main
from lrmscope.core import figures, metrics
from lrmscope.core.inspect_log import MISSING, sample_id, score_name
from lrmscope.store import Store, reads
from lrmscope.store.filters import SampleFilter
from lrmscope.text import visible
from tests.support.db import finished_sample, rows, verdict_row

SAMPLE_RUNS = sorted((Path(__file__).resolve().parents[2] / "sample_runs").glob("*.sqlite"))
FIGURE_NAMES = [name for name, *_ in figures.FIGURES]
# Markup, entities that must stay entities, and a right-to-left override.
NASTY = (
    '<script>alert("x")</script> <img src=x onerror=alert(1)> &amp; &lt;b&gt; &#x41; '
    "\u202eevil\u202c done"
)

CATEGORY = "\u202eevil</text><script>alert(1)</script>"  # short: figures cut names at 40


def report(db: Path, out: Path, *args: str) -> int:
    return main(["report", str(db), "-o", str(out), *args])


def copy(db: Path, folder: Path) -> Path:
    """A copy to report on: opening migrates an older schema, and the committed file must stay."""
    target = folder / db.name
    shutil.copyfile(db, target)
    return target


# -- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium under Playwright; the test skips, saying why, where it is missing."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip(
            "Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


class Opened:
    """A report opened in a fresh page, with what the page logged and asked for."""

    def __init__(self, browser, path: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.console: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.url = path.resolve().as_uri()
        self.page.goto(self.url)
        self.page.wait_for_load_state("load")

    def left_the_file(self) -> list[str]:
        return [url for url in self.requests if url != self.url and not url.startswith("data:")]


def figure_sizes(page) -> dict[str, int]:
    """Each figure's decoded width (0: not decoded), by name."""
    return page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('figure')].map("
        "f => [f.id.replace('figure-', ''), f.querySelector('img').naturalWidth]))"
    )


@pytest.mark.parametrize("db", SAMPLE_RUNS, ids=lambda p: p.name)
def test_the_sample_runs_report_opens_in_chromium(db, browser, tmp_path):
    db = copy(db, tmp_path)
    out = tmp_path / "report.html"
    assert report(db, out) == 0
    opened = Opened(browser, out)
    shot = tmp_path / "report.png"
    opened.page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    assert opened.console == []
    assert opened.left_the_file() == []
    assert opened.dialogs == []
    sizes = figure_sizes(opened.page)
    assert list(sizes) == FIGURE_NAMES and all(sizes.values()), sizes
    conn = sqlite3.connect(db)
    try:
        runs = reads.run_ids_of_kinds(conn, metrics.METRIC_KINDS)
        rows = metrics.metric_rows(conn, metrics.Filters(runs=tuple(runs))) if runs else []
    finally:
        conn.close()
    shown = opened.page.locator("#runs + table tr td:first-child").all_inner_texts()
    assert [int(run) for run in shown] == runs
    # every safety row of `lrmscope metrics` is a row of the report, with its Safe@1
    table = opened.page.locator("#metrics + table tr")
    safety = [row for row in rows if row["prompt_kind"] not in metrics.REFUSAL_KINDS]
    assert table.count() == (len(safety) + 1 if safety else 0)
    for index, row in enumerate(safety, start=1):
        assert f"{row['safe_at_1']:.3f}" in table.nth(index).inner_text()
    if not runs:
        assert "no eval or compare runs" in opened.page.locator("#missing").inner_text()
    opened.page.close()


def nasty_db(path: Path) -> tuple[Path, int]:
    """An eval run whose prompt, thought, answer, title, model name, dataset and judge output are
    NASTY, its category CATEGORY; the thought has an injected span and a flag. Returns the path
    and the sample id."""
    store = Store(path)
    run = store.start_run(
        "eval", title=NASTY, model_path=f"/models/{NASTY}.gguf", dataset=NASTY, k=1
    )
    prompt = store.prompt_id(NASTY, "p1", NASTY, category=CATEGORY, kind="harmful")
    thought = f"Wait {NASTY}"
    raw = f"{thought}\n</think>\n\n{NASTY}"
    sample = finished_sample(
        store,
        run,
        prompt,
        raw=raw,
        thought=thought,
        answer=NASTY,
        think_tokens=12,
        answer_tokens=9,
        injected=[{"start": 0, "end": 4, "kind": "rethink", "text": "Wait"}],
    )
    store.add_flag(sample, part="think", start=5, end=13, judge="rs-match", label="unsafe")
    store.add_judgements(
        [
            verdict_row(sample, "think", "unsafe", raw=NASTY),
            verdict_row(sample, "answer", "safe", raw=NASTY),
            verdict_row(sample, "full", "unsafe", raw=NASTY),
            verdict_row(sample, "full", "safe", judge="human", version=""),
        ]
    )
    store.end_run(run, "done")
    store.close()
    return path, sample


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)


def test_untrusted_text_is_text_in_the_page(tmp_path):
    db, _ = nasty_db(tmp_path / "nasty.sqlite")
    out = tmp_path / "report.html"
    assert report(db, out, "--slice", "all", "--figures", str(tmp_path / "figures")) == 0
    page = out.read_text(encoding="utf-8")
    # the figures draw the nasty category and dataset names as text, bidi override escaped
    inline = re.findall(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', page)
    files = sorted((tmp_path / "figures").glob("*.svg"))
    assert len(inline) == len(files) == len(FIGURE_NAMES)
    for svg in [base64.b64decode(data) for data in inline] + [f.read_bytes() for f in files]:
        root = ET.fromstring(svg)
        assert not [e for e in root.iter() if e.tag.rsplit("}", 1)[-1] in ("script", "a")]
        assert "\u202e".encode() not in svg and b"<script" not in svg
    parser = _Tags()
    parser.feed(page)
    assert "script" not in parser.tags and parser.tags.count("img") == len(FIGURE_NAMES)
    assert "\u202e" not in page and "<script>alert" not in page
    assert "Content-Security-Policy" in page
    # the human label and rs-match disagree on the one full part both labelled
    agreement = page[page.index('id="agreement"') : page.index('id="figures"')]
    assert '<td>full</td><td>human </td><td>rs-match 1</td><td class="n">1</td>' in agreement


def test_untrusted_text_shows_as_text_in_chromium(browser, tmp_path):
    db, sample = nasty_db(tmp_path / "nasty.sqlite")
    out = tmp_path / "report.html"
    assert report(db, out, "--slice", "all") == 0
    opened = Opened(browser, out)
    page = opened.page
    assert opened.dialogs == [] and opened.console == [] and opened.left_the_file() == []
    assert page.evaluate("document.scripts.length") == 0
    assert page.locator("img").count() == len(FIGURE_NAMES)
    shown = visible(NASTY)
    assert "\\u202e" in shown
    details = page.locator(f"#sample-{sample}")
    details.locator("summary").click()
    assert details.locator("pre.prompt").text_content() == shown
    assert details.locator("pre.answer").text_content() == shown
    assert details.locator("pre.thought").text_content() == visible(f"Wait {NASTY}")
    assert details.locator("pre.thought mark.injected").first.text_content() == "Wait"
    raw = f"Wait {NASTY}\n</think>\n\n{NASTY}"
    assert details.locator("pre.thought mark.flag").text_content() == visible(raw[5:13])
    assert shown in page.locator("#runs + table").inner_text()
    assert shown in details.locator("table").inner_text()
    opened.page.close()


# -- bad and missing input ----------------------------------------------------------------------


def test_a_database_without_judgements_still_gets_a_report(tmp_path):
    store = Store(tmp_path / "unjudged.sqlite")
    run = store.start_run("eval", dataset="demo", k=1, mode="default")
    finished_sample(store, run, store.prompt_id("demo", "p", "hi"), raw="x", thought="x")
    store.close()
    out = tmp_path / "report.html"
    assert report(tmp_path / "unjudged.sqlite", out) == 0
    page = out.read_text(encoding="utf-8")
    assert "no judgements on these runs" in page and "lrmscope judge" in page
    assert all(f'id="figure-{name}"' in page for name in FIGURE_NAMES)


def test_bad_outputs_and_runs_are_one_line_and_leave_no_file(tmp_path, capsys):
    db = copy(SAMPLE_RUNS[0], tmp_path)
    earlier = tmp_path / "earlier.html"
    earlier.write_text("kept")
    for args, expect in (
        (["--run", "999"], "no run 999"),
        (["-o", str(tmp_path / "missing" / "r.html")], "does not exist"),
        (["-o", "/proc/report.html"], "cannot write"),
        (["-o", str(tmp_path)], "directory"),
        (["--figures", str(earlier)], "is a file"),
        (["--judge", "nobody"], "has no verdicts"),
    ):
        argv = ["report", str(db), "-o", str(earlier), *args]
        assert main(argv) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expect in err, err
        assert earlier.read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([db.name, "earlier.html"])


# -- figures files --------------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_figures_are_svg_and_png_files(tmp_path):
    db = copy(SAMPLE_RUNS[0], tmp_path)
    folder = tmp_path / "figures"
    assert report(db, tmp_path / "r.html", "--figures", str(folder)) == 0
    expected = (round(figures.FIGSIZE[0] * figures.DPI), round(figures.FIGSIZE[1] * figures.DPI))
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{name}.{ext}" for name in FIGURE_NAMES for ext in ("svg", "png")
    )
    for name in FIGURE_NAMES:
        root = ET.parse(folder / f"{name}.svg").getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert png_size(folder / f"{name}.png") == expected


# -- Inspect logs ---------------------------------------------------------------------------------


def test_inspect_logs_read_back_as_the_database_holds_them(tmp_path, capsys):
    from inspect_ai.log import read_eval_log

    db = copy(next(p for p in SAMPLE_RUNS if p.name == "demo-eval.sqlite"), tmp_path)
    nasty, _ = nasty_db(tmp_path / "nasty.sqlite")
    umask = os.umask(0)
    os.umask(umask)
    for path in (db, nasty):
        folder = tmp_path / f"logs-{path.stem}"
        assert main(["export", str(path), "--format", "inspect", "-o", str(folder)]) == 0
        conn = sqlite3.connect(path)
        try:
            for run_id in reads.run_ids(conn, 100):
                selection = SampleFilter(runs=(run_id,), statuses=("done",))
                expected = reads.count_samples(conn, selection)
                log_file = folder / f"lrmscope-run-{run_id}.eval"
                assert log_file.exists() == (expected > 0)
                if not expected:
                    continue
                assert log_file.stat().st_mode & 0o777 == 0o666 & ~umask
                log = read_eval_log(str(log_file))
                assert log.samples is not None and len(log.samples) == expected
                found = rows(
                    path,
                    "SELECT s.id, p.prompt_key, s.mode, s.k, s.thought, s.answer FROM samples s"
                    " JOIN prompts p ON p.id = s.prompt_id"
                    " WHERE s.run_id = ? AND s.status = 'done'",
                    (run_id,),
                )
                labels = reads.newest_labels(conn, [row["id"] for row in found])
                by_key = {(sample.id, sample.epoch): sample for sample in log.samples}
                for sid, key, mode, k, thought, answer in (r.values() for r in found):
                    sample = by_key[(sample_id({"prompt_id": key, "mode": mode}), k + 1)]
                    reasoning = [c for c in sample.messages[-1].content if c.type == "reasoning"]
                    assert [c.reasoning for c in reasoning] == ([thought] if thought else [])
                    assert sample.output.completion == (answer or "")
                    assert {name: score.value for name, score in sample.scores.items()} == {
                        score_name(judge, part): label
                        for judge, parts in labels.get(sid, {}).items()
                        for part, label in parts.items()
                    }
        finally:
            conn.close()
    capsys.readouterr()


def test_inspect_without_inspect_ai_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "inspect_ai", None)  # import inspect_ai raises ImportError
    db = copy(SAMPLE_RUNS[0], tmp_path)
    folder = tmp_path / "logs"
    assert main(["export", str(db), "--format", "inspect", "-o", str(folder)]) == 2
    assert capsys.readouterr().err.strip() == f"lrmscope: error: {MISSING}"
    assert not folder.exists()
