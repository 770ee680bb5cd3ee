"""Snapshot tests of the review screens (pytest-textual-snapshot) on a copy of the committed demo
run. After an intended change of the look: `python -m pytest tests/tui/test_review_snapshots.py
--snapshot-update`, then review the SVGs in tests/__snapshots__/."""

import shutil

import pytest

from lrmscope.core.review import ReviewDB, demo_database
from lrmscope.tui.review.app import ReviewApp
from lrmscope.tui.review.screens import SamplesScreen
from tests.tui.test_review_tradeoff import open_tradeoff

SIZE = (120, 36)


@pytest.fixture
def app(tmp_path):
    path = tmp_path / "demo.sqlite"
    shutil.copy(demo_database(), path)
    db = ReviewDB(path)
    yield ReviewApp(db, note="demo-eval.sqlite")  # not the temporary path: the same every run
    db.close()


async def open_samples(pilot):
    """Open the run once the runs are shown, and wait for its samples to be counted (a worker
    counts them)."""
    while not pilot.app.screen.runs:
        await pilot.pause(0.02)
    await pilot.press("enter")
    while not isinstance(pilot.app.screen, SamplesScreen) or pilot.app.screen.total is None:
        await pilot.pause(0.02)


async def lessthink_sample(pilot):
    """On the samples screen: the cursor on sample 7, LessThink with its injected prefill."""
    pilot.app.screen.table.move_cursor(row=6)
    await pilot.pause()


def test_runs(snap_compare, app):
    async def run_before(pilot):
        while not pilot.app.screen.runs:
            await pilot.pause(0.02)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_samples(snap_compare, app):
    assert snap_compare(app, terminal_size=SIZE, run_before=open_samples)


def test_by_prompt(snap_compare, app):
    async def run_before(pilot):
        await open_samples(pilot)
        await pilot.press("p")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_detail(snap_compare, app):
    async def run_before(pilot):
        await open_samples(pilot)
        await lessthink_sample(pilot)
        await pilot.press("enter")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_detail_raw_view(snap_compare, app):
    async def run_before(pilot):
        await open_samples(pilot)
        await lessthink_sample(pilot)
        await pilot.press("enter", "v")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_filter(snap_compare, app):
    async def run_before(pilot):
        await open_samples(pilot)
        await pilot.press("f")

    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)


def test_metrics(snap_compare, app):
    async def run_before(pilot):
        await pilot.press("m")
        while "think length" not in pilot.app.screen.query_one("#plots").content.plain:
            await pilot.pause(0.05)

    assert snap_compare(app, terminal_size=(120, 48), run_before=run_before)


def test_tradeoff(snap_compare, app):
    """The embedded model's trade-off on the demo set: each mode's safety, refusals and
    accuracy, and its point on the plot."""
    assert snap_compare(app, terminal_size=(120, 48), run_before=open_tradeoff)
