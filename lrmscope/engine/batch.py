"""Many sequences of one llama.cpp context, decoded together in one batch per token.

The eval issue's performance core (docs/study.md "Machines" has the measured gain: 1.72x at 5
sequences, 2.11x at 16 on 2 CPU cores). A `BatchDecoder` owns a `LlamaBackend` whose context was
made with `n_seq` sequences and a unified KV cache, and runs one scheduler thread. Each
`SequenceBackend` it hands out is an ordinary `Backend` bound to one sequence id, so a
`Generation` (and its mode controller, MoreThink rounds included) runs unchanged on top of it, in a
thread of its own: its `stream()` calls become requests to the scheduler, which

- admits a request by keeping the longest token prefix already in the KV cache, its own or any
  other sequence's (`llama_memory_seq_cp`: the K samples of a prompt evaluate the prompt once; a
  request whose prompt another request is still evaluating waits for it, then copies it);
- then puts one token of every decoding sequence, and a chunk of the prompts still being
  evaluated, into one `llama_decode` (chunked prefill, as llama-server and vLLM schedule it),
  samples each decoding sequence, and each prompt whose last chunk went in, with its own sampler
  from its row of the batch's logits, and only then hands the pieces back through per-request
  queues: a piece handed over wakes its generation thread, which would take the interpreter from
  the scheduler at its next ctypes or numpy call while the others are still to be sampled.

While sequences decode on the CPU, a step takes as many prompt tokens as there are decoding
sequences (at least 16), so admitting a prompt beside 16 or more costs a running sequence about
one more step's time, never a whole prefill (docs/study.md "Machines": on the CPU a step costs a
fixed part plus a near-constant time per token, so a step of d + d tokens takes about twice a
step of d). With nothing decoding a step takes a whole batch of prompt tokens.

A sequence that finishes frees its slot for the next request at once (continuous batching). While
a decoder runs, the backend's own `stream()` must not be used.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import llama_cpp
import numpy as np
from llama_cpp import _internals as internals

from lrmscope.engine.backend import Message, Piece
from lrmscope.engine.llama import LlamaBackend, Pieces, common_prefix
from lrmscope.engine.sampling import Sampler
from lrmscope.engine.settings import SamplerSettings
from lrmscope.errors import LrmscopeError

PREFILL_FLOOR = 16  # prompt tokens a CPU step may always take
# The interpreter's switch interval while a decoder runs (CPython's default: 5 ms). The scheduler
# thread is every sequence's critical path: after each decode it needs the GIL back from the
# generation threads handling the last step's pieces, and waits up to the interval for it. At
# 0.5 ms an eval of 20 sequences made 4 % to 5 % more tokens a second (docs/study.md "Machines").
SWITCH_INTERVAL_S = 0.0005


class _SwitchInterval:
    """The interpreter's switch interval, SWITCH_INTERVAL_S while any decoder of the process
    runs (a compare of two local models runs two), what it was once the last one closes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._saved = 0.0

    def enter(self) -> None:
        with self._lock:
            if self._running == 0:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, SWITCH_INTERVAL_S))
            self._running += 1

    def leave(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0:
                sys.setswitchinterval(self._saved)


_SWITCH = _SwitchInterval()


@dataclass(eq=False)
class _Request:
    """One `stream()` call of one sequence, as the scheduler thread sees it."""

    seq: int
    tokens: list[int]
    sampler: Sampler
    pieces: Pieces
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    todo: list[int] = field(default_factory=list)  # prompt tokens not yet evaluated
    pending: int = -1  # the token to evaluate in the next batch, once the prompt is in
    closed: bool = False  # the consumer went away (stop, live switch) or the stream ended


def prefill_budget(decoding: int, room: int, gpu: bool) -> int:
    """Prompt tokens a step may take beside `decoding` sequences' next tokens, out of `room`
    places in the batch. On the CPU as many as are decoding, so a step takes about twice its
    time (see the module's docstring), but at least PREFILL_FLOOR: beside a few sequences a
    prompt would otherwise go in a token or two a step, each step paying the decode's fixed cost;
    all the room when nothing decodes. On a GPU a decode step is bound by reading the weights,
    not by the tokens in it, so a prompt goes in whole (not measured yet: no GPU in the sessions
    that built this)."""
    if gpu or decoding == 0:
        return room
    return min(room, max(decoding, PREFILL_FLOOR))


class BatchDecoder:
    """The scheduler over one backend's context; use `sequence(i)` for i < backend's n_seq."""

    def __init__(self, backend: LlamaBackend) -> None:
        self.backend = backend
        self.n_seq = backend.settings.n_seq
        backend.forget()
        self._memory = llama_cpp.llama_get_memory(backend.ctx.ctx)
        self._held: list[list[int]] = [[] for _ in range(self.n_seq)]  # tokens in each KV seq
        self._room = max(backend.n_batch, self.n_seq)  # tokens in one llama_decode
        self._gpu = bool(backend.settings.gpu_layers)
        self._batch = internals.LlamaBatch(n_tokens=self._room, embd=0, n_seq_max=1)
        self._inbox: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._waiting: list[_Request] = []  # received, not admitted yet
        self._active: list[_Request] = []  # admitted: prompts being evaluated, then decoding
        _SWITCH.enter()
        self._switching = True
        self._thread = threading.Thread(target=self._run, name="lrmscope-batch", daemon=True)
        self._thread.start()

    def sequence(self, seq: int) -> SequenceBackend:
        if not 0 <= seq < self.n_seq:
            raise ValueError(f"sequence {seq} out of range (the context has {self.n_seq})")
        return SequenceBackend(self, seq)

    def close(self) -> None:
        """Stop the scheduler, ending any stream still open with an error; the backend is usable
        on its own again."""
        if self._thread.is_alive():
            self._inbox.put(None)
            self._thread.join()
        closed = LrmscopeError("the batch decoder was closed")
        while True:
            try:
                request = self._inbox.get_nowait()
            except queue.Empty:
                break
            if request is not None:
                self._waiting.append(request)
        self._fail_all(closed)
        self._batch.close()
        self.backend.forget()
        if self._switching:
            self._switching = False
            _SWITCH.leave()

    def submit(self, request: _Request) -> None:
        self._inbox.put(request)

    # -- the scheduler thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            for active in self._active:
                if active.closed:  # by its consumer (a stop, a live switch)
                    active.sampler.close()
            self._active = [r for r in self._active if not r.closed]
            try:
                while True:
                    request = self._inbox.get(block=not (self._active or self._waiting))
                    if request is None:
                        return
                    self._waiting.append(request)
            except queue.Empty:
                pass
            try:
                self._admit_waiting()
                self.backend.share_cores()
                if self._active:
                    self._step()
            except Exception as exc:  # a failed decode ends every stream in flight, not the thread
                self._fail_all(exc)

    def _fail_all(self, exc: BaseException) -> None:
        for request in self._active + self._waiting:
            if not request.closed:
                self._end(request, exc)
        self._active, self._waiting = [], []
        for seq in range(self.n_seq):
            self._drop(seq, 0)

    def _end(self, request: _Request, item: Piece | BaseException) -> None:
        request.out.put(item)
        request.closed = True
        request.sampler.close()

    def _drop(self, seq: int, keep: int) -> None:
        """Forget sequence `seq` from position `keep` on."""
        llama_cpp.llama_memory_seq_rm(self._memory, seq, keep, -1)
        del self._held[seq][keep:]

    def _admit_waiting(self) -> None:
        """Admit the waiting requests, in the order they came, except those whose whole prompt
        a prompt still being evaluated holds (the K samples of a prompt): they wait for it and
        copy it."""
        waiting, self._waiting = self._waiting, []
        for request in waiting:
            if request.closed:
                request.sampler.close()
                continue
            source, keep = self._longest_prefix(request)
            whole = len(request.tokens) - 1  # what a copy can give: one token is evaluated anyway
            evaluating = (r.tokens for r in self._active if r.todo and r.seq != request.seq)
            if keep < whole and any(common_prefix(t, request.tokens) >= whole for t in evaluating):
                self._waiting.append(request)
                continue
            try:
                self._admit(request, source, keep)
            except Exception as exc:  # this request fails; the others go on
                self._end(request, exc)
                self._drop(request.seq, 0)

    def _longest_prefix(self, request: _Request) -> tuple[int, int]:
        """The KV sequence holding the longest prefix of the request's prompt (its own first),
        and that prefix's length, leaving at least one token to evaluate for fresh logits."""
        tokens, seq = request.tokens, request.seq
        source, keep = seq, common_prefix(self._held[seq], tokens)
        if keep < len(tokens) - 1:
            for candidate, held in enumerate(self._held):
                if candidate != seq and (n := common_prefix(held, tokens)) > keep:
                    source, keep = candidate, n
        return source, max(0, min(keep, len(tokens) - 1))

    def _admit(self, request: _Request, source: int, keep: int) -> None:
        for other in self._active:
            if other.seq == request.seq:  # the consumer closed it and asked again at once
                other.closed = True
                other.sampler.close()
        self._active = [r for r in self._active if not r.closed]
        tokens, seq = request.tokens, request.seq
        if not tokens or len(tokens) >= self.backend.n_ctx:
            self._end(request, Piece("", 0, "context"))
            return
        if source == seq:
            self._drop(seq, keep)
        else:
            self._drop(seq, 0)
            llama_cpp.llama_memory_seq_cp(self._memory, source, seq, 0, keep)
            self._held[seq] = self._held[source][:keep]
        request.todo = tokens[keep:]
        self._active.append(request)

    def _fill(self, entries: Sequence[tuple[int, int, int, bool]]) -> None:
        """Put (token, position, sequence, wants logits) entries into the batch and decode it."""
        batch = self._batch.batch
        for i, (token, pos, seq, logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = logits
        batch.n_tokens = len(entries)
        code = llama_cpp.llama_decode(self.backend.ctx.ctx, batch)
        if code != 0:
            raise LrmscopeError(
                f"llama.cpp could not decode a batch (llama_decode returned {code})"
            )

    def _step(self) -> None:
        """One decode: the next token of every decoding sequence, then chunks of the prompts
        being evaluated, oldest first; then each decoding sequence, and each prompt whose last
        token went in, samples from its row of the logits; then the pieces are handed over."""
        entries: list[tuple[int, int, int, bool]] = []
        sampled: list[_Request] = []  # in the order of their logits' rows
        decoding = [r for r in self._active if not r.todo]
        for request in decoding:
            sampled.append(request)
            entries.append((request.pending, len(self._held[request.seq]), request.seq, True))
            self._held[request.seq].append(request.pending)
        budget = prefill_budget(len(decoding), self._room - len(entries), self._gpu)
        for request in self._active:
            if not request.todo or budget == 0:
                continue
            chunk, request.todo = request.todo[:budget], request.todo[budget:]
            held = self._held[request.seq]
            last = not request.todo
            entries.extend(
                (token, len(held) + i, request.seq, last and i == len(chunk) - 1)
                for i, token in enumerate(chunk)
            )
            held.extend(chunk)
            budget -= len(chunk)
            if last:
                sampled.append(request)
        self._fill(entries)
        if not sampled:  # a step of prompt chunks only
            return
        rows = self.backend.output_logits(len(sampled))
        taken = [
            (request, self._take(request, rows[row]))
            for row, request in enumerate(sampled)
            if not request.closed
        ]
        for request, piece in taken:
            if piece.end is not None:
                self._end(request, piece)
            else:
                request.out.put(piece)

    def _take(self, request: _Request, logits: np.ndarray) -> Piece:
        """Sample the request's next token from its row of the last batch's logits: the piece
        to hand over, to go on with or the stream's last."""
        token = request.sampler.sample(logits)
        request.pending = token
        return request.pieces.next(token, len(self._held[request.seq]))


class SequenceBackend:
    """One sequence of a BatchDecoder, as a `Backend`: one stream at a time, from one thread."""

    def __init__(self, decoder: BatchDecoder, seq: int) -> None:
        self.decoder = decoder
        self.seq = seq
        self.name = decoder.backend.name

    def render(self, messages: Sequence[Message]) -> str:
        return self.decoder.backend.render(messages)

    def count_tokens(self, text: str) -> int:
        return self.decoder.backend.count_tokens(text)

    def check_prompt(self, prompt: str) -> int:
        return self.decoder.backend.check_prompt(prompt)

    def info(self) -> dict:
        return {**self.decoder.backend.info(), "batched_sequences": self.decoder.n_seq}

    @property
    def model_name(self) -> str:
        return self.decoder.backend.model_name

    @property
    def model_fingerprint(self) -> str:
        return self.decoder.backend.model_fingerprint

    def model_meta(self) -> dict:
        return self.decoder.backend.model_meta()

    def close(self) -> None:
        """Nothing of its own to free: the decoder and its backend are closed by their owner."""

    def stream(
        self,
        prompt: str,
        *,
        max_tokens: int,
        stop: Sequence[str],
        sampler: SamplerSettings,
        seed: int,
        grammar: str | None = None,
    ) -> Generator[Piece, None, None]:
        backend = self.decoder.backend
        request = _Request(
            seq=self.seq,
            tokens=backend.tokenize(prompt),
            sampler=backend.sampler(sampler, seed, grammar),
            pieces=Pieces(backend, stop, max_tokens),
        )
        self.decoder.submit(request)
        try:
            while True:
                item = request.out.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.end is not None:
                    return
        finally:
            request.closed = True
