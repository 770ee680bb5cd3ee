"""Eval throughput: `lrmscope eval` (batched decoding) against a naive loop of llama-cpp-python
`create_completion` calls doing the same work.

The work: the first --prompts prompts of the demo set, K samples each, sampling at temperature
0.6 and top-p 0.95, at most --tokens new tokens per sample. The naive loop makes the samples one
after another with the high-level `Llama` class, in two configurations: "naive" as a script
would write it (`Llama(path, n_ctx=...)`, the library's defaults, with lrmscope's thread count
since the default takes half the cores), and "naive, tuned" with every llama.cpp setting lrmscope
uses (flash attention on, as llama.cpp's "auto" picks on this CPU, where the library's default is
off). lrmscope runs `lrmscope eval` in a subprocess, once with --parallel 1 (the K samples of one
prompt decode together) and once with --parallel P (P prompts, P x K sequences). Rounds alternate
so drift on the machine hits all alike. The figure is generated tokens per second; the eval's
time is its run's own span in the database (from after the model is loaded to the end, judging
and saving included), the naive loops' the time of their calls. Goals on 2 CPU cores, against
the naive loop: >= 1.6x at --parallel 1, >= 2.0x at --parallel 4. For scale, the script also
measures bare batched `llama_decode` (1, K and P x K sequences, no sampling, no Python around
it): the ceiling of any implementation on this build.

    python bench/eval_throughput.py [--model PATH] [--prompts 4] [--samples 5] [--tokens 128]
                                    [--parallel 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import llama_cpp  # noqa: E402
from engine_overhead import plain_llama  # noqa: E402
from eval_ceiling import run_span  # noqa: E402

from lrmscope.core.datasets import load_dataset  # noqa: E402
from lrmscope.engine.backend import Message  # noqa: E402
from lrmscope.engine.llama import LlamaBackend, LlamaSettings, llama_class_repacking  # noqa: E402
from lrmscope.engine.models import embedded_model_path  # noqa: E402
from lrmscope.engine.prompt import with_think_opener  # noqa: E402

TEMPERATURE, TOP_P = 0.6, 0.95


def naive(llm, prompts: list[str], samples: int, tokens: int, seed: int) -> tuple[int, float]:
    generated = 0
    start = time.perf_counter()
    for prompt in prompts:
        for k in range(samples):
            out = llm.create_completion(
                prompt,
                max_tokens=tokens,
                temperature=TEMPERATURE,
                top_p=TOP_P,
                top_k=0,
                min_p=0.0,
                repeat_penalty=1.0,
                seed=seed + k,
            )
            generated += out["usage"]["completion_tokens"]
    return generated, time.perf_counter() - start


def ceiling(path: Path, sequences: int, tokens: int, prompt: int = 48) -> float:
    """Tokens/s of bare batched decoding of the same shape as the eval (a `prompt`-token prefix
    shared by every sequence, then `tokens` steps of one token per sequence per `llama_decode`),
    with no sampling and no Python around it: the ceiling of any implementation on this build."""
    backend = LlamaBackend(path, LlamaSettings(n_seq=sequences, n_ctx=tokens + 512))
    batch = llama_cpp.llama_batch_init(max(prompt, sequences), 0, 1)
    memory = llama_cpp.llama_get_memory(backend.ctx.ctx)

    def decode(entries):
        for i, (token, pos, seq) in enumerate(entries):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
            batch.seq_id[i][0], batch.logits[i] = seq, True
        batch.n_tokens = len(entries)
        llama_cpp.llama_decode(backend.ctx.ctx, batch)

    try:
        decode([(1000 + i, i, 0) for i in range(prompt)])
        for seq in range(1, sequences):
            llama_cpp.llama_memory_seq_cp(memory, 0, seq, -1, -1)
        start = time.perf_counter()
        for step in range(tokens):
            decode([(2000 + step, prompt + step, seq) for seq in range(sequences)])
        return sequences * tokens / (time.perf_counter() - start)
    finally:
        llama_cpp.llama_batch_free(batch)
        backend.close()


def lrmscope_eval(args, parallel: int, db: Path, seed: int) -> tuple[int, float]:
    command = [
        sys.executable,
        "-m",
        "lrmscope",
        "eval",
        "--dataset",
        "demo",
        "--limit",
        str(args.prompts),
        "--samples",
        str(args.samples),
        "--max-tokens",
        str(args.tokens),
        "--temperature",
        str(TEMPERATURE),
        "--top-p",
        str(TOP_P),
        "--parallel",
        str(parallel),
        "--seed",
        str(seed),
        "--new-run",
        "--db",
        str(db),
    ]
    if args.model:
        command += ["--model", str(args.model)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    generated, seconds, _, _ = run_span(db)
    return generated, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    path = args.model or embedded_model_path()

    backend = LlamaBackend(path, LlamaSettings(n_ctx=args.tokens + 512))
    rows = load_dataset("demo", limit=args.prompts).rows
    prompts = [with_think_opener(backend.render([Message("user", r.text)]))[0] for r in rows]
    settings = backend.settings
    tuned = plain_llama(path, settings, backend.n_ctx)
    # The library's defaults but AMX repacking, which crashes (docs/study.md "Machines").
    with llama_class_repacking(settings.extra_bufts):
        plain = llama_cpp.Llama(
            str(path),
            n_ctx=backend.n_ctx,
            n_threads=settings.threads,
            n_threads_batch=settings.threads,
            verbose=False,
        )
    backend.close()
    for llm in (tuned, plain):
        naive(llm, prompts[:1], 1, 16, 0)  # warm-up
    rates: dict[str, list[float]] = {
        "naive": [],
        "naive, tuned": [],
        "parallel 1": [],
        f"parallel {args.parallel}": [],
    }
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.sqlite"
        parallel = args.parallel
        runs = (  # each takes the round's seed
            ("naive", lambda seed: naive(plain, prompts, args.samples, args.tokens, seed)),
            ("naive, tuned", lambda seed: naive(tuned, prompts, args.samples, args.tokens, seed)),
            ("parallel 1", lambda seed: lrmscope_eval(args, 1, db, seed)),
            (f"parallel {parallel}", lambda seed: lrmscope_eval(args, parallel, db, seed)),
        )
        for round_ in range(args.rounds):
            for name, run in runs:
                generated, seconds = run(1000 * round_)
                rates[name].append(generated / seconds)
                print(
                    f"round {round_ + 1} {name:>12}: {generated:5d} tokens in {seconds:6.2f} s"
                    f" = {generated / seconds:6.1f} tok/s",
                    flush=True,
                )
    base = statistics.median(rates["naive"])
    strict = statistics.median(rates["naive, tuned"])
    shapes = (1, args.samples, args.samples * args.parallel)
    bare = {k: ceiling(path, k, args.tokens) for k in shapes}
    print(
        f"\nmodel {path.name}, {settings.threads} threads, {args.prompts} prompts x K="
        f"{args.samples}, {args.tokens} max tokens, sampling, {args.rounds} rounds (medians)"
    )
    for name, values in rates.items():
        rate = statistics.median(values)
        print(
            f"{name:>12}: {rate:6.1f} tok/s  ratio {rate / base:.2f}x "
            f"(against naive, tuned: {rate / strict:.2f}x)"
        )
    for sequences, rate in bare.items():
        print(
            f"bare llama_decode, {sequences:2d} sequences: {rate:6.1f} tok/s  "
            f"ratio {rate / base:.2f}x (against naive, tuned: {rate / strict:.2f}x)"
        )


if __name__ == "__main__":
    main()
