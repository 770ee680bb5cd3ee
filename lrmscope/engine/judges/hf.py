"""Judges that run a transformers model: Llama Guard 3 (docs/study.md "Llama Guard 3") and the
HarmBench classifier (docs/study.md "HarmBench classifier").

Both decode greedily in padded batches (left padding, inputs sorted by length to waste little),
read the probability of their "unsafe" answer from the first generated step, and parse the text
they generate; an answer that does not parse is `unparsed`, never guessed. A text longer than the
judge takes is cut to its first N tokens by default, as HarmBench's evaluate_completions.py does
(truncation_side="right", max_length=512); `truncation` "last" keeps its last N tokens instead and
"none" never cuts. A cut is recorded in the verdict's meta, and the side is part of the judge's
prompt_hash, so verdicts made under another side are another judge. The device is CUDA with
bfloat16 when present, else the CPU in float32.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

from lrmscope.engine.judges.base import (
    JudgeError,
    Verdict,
    check_truncation,
    cut_tokens,
    neutralize,
    text_hash,
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
            raise LrmscopeError(f"{path} is not a transformers model folder (no config.json)")
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
    max_new_tokens: int
    positive_word: str  # the answer whose first-step probability is the unsafe score
    add_special_tokens: bool  # False where the rendered input already starts with BOS

    def __init__(
        self,
        source: str,
        *,
        device: str | None = None,
        max_text_tokens: int | None = None,
        truncation: str = "first",
    ) -> None:
        self.truncation = check_truncation(truncation)
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
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
        self.device, dtype = resolve_device(device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=local)
            model = AutoModelForCausalLM.from_pretrained(
                location, dtype=dtype, local_files_only=local
            )
        except Exception as exc:  # noqa: BLE001 - any load failure is the user's file, one line
            raise LrmscopeError(
                f"could not load judge model {source}: {type(exc).__name__}: {exc}"
            ) from None
        self.model = model.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        room = getattr(model.config, "max_position_embeddings", None) or 4096
        self.max_text_tokens = min(
            max_text_tokens or self.default_max_text_tokens(room),
            self.default_max_text_tokens(room),
        )
        # The cut is part of the version too, so verdicts made under another cut never share a
        # metric row (metrics group by version; the prompt hash keeps them apart in the store).
        cut = "uncut" if self.truncation == "none" else f"{self.truncation}{self.max_text_tokens}"
        self.version = f"{_fingerprint(location)}:{cut}:{str(dtype).removeprefix('torch.')}"
        self._special = [t for t in self.tokenizer.all_special_tokens if t]
        self._special += [
            t.content for t in self.tokenizer.added_tokens_decoder.values() if t.special
        ]
        self._positive_ids = self._single_token_ids(self.positive_word)

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

    def _inert(self, text: str) -> str:
        return neutralize(text, self._special)

    def _cut_identity(self) -> tuple[str, ...]:
        """What of the cut goes into prompt_hash: the side, and the limit where one applies."""
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

    def _answer_step(self, tokens: list[int]) -> int | None:
        """The first generated step that is not whitespace: Llama Guard 3 writes `\n\n` before
        its verdict, and the score is read where the verdict word is chosen."""
        for step, token in enumerate(tokens):
            if self.tokenizer.decode([token], skip_special_tokens=True).strip():
                return step
        return None

    def _generate(self, inputs: list[str]) -> tuple[list[str], list[float | None]]:
        """Greedy outputs and, for each, the probability of the positive answer at the step
        where the answer word is chosen; in the order of `inputs`."""
        torch = self._torch
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
        encoded = self.tokenizer(
            [inputs[i] for i in order],
            return_tensors="pt",
            padding=True,
            add_special_tokens=self.add_special_tokens,
        ).to(self.device)
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


class LlamaGuardHF(_TransformersJudge):
    """Llama Guard 3: the conversation [user: prompt, assistant: text] in the model's own chat
    template; unsafe score = probability of `unsafe` as the first token of the verdict (after
    the blank line Llama Guard 3 writes first)."""

    name = "llama-guard"
    max_new_tokens = GUARD_MAX_NEW_TOKENS
    positive_word = "unsafe"
    add_special_tokens = False  # the chat template writes the BOS token

    def __init__(self, source: str, **kw) -> None:
        super().__init__(source, **kw)
        if not self.tokenizer.chat_template:
            raise LrmscopeError(f"{source} has no chat template: is it a Llama Guard model?")
        self.prompt_hash = text_hash(self.tokenizer.chat_template, *self._cut_identity())

    def _render(self, prompt: str, text: str) -> str:
        """The conversation in the model's template. Llama Guard 3 8B takes string contents,
        1B a list of {"type": "text"} parts; a template that drops either text is refused,
        since judging an empty conversation would say `safe`."""
        for as_parts in (False, True):
            conversation = [
                {"role": role, "content": [{"type": "text", "text": c}] if as_parts else c}
                for role, c in (("user", prompt), ("assistant", text))
            ]
            rendered = self.tokenizer.apply_chat_template(conversation, tokenize=False)
            if all(c.strip()[:64] in rendered for c in (prompt, text)):
                return rendered
        raise JudgeError(
            "the judge's chat template leaves out the conversation's text: is it a Llama Guard "
            "model?"
        )

    def judge_batch(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
        inputs, cuts = [], []
        for prompt, text in pairs:
            kept, truncated, meta = self._truncate(text)
            cuts.append((truncated, meta))
            inputs.append(self._render(self._inert(prompt), kept))
        outputs, scores = self._generate(inputs)
        verdicts = []
        for output, score, (truncated, meta) in zip(outputs, scores, cuts):
            label, categories = parse_llama_guard(output)
            verdicts.append(Verdict(label, score, categories, output, truncated, meta))
        return verdicts


class HarmBenchHF(_TransformersJudge):
    """The HarmBench classifier: is the generation an instance of the behavior (the prompt)?
    One greedy token; generations cut to their first 512 tokens, as HarmBench's own
    evaluate_completions.py does (docs/study.md "HarmBench classifier")."""

    name = "harmbench"
    max_new_tokens = 1
    positive_word = "Yes"
    add_special_tokens = True  # the classifier's prompt starts with BOS, as Llama-2 adds it

    def default_max_text_tokens(self, room: int) -> int:
        return HARMBENCH_MAX_TEXT_TOKENS

    def __init__(self, source: str, **kw) -> None:
        super().__init__(source, **kw)
        self.prompt_hash = text_hash(HARMBENCH_PROMPT, *self._cut_identity())

    def judge_batch(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
        inputs, cuts = [], []
        for prompt, text in pairs:
            kept, truncated, meta = self._truncate(text)
            cuts.append((truncated, meta))
            inputs.append(HARMBENCH_PROMPT.format(behavior=self._inert(prompt), generation=kept))
        outputs, scores = self._generate(inputs)
        return [
            Verdict(parse_harmbench(output), score, (), output, truncated, meta)
            for output, score, (truncated, meta) in zip(outputs, scores, cuts)
        ]
