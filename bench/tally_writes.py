"""What the tallies cost the writers: saving verdicts and finishing samples with the metrics'
triggers (schema v6, docs/architecture.md "Tallies") against the same writes on a copy of the
database whose tally triggers are dropped, in the same run.

Each round builds a database of --samples finished samples (4 modes, K = 5, one run), copies it,
drops the tally triggers on the copy, and then times on both, alternately:
  verdicts: Store.add_judgements of five verdicts a sample (three rs-match parts, llama-guard on
    the full response, harmbench on the answer) in batches of 64, as `lrmscope judge` saves them;
  finish: Store.update_sample of every sample from running to done with its thought length, as a
    generation ends.
The figure is the median of the per-round ratios (with triggers / without). No goal: judging a
sample takes a model's forward pass (tenths of a second on a CPU), so what matters is that the
cost per write stays in microseconds; the table gives both.

    python bench/tally_writes.py [--samples 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lrmscope.store import Store  # noqa: E402

MODES = ("default", "zerothink", "lessthink", "morethink")
K = 5
BATCH = 64
VERDICTS = (
    ("think", "rs-match", "safechain-1"),
    ("answer", "rs-match", "safechain-1"),
    ("full", "rs-match", "safechain-1"),
    ("full", "llama-guard", "3-8b"),
    ("answer", "harmbench", "13b"),
)


def build(path: Path, samples: int) -> list[int]:
    """A database of running samples of one eval run; their ids."""
    store = Store(path)
    run = store.start_run("eval", k=K)
    prompts = [
        store.prompt_id("synthetic", f"p{p}", f"prompt {p}", kind="harmful", category=f"c{p % 7}")
        for p in range(samples // (len(MODES) * K))
    ]
    ids = [
        store.start_sample(run, prompt, mode=mode, k=k)
        for prompt in prompts
        for mode in MODES
        for k in range(K)
    ]
    store.close()
    return ids


def without_tallies(path: Path) -> None:
    """Drop every trigger that keeps a tally (the writes then cost what they did at v5)."""
    conn = sqlite3.connect(path)
    names = [
        name
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        if "tally" in name or name == "judgements_written_once"
    ]
    for name in names:
        conn.execute(f'DROP TRIGGER "{name}"')
    conn.commit()
    conn.close()


def finish(path: Path, ids: list[int], rng: random.Random) -> float:
    store = Store(path)
    start = time.perf_counter()
    for sample in ids:
        store.update_sample(sample, {"status": "done", "think_tokens": rng.randrange(200, 4000)})
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed


def judge(path: Path, ids: list[int], rng: random.Random) -> float:
    rows = [
        {
            "sample_id": sample,
            "part": part,
            "judge": judge,
            "judge_version": version,
            "prompt_hash": "",
            "label": rng.choice(("safe", "unsafe", "unparsed")),
            "score": None,
            "categories": None,
            "raw": None,
            "truncated": 0,
            "meta": None,
        }
        for sample in ids
        for part, judge, version in VERDICTS
    ]
    store = Store(path)
    start = time.perf_counter()
    for first in range(0, len(rows), BATCH):
        store.add_judgements(rows[first : first + BATCH])
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    found: dict[str, list[tuple[float, float]]] = {"finish": [], "verdicts": []}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            tallied, plain = Path(folder) / "tallied.sqlite", Path(folder) / "plain.sqlite"
            ids = build(tallied, args.samples)
            shutil.copy(tallied, plain)
            without_tallies(plain)
            for step, work in (("finish", finish), ("verdicts", judge)):
                order = [(tallied, 0), (plain, 1)]
                times = [0.0, 0.0]
                for path, slot in order if round_ % 2 == 0 else order[::-1]:
                    times[slot] = work(path, ids, random.Random(round_))
                found[step].append((times[0], times[1]))
            for path in (tallied, plain):
                for leftover in Path(folder).glob(path.name + "*"):
                    leftover.unlink()
    writes = {"finish": args.samples, "verdicts": args.samples * len(VERDICTS)}
    print(f"{args.samples:,} samples, {args.rounds} rounds, medians")
    print("| step | with tallies | without | ratio | µs a write, with / without |")
    print("| --- | --- | --- | --- | --- |")
    for step, pairs in found.items():
        ratio = statistics.median(a / b for a, b in pairs)
        a = statistics.median(a for a, _ in pairs)
        b = statistics.median(b for _, b in pairs)
        per = 1e6 / writes[step]
        print(f"| {step} | {a:.2f} s | {b:.2f} s | {ratio:.2f} | {a * per:.0f} / {b * per:.0f} |")


if __name__ == "__main__":
    main()
