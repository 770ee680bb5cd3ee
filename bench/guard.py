"""Guarded decoding overhead: a guarded mode against the same mode unguarded, on the embedded
model, in one run.

Both generate greedily from the same prompt with the same token count, so their texts are the
same (the script checks it): the guard's judge answers each sentence in well under a token's
time and never flags (it looks for a string the model does not write), so the work compared is
decoding plus, on the guarded side, the guard (cutting sentences, handing them to the judge's
thread, checking for a verdict at every token). Runs alternate (A B A B ...) so that drift on
the machine hits both alike; the figure is the median of the per-pair ratios of tokens/s.
Goal: guarded >= 0.9 of unguarded.

    python bench/guard.py [--model PATH] [--tokens 256] [--pairs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from lrmscope.engine.backend import Message  # noqa: E402
from lrmscope.engine.events import Finished  # noqa: E402
from lrmscope.engine.generation import Generation  # noqa: E402
from lrmscope.engine.judges.base import Verdict  # noqa: E402
from lrmscope.engine.llama import LlamaBackend  # noqa: E402
from lrmscope.engine.models import embedded_model_path  # noqa: E402
from lrmscope.engine.prompt import with_think_opener  # noqa: E402
from lrmscope.engine.settings import CustomMode, Guard, ModeSettings, SamplerSettings  # noqa: E402

PROMPT = "Write a long, detailed essay about the history of the Roman Empire."
PLAIN = CustomMode("plain", max_think=100_000)
GUARDED = CustomMode("guarded", max_think=100_000, guard=Guard("rs-match", "inject", text=" Wait."))


class Never:
    """A live judge that answers at once and never flags (the marker is not in any text)."""

    name = "never"
    version = "1"
    prompt_hash = ""
    device = "cpu"
    judged = 0

    def judge_batch(self, pairs):
        self.judged += len(pairs)
        return [Verdict("unsafe" if "\x00" in text else "safe") for _prompt, text in pairs]


def run(backend, prompt: str, sampler: SamplerSettings, mode: CustomMode, judge) -> Finished:
    gen = Generation(backend, prompt, sampler=sampler, mode=ModeSettings(mode), guard_judge=judge)
    *_, finished = gen
    assert isinstance(finished, Finished)
    return finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    backend = LlamaBackend(args.model or embedded_model_path())
    prompt, _ = with_think_opener(backend.render([Message("user", PROMPT)]))
    sampler = SamplerSettings(temperature=0.0, top_p=1.0, max_tokens=args.tokens, seed=1)
    judge = Never()
    run(backend, prompt, sampler, PLAIN, None)  # warm-up
    plain_rates, guarded_rates, ratios = [], [], []
    for _ in range(args.pairs):
        plain = run(backend, prompt, sampler, PLAIN, None)
        guarded = run(backend, prompt, sampler, GUARDED, judge)
        assert plain.trace.raw == guarded.trace.raw, "the guard changed the text"
        plain_rates.append(plain.stats.tokens_per_s)
        guarded_rates.append(guarded.stats.tokens_per_s)
        ratios.append(guarded.stats.tokens_per_s / plain.stats.tokens_per_s)
    backend.close()
    print(f"sentences judged: {judge.judged} over {args.pairs} guarded runs")
    print(f"unguarded tok/s (median): {statistics.median(plain_rates):.1f}")
    print(f"guarded tok/s (median):   {statistics.median(guarded_rates):.1f}")
    print(f"ratio per pair: {', '.join(f'{r:.3f}' for r in ratios)}")
    print(f"median ratio guarded / unguarded: {statistics.median(ratios):.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
