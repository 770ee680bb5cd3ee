"""An eval run: every (prompt, mode, sample k) of a dataset generated once, saved, judged.

The plan is fixed by the run's settings, so a run that stopped (Ctrl-C, a crash, a kill) is
resumed by running the same command: finished samples are kept, unfinished ones (interrupted or
failed) are deleted and made again, each with the same seed. A resume with different settings is
refused, naming the setting. Samples run on "slots": backends that each run one stream at a time,
one worker thread per slot, each running an ordinary `Generation` (so every decoding mode works per
slot), taking the next sample as soon as its last one ends. Locally the slots are the sequences of
one `BatchDecoder`; with servers they are `RemoteBackend`s spread over the endpoints. Jobs are
ordered prompt by prompt, so the K samples (and the modes) of a prompt run side by side and share
one evaluation of the prompt (a server's prefix cache does the same).

No Rich or Textual here: the command (`lrmscope.cli.commands.eval`) shows progress through
`on_progress`.
"""

from __future__ import annotations

import hashlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from lrmscope.core import judge as judging
from lrmscope.core.datasets import Dataset, PromptRow
from lrmscope.core.generate import TurnPlace, record, start_sample
from lrmscope.engine.backend import Backend, Message
from lrmscope.engine.events import Finished
from lrmscope.engine.flags import JudgeWorker
from lrmscope.engine.generation import Generation
from lrmscope.engine.judges.base import Judge
from lrmscope.engine.prompt import with_think_opener
from lrmscope.engine.settings import MAX_SEED, AnyMode, CustomMode, ModeSettings, SamplerSettings
from lrmscope.errors import LrmscopeError
from lrmscope.store import SampleWriter, Store
from lrmscope.vocab import PARTS

JUDGE_EVERY_S = 1.0
MAX_SAMPLES = 10_000  # samples per prompt and mode: every one is planned up front
JUDGE_BATCH = 16
# A mode of your own is in an eval run's config as this prefix and its name, with the hash of its
# definition: a resume with a changed modes file is refused, naming the mode.
OWN_MODE_KEY = "mode_definition:"


def check_plan(modes: Sequence[AnyMode], samples: int, sampler: SamplerSettings) -> None:
    """What a run of several modes and K samples each needs (eval, compare)."""
    if samples < 1:
        raise LrmscopeError("--samples must be at least 1")
    if samples > MAX_SAMPLES:
        raise LrmscopeError(f"--samples must be at most {MAX_SAMPLES}, got {samples}")
    if not modes:
        raise LrmscopeError("no decoding mode given: --modes default,zerothink,... or all")
    if sampler.greedy and samples > 1:
        raise LrmscopeError(
            f"greedy decoding gives {samples} identical samples: use --samples 1 "
            "(the default with --greedy)"
        )


@dataclass(frozen=True)
class Preset:
    """A named configuration of eval's options (values by option name). Options the user gives
    override it, except those in `fixed`, which define it: giving one of those another value is
    an error (`hint` says what to use instead)."""

    name: str
    values: dict
    fixed: frozenset[str]
    hint: str


_STUDY = {
    "top_k": 0,
    "min_p": 0.0,
    "repeat_penalty": 1.0,
    "max_tokens": 16000,
    "think_budget": 10000,
    "enforce_num": 10,
    "think_opener": "template",
    "answer_budget": "study",
}
# docs/study.md "Sampling": the study's two generation configurations.
PRESETS = {
    preset.name: preset
    for preset in (
        Preset(
            "safechain",
            {**_STUDY, "greedy": False, "temperature": 0.6, "top_p": 0.95, "samples": 5},
            frozenset({"greedy"}),
            "for greedy decoding use --preset safechain-greedy",
        ),
        Preset(
            "safechain-greedy",
            {**_STUDY, "greedy": True, "temperature": 0.0, "top_p": 1.0, "samples": 1},
            frozenset({"greedy", "temperature", "samples"}),
            "for sampling use --preset safechain",
        ),
    )
}


@dataclass(frozen=True)
class EvalSettings:
    """Everything that defines an eval run; `config()` is what a resume must match."""

    dataset: Dataset
    dataset_filters: dict
    modes: tuple[AnyMode, ...]
    samples: int
    sampler: SamplerSettings
    mode: ModeSettings
    system: str | None = None
    preset: str | None = None
    # Modes named only by a conversation set's rows (their own `modes` lists): not planned for
    # every prompt as `modes` are, but their definitions are part of the run (a resume with a
    # changed modes file is refused for them too).
    row_modes: tuple[AnyMode, ...] = ()

    def __post_init__(self) -> None:
        check_plan(self.modes, self.samples, self.sampler)
        self.mode.check_answer_room(self.modes, self.sampler.max_tokens)

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
            "preset": self.preset,
            **{
                f"{OWN_MODE_KEY}{m.value}": m.digest()
                for m in (*self.modes, *self.row_modes)
                if isinstance(m, CustomMode)
            },
        }


def sample_seed(base: int, prompt_key: str, mode: AnyMode, k: int) -> int:
    """A seed of its own for each sample, derived from the run's seed: a sample made again after
    a resume is the same sample."""
    digest = hashlib.sha256(f"{base}:{prompt_key}:{mode.value}:{k}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (MAX_SEED + 1)


def config_difference(stored: dict, wanted: dict) -> str | None:
    """The first setting that differs, said the way a user can act on, or None."""
    for key in sorted(set(stored) | set(wanted)):
        if stored.get(key) == wanted.get(key):
            continue
        if key.startswith(OWN_MODE_KEY):
            if key in stored and key in wanted:
                name = key.removeprefix(OWN_MODE_KEY)
                return f"the definition of mode {name} changed in its modes file"
            continue  # a mode added or left out: `modes` says so
        return f"{key} was {stored.get(key)!r} and is now {wanted.get(key)!r}"
    return None


@dataclass(frozen=True)
class Job:
    row: PromptRow
    prompt_id: int
    rendered: str
    opener_added: bool
    mode: AnyMode
    k: int
    place: TurnPlace | None = None  # a conversation's turn


class JobChain(Protocol):
    """Jobs that run in order on one slot, each made once the one before has ended: the turns of
    a conversation's branch (core/conversations.py)."""

    def jobs(self, store: Store, slot: Backend) -> Iterator[Job]: ...


@dataclass
class Progress:
    """What the command shows; updated by the eval's main loop."""

    total: int
    resumed: int = 0  # samples finished before this process started
    made: int = 0  # samples finished by this process
    failed: int = 0
    tokens: int = 0  # generated by this process
    started: float = field(default_factory=time.perf_counter)

    @property
    def done(self) -> int:
        return self.resumed + self.made

    @property
    def tokens_per_s(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.tokens / elapsed if elapsed > 0 else 0.0


def open_run(
    store: Store,
    fingerprint: str,
    settings: EvalSettings,
    *,
    new_run: bool,
    start_run: Callable[[], int],
) -> tuple[int, Literal["new", "resumed", "finished"]]:
    """The run to fill. The newest eval run of this model (its fingerprint) and dataset is
    resumed when it did not finish and has the same settings, and refused when its settings
    differ; when it did finish with the same settings there is nothing to do. Otherwise a new
    run (`start_run`)."""
    wanted = settings.config(fingerprint)
    latest = (
        None
        if new_run
        else store.latest_run("eval", model_fingerprint=fingerprint, dataset=settings.dataset.name)
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


def render_prompts(backend: Backend, settings: EvalSettings) -> dict[str, str]:
    """Each prompt rendered with the model's template (before the think opener, which depends
    on the mode), checked against the context with the opener before anything is saved."""
    rendered = {}
    messages = [Message("system", settings.system)] if settings.system else []
    for row in settings.dataset.rows:
        text = backend.render([*messages, Message("user", row.text)])
        try:
            backend.check_prompt(with_think_opener(text)[0])
        except LrmscopeError as exc:
            raise LrmscopeError(f"prompt {row.key} of {settings.dataset.name}: {exc}") from None
        rendered[row.key] = text
    return rendered


def plan(store: Store, settings: EvalSettings, run_id: int, rendered: dict[str, str]) -> list[Job]:
    """The jobs still to do, prompt by prompt, then mode, then k."""
    done = store.finished_samples(run_id)
    jobs = []
    for row in settings.dataset.rows:
        prompt_id = store.prompt_id(
            settings.dataset.name,
            row.key,
            row.text,
            category=row.category,
            source=row.source,
            kind=row.kind,
            reference=row.reference,
        )
        for mode in settings.modes:
            prompt = with_think_opener(rendered[row.key], settings.mode.with_mode(mode))
            for k in range(settings.samples):
                if (prompt_id, mode.value, k) not in done:
                    jobs.append(Job(row, prompt_id, *prompt, mode, k))
    return jobs


def judge_run(store: Store, run_id: int, judges: Sequence[Judge]) -> None:
    """Judge every part of the run's finished samples that a judge has no verdict on yet, and
    check the answers of its reasoning prompts."""
    judging.check_answers(store, run_id)
    for judge in judges:
        summary = judging.plan(store, judge, PARTS, ("done",), run_id)
        if summary.todo:
            judging.run(
                store,
                judge,
                PARTS,
                ("done",),
                summary,
                batch_size=JUDGE_BATCH,
                run_id=run_id,
            )


class EvalRunner:
    """Runs the jobs on the slots (one stream at a time each), judges finished samples, and stops
    cleanly."""

    def __init__(
        self,
        store: Store,
        slots: Sequence[Backend],
        settings: EvalSettings,
        run_id: int,
        judges: Sequence[Judge],
        guard_judges: dict[str, JudgeWorker] | None = None,
    ) -> None:
        self.store = store
        self.slots = tuple(slots)
        self.settings = settings
        self.run_id = run_id
        self.judges = tuple(judges)
        # a guarded mode's judge by its spec, in a worker all sequences share (engine/guard.py)
        self.guard_judges = guard_judges or {}
        self._jobs: queue.SimpleQueue[Job | JobChain] = queue.SimpleQueue()
        # each sample's end, and None from a worker that has no job left
        self._finished: queue.SimpleQueue[Finished | BaseException | None] = queue.SimpleQueue()
        self._active: dict[int, Generation] = {}
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        # A write the database refused (disk full, a lock held too long): the run stops with it
        # rather than failing every remaining sample on a database that cannot save them.
        self._fatal: sqlite3.OperationalError | None = None
        self._writer: SampleWriter | None = None  # flushes every sample in flight (run())
        self.no_thought = 0  # samples whose served model's server gave no thought at all

    def stop(self) -> None:
        """Stop every generation in flight; each is saved as interrupted."""
        self._stopping.set()
        with self._lock:
            for generation in self._active.values():
                generation.stop()

    def _work(self, index: int) -> None:
        slot = self.slots[index]
        try:
            with closing(Store(self.store.path)) as store:
                for job in self._jobs_for(store, slot):
                    self._finished.put(self._one(store, index, slot, job))
        finally:
            self._finished.put(None)

    def _jobs_for(self, store: Store, slot: Backend) -> Iterator[Job]:
        """The jobs a worker takes, one after another, until none is left or the run stops (a
        chain's next job is made once the one before it has ended)."""
        while not self._stopping.is_set():
            try:
                work = self._jobs.get_nowait()
            except queue.Empty:
                return
            for job in (work,) if isinstance(work, Job) else work.jobs(store, slot):
                if self._stopping.is_set():
                    return
                yield job

    def _one(self, store: Store, index: int, slot: Backend, job: Job) -> Finished | BaseException:
        settings = self.settings
        seed = sample_seed(settings.sampler.seed, job.row.key, job.mode, job.k)
        sampler = replace(settings.sampler, seed=seed)
        guard = job.mode.guard if isinstance(job.mode, CustomMode) else None
        generation = Generation(
            slot,
            job.rendered,
            sampler=sampler,
            mode=settings.mode.with_mode(job.mode),
            guard_judge=None if guard is None else self.guard_judges.get(guard.judge),
            user_text=job.row.text,
        )
        with self._lock:
            self._active[index] = generation
            if self._stopping.is_set():
                generation.stop()
        try:
            ref = start_sample(
                store,
                self.run_id,
                generation,
                user_text=job.row.text,
                dataset=settings.dataset.name,
                key=job.row.key,
                think_opener_added=job.opener_added,
                k=job.k,
                place=job.place,
                prompt_id=job.prompt_id,
            )
            finished: Finished | BaseException = LrmscopeError("the generation ended early")
            for event in record(store, ref, generation, self._writer):
                if isinstance(event, Finished):
                    finished = event
            if not generation.thought_given:
                with self._lock:
                    self.no_thought += 1
            return finished
        except sqlite3.OperationalError as exc:
            self._fatal = exc
            self.stop()
            return exc
        except Exception as exc:  # saved as failed by record(); the run goes on
            return exc
        finally:
            with self._lock:
                del self._active[index]

    def live_tokens(self) -> int:
        with self._lock:
            return sum(g.think_tokens + g.answer_tokens for g in self._active.values())

    def run(
        self,
        jobs: Sequence[Job | JobChain],
        progress: Progress,
        on_progress: Callable[[Progress], None],
    ) -> None:
        """Generate every job, counting into `progress`. KeyboardInterrupt (or any error) stops
        the generations in flight, waits for them to be saved, and is raised again."""
        for job in jobs:
            self._jobs.put(job)
        workers = [
            threading.Thread(
                target=self._work, args=(index,), daemon=True, name=f"lrmscope-eval-{index}"
            )
            for index in range(min(len(self.slots), len(jobs)))
        ]
        finished_tokens = 0
        last_judged = time.perf_counter()
        judged_at = 0  # samples finished when the judges last ran
        self._writer = SampleWriter(self.store.path)
        try:
            for worker in workers:
                worker.start()
            working = len(workers)
            while working:
                try:
                    result = self._finished.get(timeout=0.1)
                except queue.Empty:
                    pass
                else:
                    if result is None:
                        working -= 1
                    elif isinstance(result, Finished):
                        finished_tokens += result.stats.think_tokens + result.stats.answer_tokens
                        progress.made += result.stats.finish_reason != "stopped"
                    else:
                        progress.failed += 1
                progress.tokens = finished_tokens + self.live_tokens()
                on_progress(progress)
                if self._fatal is not None:
                    raise self._fatal
                finished = progress.made + progress.failed
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
        finally:
            self._writer.close()
        judge_run(self.store, self.run_id, self.judges)
