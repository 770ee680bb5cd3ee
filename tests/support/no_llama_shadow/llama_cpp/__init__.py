"""Stands in for llama-cpp-python when `pytest tests/unit` runs alone (tests/conftest.py): the
unit tests, and the processes they start, see it as not installed."""

raise ModuleNotFoundError(
    "No module named 'llama_cpp' (tests/unit runs without llama.cpp; a test that needs it belongs "
    "in tests/engine/)",
    name="llama_cpp",
)
