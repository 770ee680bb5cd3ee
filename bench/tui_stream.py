"""Chat view throughput: 20,000 tokens from a scripted backend, as fast as the app takes them.

Measures, in one run:
  (a) tokens/s rendered: tokens through the chat view per second, until the last is on screen;
  (b) key-press-to-screen latency while streaming: a mode key every 10 ms, timed until the app
      has switched mode and updated its mode bar (p50 / p95);
  (c) growth: time per token over the last quarter of the stream against the first quarter
      (5,000 tokens each), measured as the wall time the app took to take them in (1.0 = flat;
      goal <= 1.5, no quadratic growth). Windows of a few thousand tokens last tens of
      milliseconds, about one frame, so one frame more or less in a window swung the ratio
      between 0.3 and 10; quarters hold many frames each.
Goals: (a) >= 2,000 tokens/s, (b) p95 < 50 ms, (c) <= 1.5.
A flat-out stream of 20,000 tokens lasts well under a second here, so (a) and (c) are medians of
--runs streams (a fresh app each). (b) is measured on one more stream of 20,000 tokens paced at
about 2,000 tokens/s (--paced-rate; the rate goal (a) sets, ten times a fast GPU's stream), which
lasts long enough for hundreds of key presses. Flat out, the
scripted backend is pure Python and takes the GIL from the app's thread at every token (a real
model decodes in C with the GIL released), so the key latencies of the flat-out streams are
printed too, as a worst case.

    python bench/tui_stream.py [--tokens 20000] [--runs 7] [--paced-rate 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from textual import events  # noqa: E402

from lrmscope.engine.events import Event  # noqa: E402
from lrmscope.engine.scripted import ScriptedBackend  # noqa: E402
from lrmscope.engine.settings import ModeSettings, SamplerSettings  # noqa: E402
from lrmscope.store import Store  # noqa: E402
from lrmscope.tui.chat.app import ChatApp, ChatSession  # noqa: E402
from lrmscope.tui.widgets.turn import TurnView  # noqa: E402


class TimedChat(ChatApp):
    """The chat app, noting when each engine event has been handled."""

    def __init__(self, session: ChatSession) -> None:
        super().__init__(session)
        self.handled: list[float] = []
        self.mode_shown_at: float | None = None

    def _show_mode(self) -> None:
        super()._show_mode()
        self.mode_shown_at = time.perf_counter()

    def handle_event(self, turn: TurnView, event: Event) -> None:
        super().handle_event(turn, event)
        self.handled.append(time.perf_counter())


def script(tokens: int) -> str:
    words = []
    for i in range(tokens):
        words.append("word")
        if i % 12 == 11:
            words[-1] += "."
        if i % 60 == 59:
            words[-1] += "\n"
    return " ".join(words)


class PacedBackend(ScriptedBackend):
    """The scripted backend at `rate` tokens/s: it sleeps whenever it is 2 ms or more ahead of
    schedule (a sleep per token is too coarse for thousands of tokens/s)."""

    def __init__(self, script, rate: float) -> None:
        super().__init__(script)
        self.rate = rate

    def stream(self, prompt, **kwargs):
        start = time.perf_counter()
        for count, piece in enumerate(super().stream(prompt, **kwargs), start=1):
            ahead = start + count / self.rate - time.perf_counter()
            if ahead >= 0.002:
                time.sleep(ahead)
            yield piece


def session_for(store: Store, tokens: int, rate: float | None) -> ChatSession:
    """A chat over a scripted backend that writes `tokens` word tokens (flat out, or paced)."""
    text = lambda p: script(tokens)  # noqa: E731
    return ChatSession(
        ScriptedBackend(text) if rate is None else PacedBackend(text, rate),
        store,
        store.start_run("bench"),
        SamplerSettings(max_tokens=tokens + 10),
        ModeSettings(),
        model_name="scripted",
    )


async def run(tokens: int, rate: float | None = None) -> tuple[float, list[float], float]:
    """One stream as fast as the app takes it, with a mode key posted every 10 ms meanwhile.
    Keys are posted as events (not through the test pilot, which waits for the app to be idle,
    and a streaming app never is) and timed until the app has switched mode and updated its
    mode bar; the compositor paints that on its next frame. Returns (tokens/s rendered, key
    latencies, growth)."""
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.sqlite")
        app = TimedChat(session_for(store, tokens, rate))
        latencies: list[float] = []
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press(*"go")
            start = time.perf_counter()
            app.post_message(events.Key("enter", None))
            while not app.turns or app.generation is not None:
                await asyncio.sleep(0.01)
                if app.generation is None:
                    continue
                wanted = "morethink" if app.mode.mode.value == "default" else "default"
                pressed = time.perf_counter()
                app.post_message(events.Key("f5" if wanted == "morethink" else "f2", None))
                while app.mode_shown_at is None or app.mode.mode.value != wanted:
                    await asyncio.sleep(0.0005)
                latencies.append(app.mode_shown_at - pressed)
                app.mode_shown_at = None
            app.turns[-1].render_now()
            await pilot.pause()
            elapsed = time.perf_counter() - start
            handled = app.handled
    window = len(handled) // 4
    first = (handled[window] - handled[0]) / window
    last = (handled[-1] - handled[-window - 1]) / window
    return len(handled) / elapsed, latencies, last / first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--paced-rate", type=float, default=2000.0)
    args = parser.parse_args()
    rates, flat_keys, growths = [], [], []
    for number in range(1, args.runs + 1):
        rate, keys, growth = asyncio.run(run(args.tokens))
        rates.append(rate)
        flat_keys.extend(keys)
        growths.append(growth)
        print(
            f"run {number}: {rate:,.0f} tokens/s, {len(keys)} key presses "
            f"(max {max(keys, default=0) * 1000:.1f} ms), growth {growth:.2f}",
            flush=True,
        )
    paced_rate, paced_keys, _ = asyncio.run(run(args.tokens, args.paced_rate))
    print(
        f"(a) tokens/s rendered, median of {args.runs} streams of {args.tokens:,} tokens: "
        f"{statistics.median(rates):,.0f} (goal >= 2,000)\n"
        f"(b) key latency while streaming {args.tokens:,} tokens at {paced_rate:,.0f} tokens/s, "
        f"{len(paced_keys)} presses: {percentiles(paced_keys)} (goal p95 < 50 ms)\n"
        f"    and during the flat-out streams of (a), {len(flat_keys)} presses: "
        f"{percentiles(flat_keys)}\n"
        f"(c) time per token, last quarter / first quarter, median of {args.runs}: "
        f"{statistics.median(growths):.2f} (goal <= 1.5; runs {min(growths):.2f} to "
        f"{max(growths):.2f})"
    )


def percentiles(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    if not ordered:
        return "none"
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"


if __name__ == "__main__":
    main()
