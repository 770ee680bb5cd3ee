import os

import pytest

from lrmscope.engine.models import embedded_model_path
from tests.support.no_llama import hide_llama, only_unit_tests

# No test reaches a hub: the Hugging Face libraries read these when they are first imported,
# which may be before lrmscope sets them itself (core/hub.py).
os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"


def pytest_configure(config: pytest.Config) -> None:
    """`pytest tests/unit` alone runs as if llama-cpp-python were not installed: the fast loop
    needs no llama.cpp, and a unit test that does fails (tests/support/no_llama.py)."""
    if only_unit_tests(config.invocation_params.dir, config.args):
        hide_llama()


@pytest.fixture(scope="session")
def model_path():
    return embedded_model_path()


@pytest.fixture(scope="session")
def llama(model_path):
    """The embedded SmolLM2 GGUF in real llama.cpp, loaded once for the whole run."""
    from lrmscope.engine.llama import LlamaBackend

    backend = LlamaBackend(model_path)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def tiny_judge_model(tmp_path_factory):
    """A tiny Llama trained here to answer like Llama Guard and the HarmBench classifier."""
    from tests.support.tiny_judges import build

    return build(tmp_path_factory.mktemp("tiny-judge"), steps=150)


@pytest.fixture(scope="session")
def server(tmp_path_factory, request):
    """llama-cpp-python's server on the embedded model, started once (tests/support/servers.py)."""
    from tests.support.servers import started

    return started(tmp_path_factory, request, "server")


@pytest.fixture(scope="session")
def server2(tmp_path_factory, request):
    """A second such server, for two endpoints at once."""
    from tests.support.servers import started

    return started(tmp_path_factory, request, "server2")
