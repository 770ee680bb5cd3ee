"""The engine's extension points, without a model: judges registered by a decorator (and built
lazily), and backends that give everything the `Backend` protocol promises."""

import subprocess
import sys

import pytest

from lrmscope.engine.backend import Backend
from lrmscope.engine.judges import registry
from lrmscope.engine.judges.registry import JUDGES, JudgeOptions, build_judge, register_judge
from lrmscope.engine.judges.rsmatch import RSMatch
from lrmscope.engine.remote import PromptFormat, RemoteBackend, RemoteSettings
from lrmscope.engine.remote_chat import ChatBackend, ChatSettings
from lrmscope.engine.scripted import ScriptedBackend
from lrmscope.errors import LrmscopeError

# The judges in the order `lrmscope judges` lists them.
NAMES = (
    "rs-match",
    "llama-guard",
    "llama-guard-gguf",
    "harmbench",
    "openai-moderation",
    "jury",
    "wildguard",
    "shieldgemma",
    "qwen3guard",
    "strongreject",
    "strongreject-rubric",
    "llm-judge",
)


def protocol_members(protocol: type) -> set[str]:
    return {name for name in (*protocol.__annotations__, *vars(protocol)) if name[0] != "_"}


def test_every_judge_is_registered_once_in_listing_order():
    assert tuple(JUDGES) == NAMES
    assert [JUDGES[name].needs_argument for name in NAMES] == [
        False,
        True,
        True,
        True,
        False,
        True,
        True,
        True,
        True,
        True,
        False,
        True,
    ]


def test_listing_and_building_rs_match_load_no_heavy_library():
    code = (
        "import sys\n"
        "from lrmscope.engine.judges import JUDGES, build_judge\n"
        "assert [info.summary for info in JUDGES.values()]\n"
        "build_judge('rs-match=advbench')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'transformers', 'llama_cpp', 'openai'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_registered_judge_is_built_with_its_argument_and_options(monkeypatch):
    monkeypatch.setattr(registry, "JUDGES", dict(JUDGES))
    built = []

    @register_judge("probe", argument="=SET", summary="a judge of this test")
    def probe(argument: str, options: JudgeOptions):
        built.append((argument, options.device))
        return RSMatch(argument)

    judge = build_judge("probe=advbench", JudgeOptions(device="cpu"))
    assert built == [("advbench", "cpu")] and judge.version.startswith("advbench")
    assert list(registry.JUDGES)[-1] == "probe" and registry.JUDGES["probe"].build is probe
    with pytest.raises(LrmscopeError, match=r"^judge probe needs a model: --judge probe=SET$"):
        build_judge("probe")
    with pytest.raises(ValueError, match="registered twice"):
        register_judge("probe", argument="", summary="")(probe)
    with pytest.raises(LrmscopeError, match="choose one of rs-match, .*, probe$"):
        build_judge("nothing")


def test_unknown_judge_and_truncation_are_one_line():
    with pytest.raises(LrmscopeError, match=r"^unknown judge 'x': choose one of rs-match, "):
        build_judge("x")
    with pytest.raises(LrmscopeError, match=r"^unknown judge truncation 'middle'"):
        build_judge("rs-match", JudgeOptions(truncation="middle"))


@pytest.mark.parametrize(
    "backend",
    [
        ScriptedBackend("text"),
        RemoteBackend(
            RemoteSettings(("http://127.0.0.1:9/v1",), "served"),
            "http://127.0.0.1:9/v1",
            PromptFormat("{{ messages[0].content }}", "file:t.jinja"),
        ),
        ChatBackend(
            RemoteSettings(("http://127.0.0.1:9/v1",), "served", api="chat"),
            "http://127.0.0.1:9/v1",
            ChatSettings(),
        ),
    ],
    ids=["scripted", "remote", "remote-chat"],
)
def test_backends_give_what_the_protocol_promises(backend):
    members = protocol_members(Backend)
    assert {"model_name", "model_fingerprint", "model_meta", "close", "stream"} <= members
    assert [name for name in sorted(members) if not hasattr(backend, name)] == []
    assert isinstance(backend.model_name, str) and isinstance(backend.model_fingerprint, str)
    assert isinstance(backend.model_meta(), dict)
    backend.close()
