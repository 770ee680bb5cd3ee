"""Eval at the hardware ceiling: four shapes, each against its baseline in the same run.

1. full: `lrmscope eval` with slots kept full (16 prompts of the demo set x K=5, `--parallel 4`:
   20 sequences, 80 samples, so finished sequences take the next prompt's samples), at most
   --tokens new tokens, sampling at temperature 0.6. Its ceiling is the same schedule in bare
   batched `llama_decode`: every sample generates the number of tokens it generated in the eval,
   slots refill in the eval's order, a new prompt goes into the step's decode whole but for the
   longest prefix another sequence's cache holds (its K - 1 later samples copy all of it a step
   later, once it is there, other prompts the system prompt they share), no sampling and
   nothing around it. A first eval (not
   counted) gives the schedule; each round then runs the bare schedule, the eval (same seed) and
   the bare schedule again, and compares the eval's tokens/s with the two bare runs' mean, so
   the machine's drift between runs (as large as the gap to the goal) falls on both sides.
   Goal: >= 0.95.
2. short: 200 prompts, 2 new tokens each, greedy: `lrmscope eval` (`--parallel 1` and 8)
   against a naive loop of llama-cpp-python's `create_completion` on the prompt lrmscope
   evaluates (the model's chat template, then the think opener, as an R1 template ends its
   generation prompt), and, for reference, of `create_chat_completion`, whose prompt on the
   embedded model has no think opener (4 tokens fewer of the about 28 a sample evaluates once
   the shared prefix is in the cache). The naive loop runs first and last in each round, the
   two evals between, and counts as the mean of its two runs. Ms a sample; goals >= 1.0x the
   naive loop, >= 1.3x with `--parallel 8`.
3. stall: a `BatchDecoder` with 15 sequences decoding while prompts are admitted one after
   another into the 16th: the longest gap between two tokens of a running sequence, in steps
   (the median gap between its tokens before the admissions). Goal: <= 2.
4. shared: two `lrmscope eval`s started at once, default settings (16 prompts, K=1, at most 64
   tokens), against one alone: their tokens/s together over one's alone. Goal: >= 0.8.

The eval's time is its run's span in the database (from after the model is loaded to the end,
judging included); tokens/s counts generated tokens.

    python bench/eval_ceiling.py [--only full,short,stall,shared] [--rounds 2] [--tokens 128]
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import llama_cpp  # noqa: E402

from lrmscope.core.datasets import load_dataset  # noqa: E402
from lrmscope.engine.backend import Message  # noqa: E402
from lrmscope.engine.batch import BatchDecoder  # noqa: E402
from lrmscope.engine.llama import (  # noqa: E402
    LlamaBackend,
    LlamaSettings,
    common_prefix,
    llama_class_repacking,
)
from lrmscope.engine.models import embedded_model_path  # noqa: E402
from lrmscope.engine.prompt import with_think_opener  # noqa: E402
from lrmscope.engine.settings import SamplerSettings  # noqa: E402

MODEL = embedded_model_path()


def eval_command(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "lrmscope", "eval", "--new-run", "--db", str(db), *args]


def run_span(db: Path) -> tuple[int, float, datetime, datetime]:
    """Generated tokens, seconds, start and end of the newest run in `db`."""
    conn = sqlite3.connect(db)
    try:
        run_id, started, ended = conn.execute(
            "SELECT id, started_at, ended_at FROM runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
        generated = conn.execute(
            "SELECT sum(think_tokens + answer_tokens) FROM samples WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
    finally:
        conn.close()
    start, end = datetime.fromisoformat(started), datetime.fromisoformat(ended)
    return generated, (end - start).total_seconds(), start, end


def sample_lengths(db: Path) -> list[tuple[str, int]]:
    """(prompt key, generated tokens) of the newest run's samples in the eval's job order."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT p.prompt_key, s.think_tokens + s.answer_tokens FROM samples s "
            "JOIN prompts p ON p.id = s.prompt_id "
            "WHERE s.run_id = (SELECT max(id) FROM runs) ORDER BY s.prompt_id, s.k"
        ).fetchall()
    finally:
        conn.close()


# -- 1. full slots -----------------------------------------------------------------------------


def bare_schedule(prompts: dict[str, list[int]], jobs: list[tuple[str, int]], slots: int) -> float:
    """Seconds to run the eval's schedule in bare batched decoding (see the docstring)."""
    backend = LlamaBackend(MODEL, LlamaSettings(n_seq=slots, n_ctx=1024))
    room = max(backend.n_batch, slots)
    batch = llama_cpp.llama_batch_init(room * 2, 0, 1)
    memory = llama_cpp.llama_get_memory(backend.ctx.ctx)
    held: dict[int, str] = {}  # the prompt whose tokens each sequence's cache starts with
    position = [0] * slots
    left = [0] * slots
    queue = list(jobs)

    def decode(entries):
        for i, (token, pos, seq, logits) in enumerate(entries):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
            batch.seq_id[i][0], batch.logits[i] = seq, logits
        batch.n_tokens = len(entries)
        assert llama_cpp.llama_decode(backend.ctx.ctx, batch) == 0

    def admit(seq: int, key: str, entries: list) -> None:
        """Start the sequence on `key`'s prompt from the longest prefix another sequence's
        cache holds: all of it for the prompt's K - 1 later samples, else the system prompt
        the prompts share, as the eval keeps them."""
        llama_cpp.llama_memory_seq_rm(memory, seq, 0, -1)
        held.pop(seq, None)
        prompt, owner, shared = prompts[key], None, 0
        for other, other_key in held.items():
            if (n := common_prefix(prompts[other_key], prompt)) > shared:
                owner, shared = other, n
        if owner is not None:
            llama_cpp.llama_memory_seq_cp(memory, owner, seq, 0, shared)
        entries += [
            (t, shared + i, seq, shared + i == len(prompt) - 1)
            for i, t in enumerate(prompt[shared:])
        ]

    try:
        start = time.perf_counter()
        while queue or any(left):
            entries: list = []
            admitted: dict[int, str] = {}
            for seq in range(slots):
                # a prompt going in this step is in no cache yet: its later samples wait a step
                # and the next prompts go first, as the eval admits them
                waiting = (i for i, (key, _) in enumerate(queue) if key not in admitted.values())
                if left[seq] == 0 and (index := next(waiting, None)) is not None:
                    key, tokens = queue.pop(index)
                    admit(seq, key, entries)
                    admitted[seq] = key
                    position[seq], left[seq] = len(prompts[key]), max(tokens, 1)
                if left[seq]:
                    entries.append((2000, position[seq], seq, True))
                    position[seq] += 1
                    left[seq] -= 1
            for chunk in range(0, len(entries), room):
                decode(entries[chunk : chunk + room])
            held.update(admitted)
        return time.perf_counter() - start
    finally:
        llama_cpp.llama_batch_free(batch)
        backend.close()


FULL_PROMPTS, FULL_K, FULL_PARALLEL = 16, 5, 4


def full_eval_args(tokens: int) -> list[str]:
    """The full shape's `lrmscope eval` arguments after --db."""
    return [
        *("--dataset", "demo", "--limit", str(FULL_PROMPTS), "--samples", str(FULL_K)),
        *("--parallel", str(FULL_PARALLEL), "--max-tokens", str(tokens)),
        *("--temperature", "0.6", "--top-p", "0.95", "--seed", "0"),
    ]


def full(args) -> None:
    slots = FULL_K * FULL_PARALLEL
    backend = LlamaBackend(MODEL, LlamaSettings(n_ctx=1024))
    rows = load_dataset("demo", limit=FULL_PROMPTS).rows
    prompts = {
        r.key: backend.tokenize(with_think_opener(backend.render([Message("user", r.text)]))[0])
        for r in rows
    }
    backend.close()
    command = full_eval_args(args.tokens)
    ratios = []
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "full.sqlite"
        subprocess.run(eval_command(db, *command), check=True, capture_output=True)
        lengths = sample_lengths(db)  # the schedule every bare run replays
        bare_tokens = sum(max(n, 1) for _, n in lengths)
        for round_ in range(args.rounds):
            before = bare_schedule(prompts, lengths, slots)
            subprocess.run(eval_command(db, *command), check=True, capture_output=True)
            generated, seconds, _, _ = run_span(db)
            after = bare_schedule(prompts, lengths, slots)
            bare_rate = bare_tokens / statistics.mean([before, after])
            ratios.append(generated / seconds / bare_rate)
            print(
                f"full, round {round_ + 1}: eval {generated} tokens in {seconds:.2f} s = "
                f"{generated / seconds:.1f} tok/s; bare schedule of {bare_tokens} tokens "
                f"before and after it {before:.2f} s and {after:.2f} s = {bare_rate:.1f} tok/s; "
                f"eval at {ratios[-1]:.3f} of the ceiling",
                flush=True,
            )
    print(f"full: median {statistics.median(ratios):.3f} of the ceiling (goal >= 0.95)")


# -- 2. short samples ----------------------------------------------------------------------------


def per_call(call, items) -> float:
    """Seconds a call of `call` on each of `items`, one after another."""
    start = time.perf_counter()
    for item in items:
        call(item)
    return (time.perf_counter() - start) / len(items)


SHORT_TEXTS = [
    f"Question {i}: what is {i} plus {i + 1}? Answer with one number." for i in range(200)
]


def write_short_dataset(path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt"])
        writer.writerows([t] for t in SHORT_TEXTS)


def short_eval_args(data: Path, parallel: int) -> list[str]:
    """The short shape's `lrmscope eval` arguments after --db, on the set `data` holds."""
    return ["--dataset", str(data), "--greedy", "--max-tokens", "2", "--parallel", str(parallel)]


def naive_model() -> tuple[llama_cpp.Llama, list[str]]:
    """The naive loop's model (llama-cpp-python's `Llama`, lrmscope's thread count and repacking
    setting) and the short shape's prompts as lrmscope evaluates them."""
    backend = LlamaBackend(MODEL, LlamaSettings(n_ctx=512))
    threads, extra = backend.settings.threads, backend.settings.extra_bufts
    prompts = [with_think_opener(backend.render([Message("user", t)]))[0] for t in SHORT_TEXTS]
    backend.close()
    with llama_class_repacking(extra):
        llm = llama_cpp.Llama(
            str(MODEL),
            n_ctx=512,
            n_threads=threads,
            n_threads_batch=threads,
            flash_attn=True,
            verbose=False,
        )
    return llm, prompts


def naive_loop(llm: llama_cpp.Llama, prompts: list[str]) -> float:
    """Seconds a sample of the naive loop: each prompt completed with 2 greedy tokens."""
    return per_call(lambda p: llm.create_completion(p, max_tokens=2, temperature=0.0), prompts)


def short(args) -> None:
    texts = SHORT_TEXTS
    per: dict[str, list[float]] = {
        "naive": [],
        "naive chat": [],
        "parallel 1": [],
        "parallel 8": [],
    }
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "short.csv"
        write_short_dataset(data)
        db = Path(folder) / "short.sqlite"
        llm, prompts = naive_model()

        for round_ in range(args.rounds):
            before = naive_loop(llm, prompts)
            per["naive chat"].append(
                per_call(
                    lambda t: llm.create_chat_completion(
                        [{"role": "user", "content": t}], max_tokens=2, temperature=0.0
                    ),
                    texts,
                )
            )
            for parallel in (1, 8):
                command = eval_command(db, *short_eval_args(data, parallel))
                subprocess.run(command, check=True, capture_output=True)
                _, seconds, _, _ = run_span(db)
                per[f"parallel {parallel}"].append(seconds / len(texts))
            per["naive"].append(statistics.mean([before, naive_loop(llm, prompts)]))
            print(
                f"short, round {round_ + 1}: "
                + ", ".join(f"{name} {1000 * v[-1]:.1f} ms a sample" for name, v in per.items()),
                flush=True,
            )
        llm.close()
    naive, chat = statistics.median(per["naive"]), statistics.median(per["naive chat"])
    for name in ("parallel 1", "parallel 8"):
        ms = statistics.median(per[name])
        rounds = [n / p for n, p in zip(per["naive"], per[name])]
        print(
            f"short: {name} {1000 * ms:.1f} ms a sample, {naive / ms:.2f}x the naive loop "
            f"(median of the rounds' ratios {statistics.median(rounds):.2f}x; "
            f"{chat / ms:.2f}x the chat loop, its prompt shorter)"
        )
    print(f"short: naive {1000 * naive:.1f} ms a sample, chat {1000 * chat:.1f}")


# -- 3. the stall while admitting prompts --------------------------------------------------------


def stall(args) -> None:
    running, admitted = 15, 12
    backend = LlamaBackend(MODEL, LlamaSettings(n_seq=running + 1, n_ctx=1024))
    decoder = BatchDecoder(backend)
    greedy = SamplerSettings(temperature=0.0, top_p=1.0, max_tokens=400, seed=1)
    rows = load_dataset("demo").rows
    times: list[list[float]] = [[] for _ in range(running)]
    admitting: list[float] = []

    def decode(seq: int) -> None:
        prompt = with_think_opener(backend.render([Message("user", rows[seq].text)]))[0]
        for _ in decoder.sequence(seq).stream(
            prompt, max_tokens=400, stop=[], sampler=greedy, seed=seq
        ):
            times[seq].append(time.perf_counter())

    threads = [threading.Thread(target=decode, args=(s,)) for s in range(running)]
    for thread in threads:
        thread.start()
    time.sleep(3.0)  # every sequence decoding
    admitting.append(time.perf_counter())
    for i in range(admitted):
        text = rows[running + i].text + " Explain every step in detail."
        prompt = with_think_opener(backend.render([Message("user", text)]))[0]
        one = SamplerSettings(temperature=0.0, top_p=1.0, max_tokens=1, seed=1)
        list(decoder.sequence(running).stream(prompt, max_tokens=1, stop=[], sampler=one, seed=1))
    admitting.append(time.perf_counter())
    for thread in threads:
        thread.join()
    decoder.close()
    backend.close()
    before, during = [], []
    for seq_times in times:
        gaps = list(zip(seq_times, seq_times[1:]))
        before += [b - a for a, b in gaps if b < admitting[0]]
        during += [b - a for a, b in gaps if admitting[0] <= a and b <= admitting[1]]
    step = statistics.median(before)
    print(
        f"stall: {admitted} prompts admitted beside {running} decoding sequences in "
        f"{admitting[1] - admitting[0]:.2f} s; step {1000 * step:.1f} ms before; longest gap "
        f"{1000 * max(during):.1f} ms = {max(during) / step:.2f} steps (goal <= 2); median gap "
        f"while admitting {statistics.median(during) / step:.2f} steps"
    )


# -- 4. two evals on one machine -----------------------------------------------------------------


def shared(args) -> None:
    def command(db: Path) -> list[str]:
        return eval_command(
            db, "--dataset", "demo", "--limit", "16", "--samples", "1", "--max-tokens", "64"
        )

    alone_rates, together_rates = [], []
    with tempfile.TemporaryDirectory() as folder:
        dbs = [Path(folder) / f"shared-{i}.sqlite" for i in range(2)]
        for round_ in range(args.rounds):
            subprocess.run(command(dbs[0]), check=True, capture_output=True)
            generated, seconds, _, _ = run_span(dbs[0])
            alone_rates.append(generated / seconds)
            both = [subprocess.Popen(command(db), stdout=subprocess.DEVNULL) for db in dbs]
            for process in both:
                assert process.wait() == 0
            spans = [run_span(db) for db in dbs]
            wall = (max(s[3] for s in spans) - min(s[2] for s in spans)).total_seconds()
            together_rates.append(sum(s[0] for s in spans) / wall)
            print(
                f"shared, round {round_ + 1}: alone {alone_rates[-1]:.1f} tok/s; two at once "
                f"{together_rates[-1]:.1f} tok/s together ("
                + ", ".join(f"{s[0] / s[1]:.1f}" for s in spans)
                + " each)",
                flush=True,
            )
    ratio = statistics.median(together_rates) / statistics.median(alone_rates)
    print(f"shared: two at once {ratio:.2f} of one alone (goal >= 0.8)")


SHAPES = {"full": full, "short": short, "stall": stall, "shared": shared}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SHAPES))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    for name in args.only.split(","):
        SHAPES[name](args)


if __name__ == "__main__":
    main()
