"""The llama.cpp backend, on llama-cpp-python's low-level API.

The high-level `Llama` class cannot load a model with `use_extra_bufts = False`, which this
project's CPUs need (docs/study.md "Machines": the AMX repacking path crashes on the first decode),
and does per-token work we do not need. This backend keeps one context, reuses the KV cache for
the longest common token prefix between calls (a MoreThink round or a live switch re-sends the
prompt plus the text so far, so only the new suffix is evaluated), and decodes one token at a time,
detokenizing incrementally.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import functools
import logging
import os
from collections.abc import Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp import _internals as internals
from llama_cpp import _logger
from llama_cpp._utils import suppress_stdout_stderr

from lrmscope.engine.backend import Message, Piece, check_fits
from lrmscope.engine.models import check_gguf, fingerprint
from lrmscope.engine.prompt import FALLBACK_TEMPLATE, render_chat
from lrmscope.engine.sampling import SAMPLER_ORDER, Sampler
from lrmscope.engine.settings import SamplerSettings
from lrmscope.engine.stops import StopMatcher
from lrmscope.engine.threads import ThreadSharing, available_cores, choose
from lrmscope.errors import LrmscopeError

DEFAULT_MAX_CTX = 16384
PROMPT_BATCH = 512
_META_KEYS = (
    "general.architecture",
    "general.name",
    "general.size_label",
    "general.file_type",
    "general.quantization_version",
)


def cpu_has_amx() -> bool:
    """True on CPUs where llama.cpp's AMX weight repacking crashes (docs/study.md "Machines")."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_tile" in flags


@contextlib.contextmanager
def llama_class_repacking(extra_bufts: bool | None = None) -> Iterator[None]:
    """llama-cpp-python's own `Llama` class, and so its server, takes no use_extra_bufts: models
    it loads in this block get `extra_bufts` (None: as this backend decides, off on AMX CPUs)."""
    chosen = (not cpu_has_amx()) if extra_bufts is None else extra_bufts
    module = llama_cpp.llama_cpp  # where `Llama` reads its default model parameters
    original = module.llama_model_default_params

    def params() -> llama_cpp.llama_model_params:
        p = original()
        p.use_extra_bufts = chosen
        return p

    module.llama_model_default_params = params
    try:
        yield
    finally:
        module.llama_model_default_params = original


def gpu_offload_supported() -> bool:
    return bool(llama_cpp.llama_supports_gpu_offload())


@dataclass(frozen=True)
class LlamaSettings:
    """How to load a model. None means: decide from the machine (see `resolved`; the thread
    count is chosen by `LlamaBackend` from the other lrmscope processes, engine/threads.py)."""

    gpu_layers: int | None = None
    cpu: bool = False
    threads: int | None = None
    n_ctx: int | None = None
    extra_bufts: bool | None = None
    verbose: bool = False
    # Sequences decoded together by an engine.batch.BatchDecoder; the KV cache is unified (shared
    # prompt prefixes are stored once) and holds n_ctx tokens per sequence.
    n_seq: int = 1
    # The context per sequence when n_ctx is None, capped by the model's training context.
    default_ctx: int = DEFAULT_MAX_CTX

    def __post_init__(self) -> None:
        if not 1 <= self.n_seq <= 256:
            raise LrmscopeError(f"parallel sequences must be between 1 and 256, got {self.n_seq}")
        if self.threads is not None and not 1 <= self.threads <= 512:
            raise LrmscopeError(f"threads must be between 1 and 512, got {self.threads}")
        if self.n_ctx is not None and not 64 <= self.n_ctx <= 10_000_000:
            raise LrmscopeError(f"context size must be between 64 and 10000000, got {self.n_ctx}")
        if self.gpu_layers is not None and self.gpu_layers < -1:
            raise LrmscopeError("gpu layers must be -1 (all), 0 (none) or a positive count")

    def resolved(self) -> LlamaSettings:
        """All layers on the GPU when the build supports it, CPU otherwise; no AMX repacking."""
        if self.cpu or not gpu_offload_supported():
            layers = 0
        else:
            layers = -1 if self.gpu_layers is None else self.gpu_layers
        return LlamaSettings(
            gpu_layers=layers,
            cpu=self.cpu,
            threads=self.threads or choose(available_cores(), [], 0.0).threads,
            n_ctx=self.n_ctx,
            extra_bufts=(not cpu_has_amx()) if self.extra_bufts is None else self.extra_bufts,
            verbose=self.verbose,
            n_seq=self.n_seq,
            default_ctx=self.default_ctx,
        )


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two sequences share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class Pieces:
    """One stream's sampled tokens as Pieces: detokenized incrementally, partial stop strings
    held back, and the end decided (eos, stop, length, context). Shared by the one-sequence
    stream and the batch decoder, so both end a stream the same way."""

    def __init__(self, backend: LlamaBackend, stop: Sequence[str], max_tokens: int) -> None:
        self._backend = backend
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._matcher = StopMatcher(stop)
        self._max_tokens = max_tokens
        self._count = 0

    def _rest(self) -> str:
        return self._decoder.decode(b"", final=True) + self._matcher.rest()

    def next(self, token: int, evaluated: int) -> Piece:
        """The piece of a sampled token; `evaluated`: tokens of the sequence in the KV cache.
        A piece with `end` set is the stream's last (its token is not to be evaluated)."""
        backend = self._backend
        self._count += 1
        if llama_cpp.llama_vocab_is_eog(backend.vocab, token):
            return Piece(self._rest(), 0, "eos")
        text, stopped = self._matcher.push(self._decoder.decode(backend.token_bytes(token)))
        if stopped:
            return Piece(text, 1, "stop")
        if self._count == self._max_tokens:
            return Piece(text + self._rest(), 1, "length")
        if evaluated + 1 >= backend.n_ctx:
            return Piece(text + self._rest(), 1, "context")
        return Piece(text, 1)


class GgufText:
    """A GGUF's chat template and tokenizer, from its model in llama.cpp (weights loaded or not).
    Subclasses set `_model` and call `_read_text()`."""

    _model: internals.LlamaModel
    path: Path
    _last_tokenized: tuple[str, tuple[int, ...]] | None = None

    def _read_text(self) -> None:
        self.metadata = self._model.metadata()
        self.bos_text = self._token_text(self._model.token_bos())
        self.eos_text = self._token_text(self._model.token_eos())

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._model.token_get_text(token)

    @property
    def chat_template(self) -> str:
        return self.metadata.get("tokenizer.chat_template") or FALLBACK_TEMPLATE

    def render(self, messages: Sequence[Message]) -> str:
        return render_chat(
            self.chat_template,
            messages,
            bos_token=self.bos_text,
            eos_token=self.eos_text,
            source=str(self.path),
        )

    def tokenize(self, text: str) -> list[int]:
        """Special tokens in the text are parsed; BOS is added only if the text lacks it. The
        last text's tokens are kept: a generation counts its prompt's tokens and then decodes
        them, and the K samples of a prompt all start from it (one tuple, replaced whole, so the
        sequences' threads can share it)."""
        last = self._last_tokenized
        if last is not None and last[0] == text:
            return list(last[1])
        add_bos = self._model.add_bos_token() and not (
            self.bos_text and text.startswith(self.bos_text)
        )
        tokens = self._model.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
        self._last_tokenized = (text, tuple(tokens))
        return tokens

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))


class GgufVocab(GgufText):
    """Only a GGUF's vocabulary and metadata (llama.cpp's vocab_only load: no weights, fast): the
    chat template and tokenizer of a model that a server runs (engine.remote)."""

    def __init__(self, model_path: str | os.PathLike[str]) -> None:
        self.path = check_gguf(model_path)
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        try:
            self._model = internals.LlamaModel(
                path_model=str(self.path), params=params, verbose=False
            )
        except ValueError:
            raise LrmscopeError(
                f"llama.cpp could not read the vocabulary of {self.path} (truncated or damaged?)"
            ) from None
        self._read_text()


class LlamaBackend(GgufText):
    """A GGUF model in llama.cpp. Not thread-safe: one stream at a time."""

    name = "llama.cpp"

    def __init__(self, model_path: str | os.PathLike[str], settings: LlamaSettings | None = None):
        self.path = check_gguf(model_path)
        settings = settings or LlamaSettings()
        # The thread count is part of the settings the run records; a model whose count was
        # not given follows its share as other lrmscope processes come and go (`_share_cores`).
        self.sharing = ThreadSharing(settings.threads)
        self.settings = replace(settings, threads=self.sharing.threads).resolved()
        _logger.logger.setLevel(logging.DEBUG if self.settings.verbose else logging.CRITICAL)
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = self.settings.gpu_layers
        params.use_extra_bufts = self.settings.extra_bufts
        try:
            self._model = internals.LlamaModel(
                path_model=str(self.path), params=params, verbose=self.settings.verbose
            )
        except ValueError:
            self.sharing.close()
            raise LrmscopeError(
                f"llama.cpp could not load {self.path} (truncated, damaged or an unsupported "
                "architecture); check the file, or run with --debug for llama.cpp's log"
            ) from None
        self._read_text()
        n_ctx_train = self._model.n_ctx_train()
        n_ctx = self.settings.n_ctx or min(n_ctx_train, self.settings.default_ctx)
        ctx_params = llama_cpp.llama_context_default_params()
        ctx_params.n_ctx = n_ctx * self.settings.n_seq
        ctx_params.n_seq_max = self.settings.n_seq
        ctx_params.kv_unified = True
        self.n_batch = min(PROMPT_BATCH, n_ctx)  # prompt tokens per decode
        # A batched step decodes one token of every sequence at once.
        ctx_params.n_batch = ctx_params.n_ubatch = max(self.n_batch, self.settings.n_seq)
        ctx_params.n_threads = self.settings.threads
        ctx_params.n_threads_batch = self.settings.threads
        ctx_params.no_perf = True
        try:
            self.ctx = internals.LlamaContext(
                model=self._model, params=ctx_params, verbose=self.settings.verbose
            )
        except ValueError:
            self._model.close()
            self.sharing.close()
            raise LrmscopeError(
                f"llama.cpp could not create a {n_ctx}-token context for {self.path} "
                "(out of memory?); try a smaller --ctx"
            ) from None
        self.n_ctx = self.ctx.n_ctx() // self.settings.n_seq
        self._batch = internals.LlamaBatch(n_tokens=self.n_batch, embd=0, n_seq_max=1)
        self.vocab = self._model.vocab
        self.n_vocab = self._model.n_vocab()
        self._evaluated: list[int] = []
        self._pieces: dict[int, bytes] = {}

    def token_bytes(self, token: int) -> bytes:
        """The bytes of one token (special tokens such as EOS render as nothing), cached."""
        piece = self._pieces.get(token)
        if piece is None:
            buffer = ctypes.create_string_buffer(256)
            size = llama_cpp.llama_token_to_piece(self.vocab, token, buffer, 256, 0, False)
            piece = self._pieces[token] = buffer.raw[: max(size, 0)]
        return piece

    def close(self) -> None:
        self.sharing.close()
        self._batch.close()
        self.ctx.close()
        self._model.close()

    def share_cores(self) -> None:
        """Between two decodes: take the thread count that the other lrmscope processes now
        leave this one (engine/threads.py), if it changed."""
        threads = self.sharing.recheck()
        if threads is not None:
            llama_cpp.llama_set_n_threads(self.ctx.ctx, threads, threads)

    # -- prompts -------------------------------------------------------------------------------

    def check_prompt(self, prompt: str) -> int:
        return check_fits(self.count_tokens(prompt), self.n_ctx)

    def tokenize_text(self, text: str) -> list[int]:
        """Plain text to tokens: no BOS, special-token strings left as text."""
        return self._model.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def control_token_texts(self) -> list[str]:
        """The text of every control token (BOS, EOS, turn markers): strings that, parsed as
        special tokens, would act as the template's own structure."""
        if not hasattr(self, "_control_texts"):
            vocab_size = llama_cpp.llama_vocab_n_tokens(self.vocab)
            self._control_texts = [
                text
                for token in range(vocab_size)
                if llama_cpp.llama_vocab_get_attr(self.vocab, token)
                & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
                and (text := self._model.token_get_text(token))
            ]
        return self._control_texts

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.token_bytes(t) for t in tokens).decode("utf-8", errors="replace")

    def next_token_probs(self, prompt: str, token_ids: Sequence[int]) -> list[float]:
        """The probabilities of `token_ids` as the next token after `prompt` (softmax over the
        whole vocabulary), e.g. Llama Guard's unsafe score."""
        tokens = self.tokenize(prompt)
        self._prefill(tokens)
        logits = self.logits(-1).astype(np.float64)
        logits -= logits.max()
        weights = np.exp(logits)
        total = weights.sum()
        return [float(weights[t] / total) for t in token_ids]

    # -- generation ----------------------------------------------------------------------------

    def _grammar_sampler(self, grammar: str):
        # llama.cpp prints parse errors straight to stderr; ours is the one line the user sees.
        with suppress_stdout_stderr(disable=self.settings.verbose):
            sampler = llama_cpp.llama_sampler_init_grammar(
                self.vocab, grammar.encode("utf-8"), b"root"
            )
        if not sampler:
            raise LrmscopeError(
                "the think grammar does not parse (GBNF, with a `root` rule); check the file"
            )
        return sampler

    def check_grammar(self, grammar: str) -> None:
        """Fail with one clear line, before anything runs, if llama.cpp rejects the grammar."""
        llama_cpp.llama_sampler_free(self._grammar_sampler(grammar))

    def logits(self, index: int) -> np.ndarray:
        """A read-only view of the logits at `index` of the last batch (-1: its last token)."""
        view = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(self.ctx.ctx, index), shape=(self.n_vocab,)
        )
        view.flags.writeable = False
        return view

    def output_logits(self, outputs: int) -> np.ndarray:
        """A read-only view of the last batch's logits, a row per token that asked for them, in
        the batch's order (llama.cpp puts its outputs back in that order when they are read)."""
        view = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits(self.ctx.ctx), shape=(outputs, self.n_vocab)
        )
        view.flags.writeable = False
        return view

    def sampler(self, settings: SamplerSettings, seed: int, grammar: str | None) -> Sampler:
        grammar_sampler = self._grammar_sampler(grammar) if grammar is not None else None
        return Sampler(settings, seed, self.n_vocab, grammar_sampler)

    def _decode(self, tokens: Sequence[int]) -> None:
        """Evaluate tokens after what is already in the KV cache, in batches."""
        self.share_cores()
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start : start + self.n_batch]
            self._batch.set_batch(chunk, n_past=len(self._evaluated), logits_all=False)
            self.ctx.decode(self._batch)
            self._evaluated.extend(chunk)

    def forget(self) -> None:
        """Empty the KV cache (a BatchDecoder takes the context over, or gives it back)."""
        self.ctx.kv_cache_clear()
        self._evaluated.clear()

    def _prefill(self, tokens: list[int]) -> None:
        """Keep the KV cache for the longest common prefix, evaluate the rest (at least one
        token, so there are fresh logits to sample from)."""
        common = min(common_prefix(self._evaluated, tokens), len(tokens) - 1)
        self.ctx.kv_cache_seq_rm(-1, common, -1)
        del self._evaluated[common:]
        self._decode(tokens[common:])

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
        tokens = self.tokenize(prompt)
        if len(tokens) >= self.n_ctx:
            yield Piece("", 0, "context")
            return
        self._prefill(tokens)
        chooser = self.sampler(sampler, seed, grammar)
        pieces = Pieces(self, stop, max_tokens)
        try:
            while True:
                token = chooser.sample(self.logits(-1))
                piece = pieces.next(token, len(self._evaluated))
                if piece.end is not None:
                    yield piece
                    return
                self._decode([token])
                yield piece
        finally:
            chooser.close()

    def info(self) -> dict:
        return {
            "backend": self.name,
            "llama_cpp_python": llama_cpp.__version__,
            "device": "gpu" if self.settings.gpu_layers else "cpu",
            "threads": self.sharing.choice.describe(),
            "gpu_offload_supported": gpu_offload_supported(),
            "n_ctx": self.n_ctx,
            "n_ctx_train": self._model.n_ctx_train(),
            "model_desc": self._model.desc(),
            "n_params": self._model.n_params(),
            "sampler_order": SAMPLER_ORDER,
            **{f"settings.{k}": v for k, v in asdict(self.settings).items()},
        }

    def model_meta(self) -> dict:
        meta: dict[str, str | None] = {
            key: self.metadata[key] for key in _META_KEYS if key in self.metadata
        }
        meta["chat_template"] = self.metadata.get("tokenizer.chat_template")
        return meta

    @property
    def model_name(self) -> str:
        """The model as the views name it."""
        return self.path.name

    @functools.cached_property
    def model_fingerprint(self) -> str:
        """The file's fingerprint (see models.fingerprint), read once."""
        return fingerprint(self.path)
