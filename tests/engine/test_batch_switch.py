"""The switch interval while batch decoders run (docs/study.md "Machines", "The scheduler and
the GIL"), in a module of its own: no other test's decoder is running here."""

import sys

import pytest

from lrmscope.engine.batch import SWITCH_INTERVAL_S, BatchDecoder
from lrmscope.engine.llama import LlamaBackend, LlamaSettings


@pytest.fixture
def default_interval():
    outer = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # CPython's default
    yield 0.005
    sys.setswitchinterval(outer)


def test_a_running_decoder_shortens_the_switch_interval_and_gives_it_back(
    model_path, default_interval
):
    backend = LlamaBackend(model_path, LlamaSettings(n_seq=2, n_ctx=256))
    decoder = BatchDecoder(backend)
    try:
        assert sys.getswitchinterval() == SWITCH_INTERVAL_S
    finally:
        decoder.close()
        backend.close()
    assert sys.getswitchinterval() == default_interval


def test_the_interval_comes_back_when_the_last_of_two_decoders_closes(model_path, default_interval):
    """Two local models in one process (a compare of two) each run a decoder."""
    backends = [LlamaBackend(model_path, LlamaSettings(n_seq=2, n_ctx=256)) for _ in range(2)]
    first, second = (BatchDecoder(backend) for backend in backends)
    try:
        first.close()
        first.close()  # closing twice gives nothing back twice
        assert sys.getswitchinterval() == SWITCH_INTERVAL_S
    finally:
        second.close()
        for backend in backends:
            backend.close()
    assert sys.getswitchinterval() == default_interval
