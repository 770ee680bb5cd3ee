"""An eval run: every (prompt, mode, sample k) of a dataset generated once, saved, judged.

The plan is fixed by the run's settings, so a run that stopped (Ctrl-C, a crash, a kill) is
resumed by running the same command: finished samples are kept, unfinished ones are deleted and
made again, each with the same seed. A resume with different settings is refused, naming the
setting. Samples decode together through one `BatchDecoder`: one worker thread per sequence, each
running an ordinary `Generation` (so every decoding mode works per sequence), taking the next
sample as soon as its last one ends. Jobs are ordered prompt by prompt, so the K samples (and the
modes) of a prompt run side by side and share one evaluation of the prompt.

No Rich or Textual here: the command (`lrmscope.commands.eval`) shows progress through
`on_progress`.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from lrmscope import judging
from lrmscope.datasets import Dataset, PromptRow
from lrmscope.engine.backend import Backend, Message
from lrmscope.engine.batch import BatchDecoder, SequenceBackend
from lrmscope.engine.events import Finished
from lrmscope.engine.generation import Generation
from lrmscope.engine.judges.base import Judge
from lrmscope.engine.llama import LlamaBackend
from lrmscope.engine.prompt import with_think_opener
from lrmscope.engine.settings import MAX_SEED, Mode, ModeSettings, SamplerSettings
from lrmscope.errors import LrmscopeError
from lrmscope.recording import record, start_sample
from lrmscope.store import Store

JUDGE_EVERY_S = 1.0
JUDGE_BATCH = 16


@dataclass(frozen=True)
class EvalSettings:
    """Everything that defines an eval run; `config()` is what a resume must match."""

    dataset: Dataset
    dataset_filters: dict
    modes: tuple[Mode, ...]
    samples: int
    sampler: SamplerSettings
    mode: ModeSettings
    system: str | None = None

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise LrmscopeError("--samples must be at least 1")
        if not self.modes:
            raise LrmscopeError("no decoding mode given: --modes default,zerothink,... or all")
        if self.sampler.greedy and self.samples > 1:
            raise LrmscopeError(
                f"greedy decoding gives {self.samples} identical samples: use --samples 1 "
                "(the default with --greedy)"
            )

    def config(self, model_fingerprint: str) -> dict:
        mode = self.mode.as_dict()
        del mode["mode"]
        return {
            "model_fingerprint": model_fingerprint,
            "dataset": self.dataset.name,
            "dataset_sha256": self.dataset.sha256,
            "dataset_column": self.dataset.column,
            **{f"dataset_{key}": value for key, value in self.dataset_filters.items()},
            "prompts": len(self.dataset.rows),
            "modes": [m.value for m in self.modes],
            "samples": self.samples,
            **{f"sampler_{key}": value for key, value in self.sampler.as_dict().items()},
            **{f"mode_{key}": value for key, value in mode.items()},
            "system": self.system,
        }


def sample_seed(base: int, prompt_key: str, mode: Mode, k: int) -> int:
    """A seed of its own for each sample, derived from the run's seed: a sample made again after
    a resume is the same sample."""
    digest = hashlib.sha256(f"{base}:{prompt_key}:{mode.value}:{k}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (MAX_SEED + 1)


def config_difference(stored: dict, wanted: dict) -> str | None:
    """The first setting that differs, said the way a user can act on, or None."""
    for key in sorted(set(stored) | set(wanted)):
        if stored.get(key) != wanted.get(key):
            return f"{key} was {stored.get(key)!r} and is now {wanted.get(key)!r}"
    return None


@dataclass(frozen=True)
class Job:
    row: PromptRow
    prompt_id: int
    rendered: str
    opener_added: bool
    mode: Mode
    k: int


@dataclass
class Progress:
    """What the command shows; updated by the eval's main loop."""

    total: int
    done: int = 0  # finished before this process started, plus those finished since
    resumed: int = 0
    failed: int = 0
    tokens: int = 0
    started: float = field(default_factory=time.perf_counter)

    @property
    def tokens_per_s(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.tokens / elapsed if elapsed > 0 else 0.0


def open_run(
    store: Store, backend: LlamaBackend, settings: EvalSettings, *, new_run: bool,
    start_run: Callable[[], int],
) -> tuple[int, Literal["new", "resumed", "finished"]]:
    """The run to fill. The newest eval run of this model and dataset is resumed when it did
    not finish and has the same settings, and refused when its settings differ; when it did
    finish with the same settings there is nothing to do. Otherwise a new run (`start_run`)."""
    fingerprint = backend.fingerprint()
    wanted = settings.config(fingerprint)
    latest = None if new_run else store.latest_run(
        "eval", model_fingerprint=fingerprint, dataset=settings.dataset.name
    )
    if latest is None:
        return start_run(), "new"
    stored = json.loads(latest["config"] or "{}")
    difference = config_difference(stored, wanted)
    if latest["status"] == "done":
        return (start_run(), "new") if difference else (latest["id"], "finished")
    if latest["status"] == "running":  # a live process (dead ones were marked on open)
        raise LrmscopeError(
            f"run {latest['id']} of this model and dataset is being written by process "
            f"{latest['pid']} on {latest['host']}; wait for it to finish or stop it, or pass "
            "--new-run to start another"
        )
    if difference:
        raise LrmscopeError(
            f"run {latest['id']} of this model and dataset did not finish, and its settings "
            f"differ ({difference}): run it again with its settings to resume it, or pass "
            "--new-run to start another"
        )
    store.reopen_run(latest["id"])
    return latest["id"], "resumed"


def render_prompts(backend: Backend, settings: EvalSettings) -> dict[str, tuple[str, bool]]:
    """Each prompt rendered with the model's template and the think opener (prompt P, opener
    added), checked against the context before anything is saved."""
    rendered = {}
    messages = [Message("system", settings.system)] if settings.system else []
    for row in settings.dataset.rows:
        prompt, added = with_think_opener(backend.render([*messages, Message("user", row.text)]))
        try:
            backend.check_prompt(prompt)
        except LrmscopeError as exc:
            raise LrmscopeError(f"prompt {row.key} of {settings.dataset.name}: {exc}") from None
        rendered[row.key] = (prompt, added)
    return rendered


def plan(
    store: Store, settings: EvalSettings, run_id: int, rendered: dict[str, tuple[str, bool]]
) -> list[Job]:
    """The jobs still to do, prompt by prompt, then mode, then k."""
    done = store.finished_samples(run_id)
    jobs = []
    for row in settings.dataset.rows:
        prompt_id = store.prompt_id(
            settings.dataset.name, row.key, row.text, category=row.category, source=row.source
        )
        for mode in settings.modes:
            for k in range(settings.samples):
                if (prompt_id, mode.value, k) not in done:
                    jobs.append(Job(row, prompt_id, *rendered[row.key], mode, k))
    return jobs


def judge_run(store: Store, run_id: int, judges: Sequence[Judge]) -> None:
    """Judge every part of the run's finished samples that a judge has no verdict on yet."""
    for judge in judges:
        summary = judging.plan(store, judge, judging.PARTS, ("done",), run_id)
        if summary.todo:
            judging.run(
                store, judge, judging.PARTS, ("done",), summary, batch_size=JUDGE_BATCH,
                run_id=run_id,
            )


class EvalRunner:
    """Runs the jobs on the decoder's sequences, judges finished samples, and stops cleanly."""

    def __init__(
        self,
        store: Store,
        decoder: BatchDecoder,
        settings: EvalSettings,
        run_id: int,
        judges: Sequence[Judge],
    ) -> None:
        self.store = store
        self.decoder = decoder
        self.settings = settings
        self.run_id = run_id
        self.judges = tuple(judges)
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._finished: queue.SimpleQueue[tuple[Job, Finished | BaseException]] = (
            queue.SimpleQueue()
        )
        self._active: dict[int, Generation] = {}
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Stop every generation in flight; each is saved as interrupted."""
        self._stopping.set()
        with self._lock:
            for generation in self._active.values():
                generation.stop()

    def _work(self, slot: SequenceBackend) -> None:
        store = Store(self.store.path)
        try:
            while not self._stopping.is_set():
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    return
                self._finished.put((job, self._one(store, slot, job)))
        finally:
            store.close()

    def _one(self, store: Store, slot: SequenceBackend, job: Job) -> Finished | BaseException:
        settings = self.settings
        seed = sample_seed(settings.sampler.seed, job.row.key, job.mode, job.k)
        sampler = SamplerSettings(**{**settings.sampler.as_dict(), "seed": seed})
        generation = Generation(
            slot, job.rendered, sampler=sampler, mode=settings.mode.with_mode(job.mode)
        )
        with self._lock:
            self._active[slot.seq] = generation
            if self._stopping.is_set():
                generation.stop()
        try:
            ref = start_sample(
                store, self.run_id, generation, user_text=job.row.text,
                dataset=settings.dataset.name, key=job.row.key,
                think_opener_added=job.opener_added, k=job.k,
            )
            finished: Finished | BaseException = LrmscopeError("the generation ended early")
            for event in record(store, ref, generation):
                if isinstance(event, Finished):
                    finished = event
            return finished
        except Exception as exc:  # saved as failed by record(); the run goes on
            return exc
        finally:
            with self._lock:
                del self._active[slot.seq]

    def live_tokens(self) -> int:
        with self._lock:
            return sum(g.think_tokens + g.answer_tokens for g in self._active.values())

    def run(
        self, jobs: Sequence[Job], progress: Progress, on_progress: Callable[[Progress], None]
    ) -> int:
        """Generate every job; returns how many failed. KeyboardInterrupt (or any error) stops
        the generations in flight, waits for them to be saved, and is raised again."""
        for job in jobs:
            self._jobs.put(job)
        workers = [
            threading.Thread(
                target=self._work, args=(self.decoder.sequence(seq),), daemon=True,
                name=f"lrmscope-eval-{seq}",
            )
            for seq in range(min(self.decoder.n_seq, len(jobs)))
        ]
        made = failed = 0
        finished_tokens = 0
        last_judged = time.perf_counter()
        judged_at = 0  # samples finished when the judges last ran
        try:
            for worker in workers:
                worker.start()
            while any(w.is_alive() for w in workers) or not self._finished.empty():
                try:
                    job, result = self._finished.get(timeout=0.1)
                except queue.Empty:
                    pass
                else:
                    if isinstance(result, Finished):
                        finished_tokens += result.stats.think_tokens + result.stats.answer_tokens
                        made += result.stats.finish_reason != "stopped"
                    else:
                        failed += 1
                progress.done = progress.resumed + made
                progress.failed = failed
                progress.tokens = finished_tokens + self.live_tokens()
                on_progress(progress)
                finished = made + failed
                if (
                    self.judges
                    and finished > judged_at
                    and time.perf_counter() - last_judged >= JUDGE_EVERY_S
                ):
                    judge_run(self.store, self.run_id, self.judges)
                    last_judged, judged_at = time.perf_counter(), finished
        except BaseException:  # Ctrl-C, or a judge that failed: save what is in flight first
            self.stop()
            for worker in workers:
                if worker.is_alive():
                    worker.join()
            raise
        judge_run(self.store, self.run_id, self.judges)
        return failed
