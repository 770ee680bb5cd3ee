"""Chat prompts: the model's own template, rendered in a Jinja sandbox, plus the think opener.

A GGUF's chat template is untrusted text: it is rendered with jinja2's
ImmutableSandboxedEnvironment, which refuses attribute access to internals and any mutation, so a
template cannot reach Python.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lrmscope.engine.backend import Message
from lrmscope.engine.settings import THINK_OPEN, ModeSettings
from lrmscope.errors import LrmscopeError

# Used when a model carries no template: plain ChatML, enough for the embedded model's family.
FALLBACK_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)


@functools.lru_cache(maxsize=8)
def _compiled(template: str) -> jinja2.Template:
    """The template compiled once: compiling the embedded model's template takes 1.3 ms, a
    render of it 0.01 ms, and an eval renders every prompt of its dataset before it starts."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, undefined=jinja2.ChainableUndefined
    )
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template)


def render_chat(
    template: str,
    messages: Sequence[Message],
    *,
    bos_token: str = "",
    eos_token: str = "",
    source: str = "the built-in template",
) -> str:
    """The rendered prompt; a template that fails or tries to leave the sandbox is an
    LrmscopeError naming `source` (where the template came from)."""
    try:
        return _compiled(template).render(
            messages=[{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=True,
            bos_token=bos_token,
            eos_token=eos_token,
        )
    except jinja2.exceptions.SecurityError as exc:
        raise LrmscopeError(
            f"the chat template of {source} tried an unsafe operation and was refused ({exc}); "
            "use a model (or a --chat-template FILE) whose template you trust"
        ) from None
    except jinja2.TemplateError as exc:
        raise LrmscopeError(f"the chat template of {source} failed to render: {exc}") from None


def with_think_opener(rendered: str, mode: ModeSettings | None = None) -> tuple[str, bool]:
    """The prompt P a generation continues, and whether the engine added `<think>\\n` to it.

    Newer R1 templates end the generation prompt with `<think>\\n`. When the template did not,
    the opener is added always (policy `always`, DeepSeek's advice) or, under the study's policy
    `template`, only for a mode with a prefill (ZeroThink and LessThink, whose prefills close a
    thought that must have been opened, and a mode of your own with one) (docs/study.md "Think
    opener"). Without it the model may open its thought itself, which the trace parser
    accepts. A mode of your own may set its own policy (`opener`)."""
    if rendered.endswith(THINK_OPEN):
        return rendered, False
    mode = (mode or ModeSettings()).resolved()
    if mode.think_opener == "template" and mode.mode.prefill is None:
        return rendered, False
    return rendered + THINK_OPEN, True
