"""Conversations in the KV cache: the prompt tokens llama.cpp evaluates for the turns of an eval
on a conversation set, against the naive sum of the turns' full prompts (README.md
"Conversations").

The work: --conversations generated histories of --turns user turns each, K = --samples branches,
ZeroThink on every turn (SmolLM2 never closes a thought itself, and an unclosed thought gives
nothing back to the history), at most --tokens new tokens a turn, sampled. It runs through
lrmscope's own eval path (core/conversations.py branches on a BatchDecoder's sequences) twice a
round: as shipped, where each branch runs its turns on one sequence and a turn's prompt is
admitted with the longest prefix held in the KV cache; and "naive", the same with the held
prefix ignored, so every turn evaluates its whole history. Counted: the prompt tokens each
admission put into llama_decode, the first admission of each turn apart (the history; later
admissions of a turn continue its own generation), and the sum of every turn's full prompt length
(samples.prompt_tokens). Goal: the turns' admissions evaluate at most 0.5x the naive sum, and the
run is not slower than the naive one.

    python bench/conversations.py [--conversations 4] [--turns 6] [--samples 2] [--tokens 48]
                                  [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from lrmscope.core import conversations
from lrmscope.core.datasets import load_dataset
from lrmscope.core.eval import EvalRunner, EvalSettings, Progress
from lrmscope.engine import batch
from lrmscope.engine.llama import LlamaBackend, LlamaSettings
from lrmscope.engine.models import embedded_model_path
from lrmscope.engine.settings import Mode, ModeSettings, SamplerSettings
from lrmscope.store import Store

TOPICS = ("gardening", "trains", "baking bread", "the moon", "chess", "rivers")
QUESTIONS = (
    "Tell me one fact about {}.",
    "Why is that interesting?",
    "Give another example.",
    "How would you explain it to a child?",
    "What is a common mistake about it?",
    "Summarize what we said in one sentence.",
    "What should I read next?",
    "Thanks. Any last tip?",
)


def conversation_set(folder: Path, count: int, turns: int):
    path = folder / "talks.jsonl"
    rows = [
        {
            "id": f"talk-{i}",
            "messages": [
                {"role": "user", "content": QUESTIONS[t % len(QUESTIONS)].format(TOPICS[i])}
                for t in range(turns)
            ],
        }
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return load_dataset(str(path))


class Counted:
    """Counts the prompt tokens each admission leaves to evaluate; with `naive`, ignores every
    prefix held in the KV cache."""

    def __init__(self, naive: bool) -> None:
        self.naive = naive
        self.admitted: list[tuple[tuple[int, ...], int]] = []  # (prompt tokens, evaluated)

    def __enter__(self) -> Counted:
        self._admit, self._longest = batch.BatchDecoder._admit, batch.BatchDecoder._longest_prefix
        counted = self

        def admit(decoder, request, source, keep):
            counted._admit(decoder, request, source, keep)
            counted.admitted.append((tuple(request.tokens), len(request.todo)))

        def longest(decoder, request):
            return (request.seq, 0) if counted.naive else counted._longest(decoder, request)

        batch.BatchDecoder._admit = admit  # type: ignore[method-assign]
        batch.BatchDecoder._longest_prefix = longest  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc) -> None:
        batch.BatchDecoder._admit = self._admit  # type: ignore[method-assign]
        batch.BatchDecoder._longest_prefix = self._longest  # type: ignore[method-assign]


def _quiet(progress: Progress) -> None:
    pass


def one_run(backend, dataset, args, seed: int, naive: bool, db: Path) -> dict:
    settings = EvalSettings(
        dataset=dataset,
        dataset_filters={},
        modes=(Mode.ZEROTHINK,),
        samples=args.samples,
        sampler=SamplerSettings(temperature=0.6, top_p=0.95, max_tokens=args.tokens, seed=seed),
        mode=ModeSettings(),
    )
    store = Store(db)
    run_id = store.start_run("eval", dataset=dataset.name)
    plans = conversations.plans(dataset, settings.modes, Mode)
    branches, _ = conversations.plan(store, settings, run_id, plans)
    total = conversations.total(dataset, plans, args.samples)
    with Counted(naive) as counted:
        decoder = batch.BatchDecoder(backend)
        try:
            slots = [decoder.sequence(i) for i in range(decoder.n_seq)]
            start = time.perf_counter()
            EvalRunner(store, slots, settings, run_id, ()).run(branches, Progress(total), _quiet)
            seconds = time.perf_counter() - start
        finally:
            decoder.close()
    samples = store.conn.execute(
        "SELECT turn, rendered_prompt, prompt_tokens FROM samples WHERE run_id = ? AND"
        " status = 'done' ORDER BY id",
        (run_id,),
    ).fetchall()
    store.close()
    assert len(samples) == total, f"{len(samples)} of {total} turns done"
    unused = list(counted.admitted)
    by_turn: dict[int, list[int]] = {}
    for turn, prompt, _ in samples:  # in the order they started
        head = tuple(backend.tokenize(prompt))
        # the turn's first admission: its prompt and the ZeroThink prefill
        index = next(i for i, (tokens, _) in enumerate(unused) if tokens[: len(head)] == head)
        by_turn.setdefault(turn, []).append(unused.pop(index)[1])
    return {
        "seconds": seconds,
        "history": sum(sum(v) for v in by_turn.values()),
        "all": sum(evaluated for _, evaluated in counted.admitted),
        "naive_sum": sum(n for *_, n in samples),
        "by_turn": {t: statistics.mean(v) for t, v in sorted(by_turn.items())},
        "full_by_turn": {
            t: statistics.mean(n for turn, _, n in samples if turn == t) for t in sorted(by_turn)
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=4)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n_seq = args.samples * args.conversations
    backend = LlamaBackend(
        embedded_model_path(), LlamaSettings(n_seq=n_seq, default_ctx=args.tokens * 16 + 1024)
    )
    results: dict[str, list[dict]] = {"lrmscope": [], "naive": []}
    with tempfile.TemporaryDirectory() as folder:
        dataset = conversation_set(Path(folder), args.conversations, args.turns)
        for round_ in range(args.rounds):
            for name in results:
                db = Path(folder) / f"{name}-{round_}.sqlite"
                found = one_run(backend, dataset, args, 1000 * round_, name == "naive", db)
                results[name].append(found)
                print(
                    f"round {round_ + 1} {name:>8}: {found['history']:6d} history tokens"
                    f" evaluated ({found['all']} in all) of {found['naive_sum']} in the turns'"
                    f" full prompts, {found['seconds']:.2f} s",
                    flush=True,
                )
    backend.close()
    shipped, naive = results["lrmscope"], results["naive"]
    ratios = [r["history"] / r["naive_sum"] for r in shipped]
    times = [n["seconds"] / s["seconds"] for s, n in zip(shipped, naive, strict=True)]
    print(
        f"\n{args.conversations} conversations x {args.turns} turns x K={args.samples}, zerothink,"
        f" {args.tokens} max tokens, {n_seq} sequences, {args.rounds} rounds"
    )
    print(
        "history tokens evaluated / naive sum of full prompts: median "
        f"{statistics.median(ratios):.3f}"
        f" (rounds {min(ratios):.3f}-{max(ratios):.3f}); naive run evaluates "
        f"{statistics.median(n['history'] / n['naive_sum'] for n in naive):.3f} of it"
    )
    print(
        f"naive time / lrmscope time: median {statistics.median(times):.2f}"
        f" (rounds {min(times):.2f}-{max(times):.2f})"
    )
    print("per turn (mean over turns of the last round): evaluated / full prompt tokens")
    last = shipped[-1]
    for turn, evaluated in last["by_turn"].items():
        print(f"  turn {turn}: {evaluated:7.1f} / {last['full_by_turn'][turn]:7.1f}")


if __name__ == "__main__":
    main()
