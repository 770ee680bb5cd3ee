"""Judge throughput.

1. RS-Match: texts/s on 1 KB texts with no refusal in them (the worst case: every string is
   looked for in the whole text), on one core. Goal: >= 50,000 texts/s. The baseline, measured in
   the same run, is the plain loop `any(s in text for s in strings)`.
2. A transformers judge (Llama Guard format) on the tiny Llama that the tests build: verdicts/s
   batched (batch 16) against one by one, same texts. Reports the ratio.
3. Each newer guard (WildGuard, ShieldGemma, Qwen3Guard, StrongREJECT, Llama Guard 4) on the
   untrained tiny model of its architecture that the tests build: the same two rates and their
   ratio. Goal: >= 3x at batch 16 on the CPU.

For 2 and 3 each rate is the best of `--rounds` rounds, one by one and batched taking turns.

    python bench/judges.py [--texts 20000] [--guard-texts 64] [--rounds 3] [--only guards]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORDS = (
    "the lock pin tension wrench rake insert turn slowly each cylinder key door open tool then "
    "first next push pull gentle pressure until click"
).split()


def one_kb_texts(n: int, rng: random.Random) -> list[str]:
    texts = []
    for _ in range(n):
        words, size = [], 0
        while size < 1024:
            word = rng.choice(WORDS)
            words.append(word)
            size += len(word) + 1
        texts.append(" ".join(words)[:1024])
    return texts


def bench_rsmatch(n: int) -> None:
    from lrmscope.engine.judges.rsmatch import RSMatch

    texts = one_kb_texts(n, random.Random(0))
    judge = RSMatch()
    pairs = [("prompt", t) for t in texts]
    start = time.perf_counter()
    verdicts = judge.judge_batch(pairs)
    ours = n / (time.perf_counter() - start)
    assert all(v.label == "unsafe" for v in verdicts)
    start = time.perf_counter()
    for text in texts:
        any(s in text for s in judge.strings)
    plain = n / (time.perf_counter() - start)
    print(
        f"RS-Match, {n} texts of 1 KB, no match: {ours:,.0f} texts/s "
        f"(plain substring loop {plain:,.0f} texts/s, ratio {ours / plain:.1f}x; goal >= 50,000)"
    )


def batched_and_single(judge, pairs, rounds: int) -> tuple[float, float]:
    """Verdicts/s one by one and in batches of 16 on the same pairs, after a warm-up: the best
    of `rounds` rounds in which the two take turns, so that a burst of load from another
    process on a shared machine costs one round, not one side."""
    judge.judge_batch(pairs[:2])  # warm-up
    single = batched = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for pair in pairs:
            judge.judge_batch([pair])
        single = max(single, len(pairs) / (time.perf_counter() - start))
        start = time.perf_counter()
        for i in range(0, len(pairs), 16):
            judge.judge_batch(pairs[i : i + 16])
        batched = max(batched, len(pairs) / (time.perf_counter() - start))
    return single, batched


def bench_guards(n: int, device: str, rounds: int) -> None:
    import torch

    from lrmscope.engine.judges.registry import JudgeOptions, build_judge
    from tests.support.tiny_judges import GUARD_KINDS, build_guard, sentence

    torch.set_num_threads(1)
    rng = random.Random(2)
    pairs = [(sentence(rng, False, 5), sentence(rng, i % 2 == 0, 30)) for i in range(n)]
    for kind in GUARD_KINDS:
        with tempfile.TemporaryDirectory() as folder:
            name = "llama-guard" if kind == "llama-guard-4" else kind
            model = build_guard(Path(folder), kind)
            judge = build_judge(f"{name}={model}", JudgeOptions(device))
            single, batched = batched_and_single(judge, pairs, rounds)
        print(
            f"{kind} on its tiny untrained model ({judge.device}, 1 CPU thread), {n} texts, "
            f"best of {rounds}: "
            f"one by one {single:.1f}/s, batched x16 {batched:.1f}/s, "
            f"ratio {batched / single:.1f}x (goal >= 3x)"
        )


def bench_transformers(n: int, rounds: int) -> None:
    import torch

    from lrmscope.engine.judges.hf import LlamaGuardHF
    from tests.support.tiny_judges import build, sentence

    torch.set_num_threads(1)
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as folder:
        judge = LlamaGuardHF(str(build(Path(folder), steps=30)))
        pairs = [(sentence(rng, False, 5), sentence(rng, i % 2 == 0, 30)) for i in range(n)]
        single, batched = batched_and_single(judge, pairs, rounds)
    print(
        f"Llama Guard format on the tiny test Llama (1 thread), {n} texts, best of {rounds}: "
        f"one by one {single:.1f}/s, batched x16 {batched:.1f}/s, ratio {batched / single:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20000)
    parser.add_argument("--guard-texts", type=int, default=64)
    parser.add_argument("--only", choices=("rs-match", "llama-guard", "guards"))
    parser.add_argument("--rounds", type=int, default=3, help="transformers judges: best of N")
    parser.add_argument("--device", default="cpu", help="the newer guards' device (cpu, cuda)")
    args = parser.parse_args()
    if args.only in (None, "rs-match"):
        bench_rsmatch(args.texts)
    if args.only in (None, "llama-guard"):
        bench_transformers(args.guard_texts, args.rounds)
    if args.only in (None, "guards"):
        bench_guards(args.guard_texts, args.device, args.rounds)


if __name__ == "__main__":
    main()
