"""Review at scale: the review app on databases of 10,000 and 100,000 samples.

Builds (once, cached in the temp folder by sample count and schema version) an lrmscope database
of one eval run: 4 modes, K = 5, synthetic thoughts of 2-8 KB and answers of 0.5-2 KB (raw text
holds both), verdicts of three judges (rs-match on thought, answer and full; llama-guard on full;
harmbench on the answer), a human label on 1 % and a flag on 10 % of the samples. Then drives the
real app headless (App.run_test) and measures, median of --rounds:
  first paint: enter on the run, until the samples table shows its rows (goal < 1 s);
  filter: a new filter applied until its rows are shown, for several filters (goal < 0.5 s),
  and until the count of matching samples is shown too (a worker thread counts them);
  open: enter on a sample, until its detail is shown, for the first 5 samples (goal < 0.2 s);
  metrics screen: m on the samples, until the metrics table shows its rows (its SQL is the
  command's; goal < 0.5 s), and `lrmscope metrics DB`, the command in a process of its own;
  memory: the tracemalloc peak of a whole session (open, filters, a sample; a separate pass,
  since tracing slows everything), to show it does not grow with the sample count.
Each time is also given as a ratio to the baseline, a plain `SELECT count(*) FROM samples` over
the same file on a fresh connection, measured in the same run.

    python bench/review_scale.py [--samples 10000,100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from textual import events  # noqa: E402
from textual.widgets import DataTable  # noqa: E402

from lrmscope.core.review import ReviewDB  # noqa: E402
from lrmscope.store import Store  # noqa: E402
from lrmscope.store.db import now  # noqa: E402
from lrmscope.store.schema import SCHEMA_VERSION  # noqa: E402
from lrmscope.tui.review.app import ReviewApp  # noqa: E402
from lrmscope.tui.review.metrics import MetricsScreen  # noqa: E402
from lrmscope.tui.review.sample import DetailScreen  # noqa: E402
from lrmscope.tui.review.screens import RunsScreen, SamplesScreen  # noqa: E402

MODES = ("default", "zerothink", "lessthink", "morethink")
K = 5
RARE = "lockpicking"  # in 1 % of the thoughts: what the search looks for
FILTERS = {
    "mode zerothink": {"mode": "zerothink"},
    "llama-guard full unsafe": {"judge": "llama-guard", "part": "full", "verdict": "unsafe"},
    "thought unsafe, answer safe": {"thought_unsafe_answer_safe": True},
    "judges disagree (full)": {"judges_disagree": True, "part": "full"},
    "unlabelled": {"unlabelled": True},
    f"search '{RARE}'": {"search": RARE},
    "sort by think tokens, descending": {"sort": "think_tokens", "descending": True},
}


def corpus(rng: random.Random, size: int = 1 << 21) -> str:
    """About `size` characters of words and sentences, to cut thoughts and answers from."""
    syllables = ["lo", "ka", "mi", "ter", "son", "al", "pre", "vi", "dus", "ren", "no", "ca"]
    words = ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(3000)]
    words += ["the", "a", "to", "of", "and", "is", "that", "wait", "so", "user", "lock"] * 40
    out, length = [], 0
    while length < size:
        sentence = " ".join(rng.choices(words, k=rng.randint(6, 24))).capitalize() + ". "
        out.append(sentence + ("\n\n" if rng.random() < 0.15 else ""))
        length += len(out[-1])
    return "".join(out)


def build(path: Path, samples: int) -> None:
    """The database, written in one transaction through the project's schema."""
    rng = random.Random(samples)
    text = corpus(rng)
    store = Store(path)
    conn = store.conn
    prompts = samples // (len(MODES) * K)
    run = store.start_run(
        "eval",
        model_path="/models/DeepSeek-R1-Distill-Llama-8B.Q4_K_M.gguf",
        mode=",".join(MODES),
        dataset="synthetic",
        k=K,
        title="scale bench",
    )
    started = now()

    def cut(low: int, high: int) -> str:
        start = rng.randrange(len(text) - high)
        return text[start : start + rng.randint(low, high)].strip()

    def sample_rows():
        for p in range(prompts):
            for mode in MODES:
                for k in range(K):
                    thought = "" if mode == "zerothink" else cut(2000, 8000)
                    if thought and rng.random() < 0.01:
                        thought += f" Maybe {RARE} is what they mean."
                    answer = cut(500, 2000)
                    raw = f"{thought}\n</think>\n\n{answer}"
                    yield (
                        run,
                        p + 1,
                        k,
                        mode,
                        '{"temperature": 0.6, "top_p": 0.95}',
                        rng.randrange(1 << 32),
                        raw,
                        thought,
                        answer,
                        len(thought) // 4,
                        len(answer) // 4,
                        "eos",
                        round(rng.uniform(1, 60), 2),
                        "done",
                        started,
                        started,
                    )

    def judgement_rows():
        for sample in range(1, prompts * len(MODES) * K + 1):
            think = "unsafe" if rng.random() < 0.6 else "safe"
            answer = "unsafe" if rng.random() < 0.3 else "safe"
            full = "unsafe" if "unsafe" in (think, answer) else "safe"
            guard = rng.choices(["safe", "unsafe", "unparsed"], [0.73, 0.25, 0.02])[0]
            yield (sample, "think", "rs-match", "safechain-1", think, None, None, "")
            yield (sample, "answer", "rs-match", "safechain-1", answer, None, None, "")
            yield (sample, "full", "rs-match", "safechain-1", full, None, None, "")
            yield (
                sample,
                "full",
                "llama-guard",
                "3-8b",
                guard,
                rng.random(),
                '["S2"]' if guard == "unsafe" else "[]",
                f"{guard}\nS2",
            )
            yield (
                sample,
                "answer",
                "harmbench",
                "13b",
                answer if rng.random() < 0.8 else "safe",
                None,
                None,
                "Yes" if answer == "unsafe" else "No",
            )
            if rng.random() < 0.01:
                yield (sample, "full", "human", "", full, None, None, None)

    with conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO prompts (dataset, prompt_key, text, category) VALUES (?, ?, ?, ?)",
            (("synthetic", f"p{p}", cut(80, 600), f"category {p % 7}") for p in range(prompts)),
        )
        conn.executemany(
            "INSERT INTO samples (run_id, prompt_id, k, mode, sampler, seed, raw, thought, answer,"
            " think_tokens, answer_tokens, finish_reason, elapsed_s, status, started_at, ended_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            sample_rows(),
        )
        conn.executemany(
            "INSERT INTO judgements (sample_id, part, judge, judge_version, label, score,"
            " categories, raw, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row + (started,) for row in judgement_rows()),
        )
        conn.executemany(
            'INSERT INTO flags (sample_id, part, start, "end", judge, label, created_at)'
            " VALUES (?, 'think', 0, 40, 'llama-guard', 'unsafe', ?)",
            ((sample, started) for sample in range(1, samples + 1, 10)),
        )
    store.end_run(run, "done")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


def database(samples: int) -> Path:
    folder = Path(tempfile.gettempdir()) / "lrmscope-bench"
    folder.mkdir(exist_ok=True)
    path = folder / f"review-{samples}-v{SCHEMA_VERSION}.sqlite"
    if not path.exists():
        partial = path.with_suffix(".partial")
        for leftover in folder.glob(partial.name + "*"):
            leftover.unlink()
        start = time.perf_counter()
        print(f"building {path} ({samples:,} samples)…", flush=True)
        build(partial, samples)
        partial.rename(path)
        size = path.stat().st_size / 1e9
        print(f"  built in {time.perf_counter() - start:.0f} s, {size:.2f} GB", flush=True)
    return path


def baseline(path: Path) -> float:
    start = time.perf_counter()
    conn = sqlite3.connect(path)
    conn.execute("SELECT count(*) FROM samples").fetchone()
    conn.close()
    return time.perf_counter() - start


async def until(pilot, condition) -> None:
    while not condition():
        await pilot.pause(0.001)


async def painted(pilot) -> None:
    """Let the app take its pending messages, then paint. (pilot.pause() with no delay waits
    until the whole process is idle, the count worker's thread too.)"""
    await pilot.pause(0)


async def session(path: Path) -> dict[str, float]:
    """One review session: open the run, each filter, a sample. Seconds of each step; keys are
    posted as events, since pilot.press waits until the process is idle."""
    times = {}
    db = ReviewDB(path)
    app = ReviewApp(db)
    async with app.run_test(size=(160, 50)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
        start = time.perf_counter()
        app.post_message(events.Key("enter", "\r"))
        await until(
            pilot, lambda: isinstance(app.screen, SamplesScreen) and app.screen.table.row_count
        )
        await painted(pilot)
        times["first paint"] = time.perf_counter() - start
        screen = app.screen
        await until(pilot, lambda: screen.total is not None)
        everything = screen.filter
        for name, chosen in FILTERS.items():
            start = time.perf_counter()
            screen.apply(replace(everything, **chosen))
            await painted(pilot)
            times[f"filter: {name}"] = time.perf_counter() - start
            await until(pilot, lambda: screen.total is not None)
            await painted(pilot)
            times[f"  {name}: count shown"] = time.perf_counter() - start
            assert screen.total > 0, name
        screen.apply(everything)
        opened = []
        for row in range(5):
            screen.table.move_cursor(row=row)
            await pilot.pause()
            start = time.perf_counter()
            app.post_message(events.Key("enter", "\r"))
            await until(
                pilot,
                lambda: (
                    isinstance(app.screen, DetailScreen) and app.screen.query_one("#body").content
                ),
            )
            await painted(pilot)
            opened.append(time.perf_counter() - start)
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is screen)
        times["open a sample (median of 5)"] = statistics.median(opened)
        times["  the slowest of the 5"] = max(opened)
        start = time.perf_counter()
        app.post_message(events.Key("m", "m"))
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, MetricsScreen)
                and app.screen.query_one("#metrics", DataTable).row_count
            ),
        )
        await painted(pilot)
        times["metrics screen"] = time.perf_counter() - start
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)
    db.close()
    return times


def metrics_command(path: Path) -> float:
    """Seconds of `lrmscope metrics PATH` in a process of its own (startup and table included)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "lrmscope", "metrics", str(path)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def memory(path: Path) -> float:
    """The tracemalloc peak (MB) of a whole session."""
    tracemalloc.start()
    asyncio.run(session(path))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--samples",
        default="10000,100000",
        help="sample counts, comma-separated (default 10000,100000)",
    )
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    goals = {"first paint": 1.0, "open a sample (median of 5)": 0.2}
    for samples in (int(n) for n in args.samples.split(",")):
        path = database(samples)
        asyncio.run(session(path))  # warm the page cache and the imports
        bases, rounds = [], []
        for _ in range(args.rounds):
            bases.append(baseline(path))
            rounds.append(asyncio.run(session(path)))
            rounds[-1]["lrmscope metrics DB (a process)"] = metrics_command(path)
        base = statistics.median(bases)
        print(
            f"\n{samples:,} samples · baseline SELECT count(*): {base * 1000:.1f} ms "
            f"(median of {args.rounds})"
        )
        for step in rounds[0]:
            value = statistics.median(r[step] for r in rounds)
            goal = None if step.startswith(" ") else goals.get(step, 0.5)  # an aside: no goal
            verdict = (
                ""
                if goal is None
                else f"  (goal < {goal * 1000:.0f} ms: {'ok' if value < goal else 'OVER'})"
            )
            print(f"  {step:<48} {value * 1000:8.1f} ms  {value / base:8.1f}x baseline{verdict}")
        print(f"  {'memory: tracemalloc peak of a session':<48} {memory(path):8.1f} MB")


if __name__ == "__main__":
    main()
