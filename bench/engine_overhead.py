"""Engine overhead: lrmscope's streaming path against a plain llama-cpp-python streaming loop.

Both load the same GGUF with the same llama.cpp settings, generate from the same prompt with the
same sampler settings, seed and token count, and consume every streamed piece without printing.
Decoding is greedy: lrmscope applies temperature before top-p (as vLLM does, the study's setting)
while llama-cpp-python applies it last, so only greedy runs produce the same tokens, which the
script checks on every pair, making the work compared identical.
lrmscope's path includes the mode controller, the trace parser and the SQLite sample writer.
Runs alternate (A B A B ...) so that drift on the machine hits both alike; the figure is the
median of the per-pair ratios. Goal: lrmscope >= 0.97 of the plain loop.

    python bench/engine_overhead.py [--model PATH] [--tokens 256] [--pairs 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import llama_cpp

from lrmscope.core.generate import record, start_sample
from lrmscope.engine.backend import Message
from lrmscope.engine.generation import Generation
from lrmscope.engine.llama import PROMPT_BATCH, LlamaBackend, LlamaSettings, llama_class_repacking
from lrmscope.engine.models import embedded_model_path
from lrmscope.engine.prompt import with_think_opener
from lrmscope.engine.settings import ModeSettings, SamplerSettings
from lrmscope.store import Store

PROMPT = "Write a long, detailed essay about the history of the Roman Empire."


def plain_llama(path: Path, settings: LlamaSettings, n_ctx: int) -> llama_cpp.Llama:
    """The high-level Llama class, with the same model parameters lrmscope uses."""
    with llama_class_repacking(settings.extra_bufts):
        return llama_cpp.Llama(
            str(path),
            n_gpu_layers=settings.gpu_layers,
            n_ctx=n_ctx,
            n_threads=settings.threads,
            n_threads_batch=settings.threads,
            n_batch=PROMPT_BATCH,
            n_ubatch=PROMPT_BATCH,
            # lrmscope leaves flash attention on llama.cpp's "auto", which enables it where the
            # device supports it (CPU included); the bench checks that both produce the same text.
            flash_attn=True,
            verbose=False,
        )


def run_plain(llm: llama_cpp.Llama, prompt: str, sampler: SamplerSettings) -> tuple[str, float]:
    start = time.perf_counter()
    text = []
    for chunk in llm.create_completion(
        prompt,
        max_tokens=sampler.max_tokens,
        temperature=sampler.temperature,
        top_p=sampler.top_p,
        top_k=sampler.top_k,
        min_p=sampler.min_p,
        repeat_penalty=sampler.repeat_penalty,
        seed=sampler.seed,
        stream=True,
    ):
        text.append(chunk["choices"][0]["text"])
    return "".join(text), time.perf_counter() - start


def run_lrmscope(backend, store, run_id, prompt, sampler) -> tuple[str, int, float]:
    start = time.perf_counter()
    gen = Generation(backend, prompt, sampler=sampler, mode=ModeSettings())
    ref = start_sample(
        store, run_id, gen, user_text=PROMPT, dataset="bench", think_opener_added=True
    )
    for event in record(store, ref, gen):
        final = event
    elapsed = time.perf_counter() - start
    return final.trace.raw, final.stats.think_tokens + final.stats.answer_tokens, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=7)
    args = parser.parse_args()
    path = args.model or embedded_model_path()

    backend = LlamaBackend(path)
    llm = plain_llama(path, backend.settings, backend.n_ctx)
    prompt, _ = with_think_opener(backend.render([Message("user", PROMPT)]))
    sampler = SamplerSettings(temperature=0.0, top_p=1.0, max_tokens=args.tokens, seed=11)
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.sqlite")
        run_id = store.start_run("bench")
        run_plain(llm, prompt, sampler)  # warm-up: page in weights, fill caches
        run_lrmscope(backend, store, run_id, prompt, sampler)
        ratios, plain_rates, ours_rates = [], [], []
        for _ in range(args.pairs):
            plain_text, plain_s = run_plain(llm, prompt, sampler)
            ours_text, tokens, ours_s = run_lrmscope(backend, store, run_id, prompt, sampler)
            same = plain_text == ours_text
            plain_rates.append(tokens / plain_s)
            ours_rates.append(tokens / ours_s)
            ratios.append(plain_s / ours_s)
            print(
                f"tokens {tokens}  plain {tokens / plain_s:7.1f} tok/s  "
                f"lrmscope {tokens / ours_s:7.1f} tok/s  ratio {plain_s / ours_s:.3f}  "
                f"same text: {same}"
            )
    print(
        f"\nmodel {path.name}, {backend.settings.threads} threads, device "
        f"{backend.info()['device']}, {args.tokens} tokens x {args.pairs} pairs\n"
        f"median plain {statistics.median(plain_rates):.1f} tok/s, lrmscope "
        f"{statistics.median(ours_rates):.1f} tok/s, median ratio lrmscope/plain "
        f"{statistics.median(ratios):.3f} (goal >= 0.97)"
    )


if __name__ == "__main__":
    main()
