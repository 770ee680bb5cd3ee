"""`python -m tests.support.serve ARGS`: llama-cpp-python's server with its own command line,
loading the model as the local engine does: no AMX weight repacking (docs/study.md "Machines")."""

from llama_cpp.server.__main__ import main

from lrmscope.engine.llama import llama_class_repacking

if __name__ == "__main__":
    with llama_class_repacking():
        main()
