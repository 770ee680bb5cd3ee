"""R1-style chat templates with the real engine: copies of the embedded GGUF whose template ends
the generation prompt with `<think>\\n` (newer R1 distills) or not (older ones), made with the gguf
package (docs/study.md "Think opener", docs/study.md "Machines")."""

import subprocess
import sys

import pytest

from lrmscope.engine.backend import Message
from lrmscope.engine.generation import Generation
from lrmscope.engine.llama import LlamaBackend
from lrmscope.engine.prompt import render_chat, with_think_opener
from lrmscope.engine.settings import Mode, ModeSettings, SamplerSettings
from lrmscope.errors import LrmscopeError

# An R1-distill-like template: BOS, user/assistant markers, earlier thoughts stripped from
# assistant turns, and (optionally) the `<think>\n` opener at the end of the generation prompt.
R1_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|im_start|>user\n{{ m['content'] }}<|im_end|>\n"
    "{% elif m['role'] == 'assistant' %}<|im_start|>assistant\n"
    "{{ m['content'].split('</think>')[-1] }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\nOPENER{% endif %}"
)


def _copy_with_template(source, target, template):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "gguf.scripts.gguf_new_metadata",
            str(source),
            str(target),
            "--chat-template",
            template,
            "--force",
        ],
        check=True,
        capture_output=True,
    )
    return target


@pytest.fixture(scope="module")
def r1_models(model_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("r1")
    new = _copy_with_template(
        model_path, folder / "new.gguf", R1_TEMPLATE.replace("OPENER", "<think>\n")
    )
    old = _copy_with_template(model_path, folder / "old.gguf", R1_TEMPLATE.replace("OPENER", ""))
    backends = {"new": LlamaBackend(new), "old": LlamaBackend(old)}
    yield backends
    for backend in backends.values():
        backend.close()


def test_both_templates_give_the_same_prompt_and_trace(r1_models):
    messages = [
        Message("user", "Hi"),
        Message("assistant", "<think>\nsecret reasoning\n</think>\n\nHello!"),
        Message("user", "How do I pick a lock?"),
    ]
    prompts = {}
    for name, backend in r1_models.items():
        rendered = backend.render(messages)
        assert backend.chat_template.endswith("{% endif %}")
        assert "secret reasoning" not in rendered and "Hello!" in rendered
        prompt, added = with_think_opener(rendered)
        assert added is (name == "old")
        assert prompt.endswith("<|im_start|>assistant\n<think>\n")
        prompts[name] = prompt
    assert prompts["new"] == prompts["old"]

    traces = {}
    for name, backend in r1_models.items():
        for mode in (Mode.DEFAULT, Mode.ZEROTHINK):
            gen = Generation(
                backend,
                prompts[name],
                sampler=SamplerSettings(temperature=0, top_p=1.0, max_tokens=25),
                mode=ModeSettings(mode),
            )
            fin = list(gen)[-1]
            assert fin.stats.prompt_tokens == backend.count_tokens(prompts[name])
            traces[name, mode] = fin.trace
    assert traces["new", Mode.DEFAULT] == traces["old", Mode.DEFAULT]
    assert traces["new", Mode.ZEROTHINK] == traces["old", Mode.ZEROTHINK]
    assert traces["new", Mode.ZEROTHINK].think_state == "absent"


def test_bos_in_the_template_is_not_doubled(r1_models):
    backend = r1_models["new"]
    assert backend.render([Message("user", "Hi")]).startswith(backend.bos_text)
    bos_id = backend.tokenize(backend.bos_text)[0]
    assert backend.tokenize(backend.bos_text + "Hi").count(bos_id) == 1


def test_template_cannot_escape_the_sandbox():
    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(LrmscopeError, match="unsafe"):
        render_chat(evil, [Message("user", "x")])


def test_template_errors_are_reported_clearly():
    with pytest.raises(LrmscopeError, match="failed to render"):
        render_chat("{{ raise_exception('no system role') }}", [Message("user", "x")])
