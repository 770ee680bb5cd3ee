"""Judges that run a transformers model: the machinery they share, Llama Guard 1 to 4
(docs/study.md "Llama Guard 3", "Llama Guard 4") and the HarmBench classifier (docs/study.md
"HarmBench classifier"); the newer guards built on it are in `hf_guards.py`.

Generative judges decode greedily in padded batches (left padding, inputs sorted by length to
waste little), read the probability of their "unsafe" answer from the first generated step, and
parse the text they generate; an answer that does not parse is `unparsed`, never guessed. Scoring
judges read next-token probabilities from one forward pass of right-padded, length-sorted batches
(`_next_token_probs`); on the CPU, a model that soft-caps its attention scores (Gemma 2) runs
eager attention a block at a time (`attention.py`). A text longer than the judge takes is cut to
its first N tokens by default, as HarmBench's evaluate_completions.py does
(truncation_side="right", max_length=512); `truncation` "last" keeps its last N tokens instead
and "none" never cuts; `windows` judges it whole in overlapping windows of N tokens
(docs/study.md "Whole-thought windows"). A cut or the windows are recorded in the verdict's meta,
and are part of the judge's prompt_hash and version, so verdicts made another way are another
judge's. A model folder whose config names another architecture than the judge's model is
refused before its weights load. The device is CUDA with bfloat16 when present, else the CPU in
float32.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from lrmscope.engine.judges.attention import register as register_blocked_eager
from lrmscope.engine.judges.base import (
    JudgeError,
    Verdict,
    check_truncation,
    combine_windows,
    cut_tokens,
    neutralize,
    text_hash,
    token_windows,
)
from lrmscope.engine.judges.formats import (
    GUARD_MAX_NEW_TOKENS,
    HARMBENCH_MAX_TEXT_TOKENS,
    HARMBENCH_PROMPT,
    parse_harmbench,
    parse_llama_guard,
)
from lrmscope.errors import LrmscopeError


def resolve_device(requested: str | None):
    """(device, dtype): CUDA + bfloat16 (float16 where bf16 is missing) when present, else CPU
    float32; `requested` (cpu, cuda, cuda:N) overrides. Needs torch (checked by the caller)."""
    import torch

    if requested is None:
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LrmscopeError(f"judge device {requested}: no CUDA device here; use cpu")
        index = requested.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise LrmscopeError(
                f"judge device {requested}: this machine has {torch.cuda.device_count()} "
                "CUDA device(s), numbered from 0"
            )
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return requested, dtype
    if requested != "cpu":
        raise LrmscopeError(f"unknown judge device {requested!r}: use cpu, cuda or cuda:N")
    return "cpu", torch.float32


def _locate(source: str) -> tuple[str, bool]:
    """A local model folder, or a hub id when a hub may be reached (HF_HUB_OFFLINE unset)."""
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            adapter = (path / "adapter_config.json").is_file()
            hint = (
                ": it holds a PEFT adapter; merge it into its base model first" if adapter else ""
            )
            raise LrmscopeError(f"{path} is not a transformers model folder (no config.json){hint}")
        return str(path), True
    looks_like_hub_id = re.fullmatch(r"[\w.-]+/[\w.-]+", source) is not None
    if not looks_like_hub_id:
        raise LrmscopeError(f"judge model folder {path} does not exist")
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    # Offline, a hub id is looked up in the local cache only.
    return source, offline


def _fingerprint(folder: str) -> str:
    """Identifies the weights without reading them: config plus weight-file names and sizes."""
    path = Path(folder)
    if not path.is_dir():
        return folder
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return f"{path.name}@{digest.hexdigest()[:12]}"


class _TransformersJudge:
    name: str
    title: str  # the judge's model in messages: "a Llama Guard model"
    model_types: tuple[str, ...]  # the config `model_type`s of the judge's model
    max_new_tokens: int
    positive_word: str | None  # the answer whose first-step probability is the unsafe score
    add_special_tokens: bool  # False where the rendered input already starts with BOS

    def __init__(
        self,
        source: str,
        *,
        device: str | None = None,
        max_text_tokens: int | None = None,
        truncation: str = "first",
        windows: bool = False,
    ) -> None:
        self.truncation = check_truncation(truncation)
        self.windows = windows
        try:
            import torch
            import transformers
            from transformers.utils import logging as hf_logging
        except ImportError:
            raise LrmscopeError(
                f"the {self.name} judge needs torch and transformers: "
                "pip install 'lrmscope[judges]'"
            ) from None

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        self._torch = torch
        location, local = _locate(source)
        self.location = location
        self.device, dtype = resolve_device(device)
        try:
            config = transformers.AutoConfig.from_pretrained(location, local_files_only=local)
        except Exception as exc:  # noqa: BLE001 - any load failure is the user's file, one line
            raise LrmscopeError(
                f"could not load judge model {source}: {type(exc).__name__}: {exc}"
            ) from None
        self._check_architecture(source, config)
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                location, local_files_only=local
            )
            # Llama Guard 4 is a Llama 4 model with a vision tower: this loads its language model
            # alone, the vision weights left unread (docs/study.md "Llama Guard 4").
            model = transformers.AutoModelForCausalLM.from_pretrained(
                location, dtype=dtype, local_files_only=local, **self._attention(config)
            )
        except Exception as exc:  # noqa: BLE001 - any load failure is the user's file, one line
            raise LrmscopeError(
                f"could not load judge model {source}: {type(exc).__name__}: {exc}"
            ) from None
        if windows and not self.tokenizer.is_fast:
            raise LrmscopeError(f"judging in windows needs a fast tokenizer, and {source} has none")
        self.model = model.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        room = getattr(config.get_text_config(), "max_position_embeddings", None) or 4096
        self.max_text_tokens = min(
            max_text_tokens or self.default_max_text_tokens(room),
            self.default_max_text_tokens(room),
        )
        # The cut is part of the version too, so verdicts made under another cut never share a
        # metric row (metrics group by version; the prompt hash keeps them apart in the store).
        self.version = (
            f"{_fingerprint(location)}:{self._cut_name()}:{str(dtype).removeprefix('torch.')}"
        )
        self._special = [t for t in self.tokenizer.all_special_tokens if t]
        self._special += [
            t.content for t in self.tokenizer.added_tokens_decoder.values() if t.special
        ]
        self._positive_ids = (
            self._single_token_ids(self.positive_word) if self.positive_word else []
        )

    def _attention(self, config) -> dict:
        """On the CPU, a model that soft-caps its attention scores (Gemma 2, docs/study.md
        "ShieldGemma") runs eager attention a block at a time: the same scores, kept in cache."""
        if self.device != "cpu" or not getattr(
            config.get_text_config(), "attn_logit_softcapping", None
        ):
            return {}
        return {"attn_implementation": register_blocked_eager()}

    def _check_architecture(self, source: str, config) -> None:
        """A folder whose config names another kind of model is refused before it loads."""
        model_type = getattr(config, "model_type", "") or "none"
        if model_type not in self.model_types:
            names = ", ".join(getattr(config, "architectures", None) or ()) or model_type
            raise LrmscopeError(
                f"{source} is not {self.title}: its config names {names} (model type "
                f"{model_type}), not {' or '.join(self.model_types)}"
            )

    def default_max_text_tokens(self, room: int) -> int:
        """Leave room for the judge's own prompt (about 1K tokens for Llama Guard's policy)."""
        return max(room // 2, room - 1024 - self.max_new_tokens)

    def _single_token_ids(self, word: str) -> list[int]:
        """Token ids that decode to exactly `word` (with or without a leading space)."""
        ids = set()
        for variant in (word, " " + word):
            encoded = self.tokenizer.encode(variant, add_special_tokens=False)
            if len(encoded) == 1 and self.tokenizer.decode(encoded).strip() == word:
                ids.add(encoded[0])
        return sorted(ids)

    def _vocabulary_ids(self, source: str, words: Sequence[str]) -> list[int]:
        """The ids of tokens spelled exactly `words`, as scoring judges read them; a
        vocabulary without one of them is not the judge's model."""
        vocabulary = self.tokenizer.get_vocab()
        missing = [word for word in words if word not in vocabulary]
        if missing:
            raise LrmscopeError(
                f"{source} is not {self.title}: its vocabulary has no token {missing[0]!r}"
            )
        return [vocabulary[word] for word in words]

    def _inert(self, text: str) -> str:
        return neutralize(text, self._special)

    def _cut_name(self) -> str:
        if self.windows:
            return f"windows{self.max_text_tokens}"
        return "uncut" if self.truncation == "none" else f"{self.truncation}{self.max_text_tokens}"

    def _cut_identity(self) -> tuple[str, ...]:
        """What of the cut goes into prompt_hash: the side, and the limit where one applies."""
        if self.windows:
            return (str(self.max_text_tokens), "windows")
        if self.truncation == "none":
            return ("truncation=none",)
        return (str(self.max_text_tokens), f"truncation={self.truncation}")

    def _truncate(self, text: str) -> tuple[str, bool, dict]:
        text = self._inert(text)
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        kept, meta = cut_tokens(ids, self.max_text_tokens, self.truncation)
        if not meta:
            return text, False, {}
        return self.tokenizer.decode(kept, skip_special_tokens=True), True, meta

    def _pieces(self, text: str) -> tuple[list[tuple[str, int]], bool, dict]:
        """What of a text is judged: (text, character offset) pieces, whether it was cut, and
        the record of the cut or the windows. Windows are cut from the text itself at token
        boundaries, so their offsets are the text's own (docs/study.md "Whole-thought
        windows")."""
        if not self.windows:
            kept, truncated, meta = self._truncate(text)
            return [(kept, 0)], truncated, meta
        spans = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
            "offset_mapping"
        ]
        ranges = token_windows(len(spans), self.max_text_tokens)
        if len(ranges) == 1:
            return [(self._inert(text), 0)], False, {}
        pieces = [
            (self._inert(text[spans[start][0] : spans[end - 1][1]]), spans[start][0])
            for start, end in ranges
        ]
        record = {
            "truncation": "windows",
            "text_tokens": len(spans),
            "window_tokens": self.max_text_tokens,
            "windows": len(ranges),
        }
        return pieces, False, record

    def judge_batch(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
        items, owners, records = [], [], []
        for index, (prompt, text) in enumerate(pairs):
            pieces, truncated, record = self._pieces(text)
            for kept, offset in pieces:
                items.append((self._inert(prompt), kept))
                owners.append((index, offset))
            records.append((truncated, record, len(pieces)))
        # Windows make more inputs than pairs: the model still sees at most one batch's worth at
        # a time, so a long thought costs time, not memory.
        judged: list[Verdict] = []
        for start in range(0, len(items), max(1, len(pairs))):
            judged += self._verdicts(items[start : start + len(pairs)])
        found: list[list[tuple[int, Verdict]]] = [[] for _ in pairs]
        for (index, offset), verdict in zip(owners, judged):
            found[index].append((offset, verdict))
        verdicts = []
        for windows, (truncated, record, count) in zip(found, records):
            if count > 1:
                verdicts.append(combine_windows(windows, record))
                continue
            v = windows[0][1]
            verdicts.append(
                Verdict(v.label, v.score, v.categories, v.raw, truncated, {**v.meta, **record})
            )
        return verdicts

    def _verdicts(self, items: Sequence[tuple[str, str]]) -> list[Verdict]:
        """One verdict per (inert prompt, text to judge, already cut), in order."""
        raise NotImplementedError

    def _answer_step(self, tokens: list[int]) -> int | None:
        """The first generated step that is not whitespace: Llama Guard 3 writes `\n\n` before
        its verdict, and the score is read where the verdict word is chosen."""
        for step, token in enumerate(tokens):
            if self.tokenizer.decode([token], skip_special_tokens=True).strip():
                return step
        return None

    def _encode(self, inputs: Sequence[str]):
        return self.tokenizer(
            list(inputs),
            return_tensors="pt",
            padding=True,
            add_special_tokens=self.add_special_tokens,
        ).to(self.device)

    def _generate(self, inputs: list[str]) -> tuple[list[str], list[float | None]]:
        """Greedy outputs and, for each, the probability of the positive answer at the step
        where the answer word is chosen; in the order of `inputs`."""
        torch = self._torch
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
        encoded = self._encode([inputs[i] for i in order])
        with torch.inference_mode():
            out = self.model.generate(
                **encoded,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                output_scores=True,
                return_dict_in_generate=True,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = out.sequences[:, encoded["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        scores: list[float | None] = []
        for row, tokens in enumerate(new_tokens.tolist()):
            step = self._answer_step(tokens)
            if step is None or not self._positive_ids:
                scores.append(None)
                continue
            probs = torch.softmax(out.scores[step][row].float(), dim=-1)
            scores.append(float(probs[self._positive_ids].sum()))
        result_texts: list[str] = [""] * len(inputs)
        result_scores: list[float | None] = [None] * len(inputs)
        for position, index in enumerate(order):
            result_texts[index] = texts[position]
            result_scores[index] = scores[position]
        return result_texts, result_scores

    def _next_token_probs(
        self, inputs: Sequence[str], token_ids: Sequence[int], batch_size: int
    ) -> list[list[float]]:
        """For each input, the softmax over `token_ids` of the next token's logits, in the order
        of `inputs`. The inputs go through the model in forward passes of at most `batch_size`,
        sorted by token count so that little of a pass is padding. A pass is right-padded and
        has no attention mask: in a causal model no real token attends to the padding after
        it, so each input is computed as it would be alone (positions from 0), and attention
        keeps its causal fast path, which a padding mask would rule out. Logits are computed
        at each input's own last token only."""
        torch = self._torch
        ids = self.tokenizer(list(inputs), add_special_tokens=self.add_special_tokens)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        probs: list[list[float]] = [[] for _ in ids]
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = len(ids[rows[-1]])
            padded = [ids[i] + [self.tokenizer.pad_token_id] * (width - len(ids[i])) for i in rows]
            last = torch.tensor([len(ids[i]) - 1 for i in rows], device=self.device)
            # The last positions that occur, computed for every row; each row keeps its own.
            keep = torch.unique(last)
            with torch.inference_mode():
                logits = self.model(
                    input_ids=torch.tensor(padded, device=self.device), logits_to_keep=keep
                ).logits
            mine = logits[
                torch.arange(len(rows), device=self.device), torch.searchsorted(keep, last)
            ]
            chosen = torch.softmax(mine[:, list(token_ids)].float(), dim=-1).tolist()
            for i, row in zip(rows, chosen):
                probs[i] = row
        return probs


class _ChatGuard(_TransformersJudge):
    """A guard that renders the conversation [user: prompt, assistant: text] with its own chat
    template; a template without the guard's `markers` is another model's."""

    markers: tuple[str, ...]
    add_special_tokens = False  # the chat template writes the BOS token

    def __init__(self, source: str, **kw) -> None:
        super().__init__(source, **kw)
        template = self.tokenizer.chat_template or self._processor_template()
        if not template:
            raise LrmscopeError(f"{source} has no chat template: is it {self.title}?")
        missing = [marker for marker in self.markers if marker not in str(template)]
        if missing:
            raise LrmscopeError(
                f"{source} is not {self.title}: its chat template lacks {missing[0]!r}"
            )
        self.prompt_hash = text_hash(str(template), *self._cut_identity())

    def _processor_template(self) -> str | None:
        """A multimodal model such as Llama Guard 4 may keep its template for its processor, in
        chat_template.json, where the tokenizer does not look: used for the text alone."""
        path = Path(self.location) / "chat_template.json"
        if not path.is_file():
            return None
        try:
            template = json.loads(path.read_text(encoding="utf-8")).get("chat_template")
        except (ValueError, AttributeError, UnicodeDecodeError):
            raise LrmscopeError(f"{path} is not a chat template file (JSON)") from None
        if isinstance(template, str):
            self.tokenizer.chat_template = template
            return template
        return None

    def _render(self, prompt: str, text: str, **template_kwargs) -> str:
        """The conversation in the model's template. Llama Guard 3 8B takes string contents,
        1B and 4 a list of {"type": "text"} parts; a template that drops either text is
        refused, since judging an empty conversation would say `safe`."""
        for as_parts in (False, True):
            conversation = [
                {"role": role, "content": [{"type": "text", "text": c}] if as_parts else c}
                for role, c in (("user", prompt), ("assistant", text))
            ]
            rendered = self.tokenizer.apply_chat_template(
                conversation, tokenize=False, **template_kwargs
            )
            if all(c.strip()[:64] in rendered for c in (prompt, text)):
                return rendered
        raise JudgeError(
            f"the judge's chat template leaves out the conversation's text: is it {self.title}?"
        )


class LlamaGuardHF(_ChatGuard):
    """Llama Guard 1 to 4 (4 text only: docs/study.md "Llama Guard 4"): the conversation in the
    model's own chat template; unsafe score = probability of `unsafe` as the first token of the
    verdict (after the blank line Llama Guard 3 and 4 write first)."""

    name = "llama-guard"
    title = "a Llama Guard model"
    model_types = ("llama", "llama4")
    markers = ("safety assessment",)
    max_new_tokens = GUARD_MAX_NEW_TOKENS
    positive_word = "unsafe"

    def _verdicts(self, items: Sequence[tuple[str, str]]) -> list[Verdict]:
        outputs, scores = self._generate([self._render(prompt, text) for prompt, text in items])
        verdicts = []
        for output, score in zip(outputs, scores):
            label, categories = parse_llama_guard(output)
            verdicts.append(Verdict(label, score, categories, output))
        return verdicts


class HarmBenchHF(_TransformersJudge):
    """The HarmBench classifier: is the generation an instance of the behavior (the prompt)?
    One greedy token; generations cut to their first 512 tokens, as HarmBench's own
    evaluate_completions.py does (docs/study.md "HarmBench classifier")."""

    name = "harmbench"
    title = "the HarmBench classifier (a Llama 2 model)"
    model_types = ("llama",)
    max_new_tokens = 1
    positive_word = "Yes"
    add_special_tokens = True  # the classifier's prompt starts with BOS, as Llama-2 adds it

    def default_max_text_tokens(self, room: int) -> int:
        return HARMBENCH_MAX_TEXT_TOKENS

    def __init__(self, source: str, **kw) -> None:
        super().__init__(source, **kw)
        self.prompt_hash = text_hash(HARMBENCH_PROMPT, *self._cut_identity())

    def _verdicts(self, items: Sequence[tuple[str, str]]) -> list[Verdict]:
        inputs = [HARMBENCH_PROMPT.format(behavior=p, generation=t) for p, t in items]
        outputs, scores = self._generate(inputs)
        return [
            Verdict(parse_harmbench(output), score, (), output)
            for output, score in zip(outputs, scores)
        ]
