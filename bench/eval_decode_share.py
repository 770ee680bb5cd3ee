"""Where an eval's time goes: the time inside llama.cpp's `llama_decode` against the run's span.

Runs `lrmscope eval` in this process on a shape of bench/eval_ceiling.py with `llama_decode`
wrapped, and reports the decodes, the tokens they held, the seconds inside them and their share
of the run's span in the database (the rest is Python around the decodes: scheduling, sampling,
saving, judging). A lower bound on what any change outside llama.cpp can still gain. The short
shape then runs eval_ceiling's naive loop under the same clock, `--rounds` times in turn with
the eval: the seconds each spends outside `llama_decode` are the figure to compare (the time
inside moves with the machine's noise, the same for both).

    python bench/eval_decode_share.py [--shape short|full] [--parallel 1] [--tokens 128]
                                      [--rounds 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import llama_cpp  # noqa: E402
from eval_ceiling import (  # noqa: E402
    SHORT_TEXTS,
    full_eval_args,
    naive_loop,
    naive_model,
    run_span,
    short_eval_args,
    write_short_dataset,
)

from lrmscope.cli.main import main as lrmscope_main  # noqa: E402
from lrmscope.engine.threads import on_a_passing_thread  # noqa: E402


class DecodeClock:
    """Counts llama_decode calls, their tokens and the seconds inside them."""

    def __init__(self) -> None:
        self._real = llama_cpp.llama_decode
        self.reset()

    def reset(self) -> None:
        self.calls = self.tokens = 0
        self.seconds = 0.0

    def __call__(self, ctx, batch) -> int:
        start = time.perf_counter()
        try:
            return self._real(ctx, batch)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1
            self.tokens += batch.n_tokens

    def install(self) -> None:
        # the binding calls it through its module; lrmscope through llama_cpp's namespace
        llama_cpp.llama_decode = llama_cpp.llama_cpp.llama_decode = self


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=("short", "full"), default="short")
    parser.add_argument("--parallel", type=int, default=1, help="the short shape's --parallel")
    parser.add_argument("--tokens", type=int, default=128, help="the full shape's --max-tokens")
    parser.add_argument("--rounds", type=int, default=1, help="eval, then naive loop, N times")
    args = parser.parse_args()
    clock = DecodeClock()
    clock.install()
    naive = naive_model() if args.shape == "short" else None
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "share.sqlite"
        if args.shape == "short":
            data = Path(folder) / "short.csv"
            write_short_dataset(data)
            eval_args = short_eval_args(data, args.parallel)
        else:
            eval_args = full_eval_args(args.tokens)
        for round_ in range(args.rounds):
            clock.reset()
            lrmscope_main(["eval", "--new-run", "--db", str(db), *eval_args])
            generated, span, _, _ = run_span(db)
            print(
                f"{args.shape}, round {round_ + 1}: {clock.calls} decodes of {clock.tokens} "
                f"tokens, {clock.seconds:.2f} s inside llama_decode of a {span:.2f} s span "
                f"({100 * clock.seconds / span:.1f} %, {span - clock.seconds:.2f} s outside); "
                f"{generated} tokens generated",
                flush=True,
            )
            if naive is not None:
                clock.reset()
                span = on_a_passing_thread(lambda: naive_loop(*naive)) * len(SHORT_TEXTS)
                print(
                    f"naive loop, round {round_ + 1}: {clock.calls} decodes of {clock.tokens} "
                    f"tokens, {clock.seconds:.2f} s inside llama_decode of {span:.2f} s "
                    f"({100 * clock.seconds / span:.1f} %, {span - clock.seconds:.2f} s outside)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
