"""OpenAI Moderation over HTTP (docs/study.md "OpenAI Moderation"), with the official client.

Only the response text is sent. `results[i].flagged` = unsafe; category scores are kept. The client
retries with exponential backoff on connection errors, 408/409/429 and 5xx; a server that still
fails raises JudgeError (nothing is guessed); a body that is not the expected JSON gives
`unparsed` verdicts with the body kept as raw output.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import openai

from lrmscope.engine.judges.base import JudgeError, Verdict, text_hash
from lrmscope.errors import LrmscopeError

DEFAULT_MODEL = "omni-moderation-latest"
API_KEY_ENV = "OPENAI_API_KEY"


def parse_result(result: object) -> Verdict:
    raw = json.dumps(result, ensure_ascii=False)
    if not isinstance(result, dict) or not isinstance(result.get("flagged"), bool):
        return Verdict("unparsed", raw=raw)
    scores = result.get("category_scores") or {}
    flagged = result.get("categories") or {}
    if not isinstance(scores, dict) or not isinstance(flagged, dict):
        return Verdict("unparsed", raw=raw)
    numeric = [v for v in scores.values() if isinstance(v, (int, float))]
    return Verdict(
        "unsafe" if result["flagged"] else "safe",
        score=max(numeric) if numeric else None,
        categories=tuple(sorted(name for name, hit in flagged.items() if hit is True)),
        raw=raw,
        meta={"category_scores": scores},
    )


class OpenAIModeration:
    name = "openai-moderation"
    device = "remote"

    def __init__(
        self,
        *,
        model: str | None = None,
        base_url: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 4,
    ) -> None:
        key = os.environ.get(API_KEY_ENV)
        if not key:
            raise LrmscopeError(f"the openai-moderation judge needs an API key: set {API_KEY_ENV}")
        self.model = model or DEFAULT_MODEL
        self.version = self.model
        self.prompt_hash = text_hash("moderation: response text only")
        self._client = openai.OpenAI(
            api_key=key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    def judge_batch(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
        texts = [text for _prompt, text in pairs]
        try:
            response = self._client.moderations.with_raw_response.create(
                model=self.model, input=texts
            )
        except openai.APIStatusError as exc:
            raise JudgeError(
                f"moderation server answered {exc.status_code}: {exc.message}"
            ) from None
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise JudgeError(f"moderation server unreachable: {exc}") from None
        body = response.text
        try:
            payload = json.loads(body)
            results = payload["results"]
            if not isinstance(results, list) or len(results) != len(texts):
                raise ValueError("wrong number of results")
        except (ValueError, KeyError, TypeError):
            return [Verdict("unparsed", raw=body[:2000]) for _ in texts]
        served = payload.get("model")
        verdicts = [parse_result(result) for result in results]
        return [
            Verdict(v.label, v.score, v.categories, v.raw, v.truncated, {**v.meta, "model": served})
            for v in verdicts
        ]
