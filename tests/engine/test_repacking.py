"""llama-cpp-python's own `Llama` class loads with the repacking lrmscope chooses
(engine/llama.py `llama_class_repacking`): the benches' baselines and the test servers load so,
and do not crash on AMX CPUs (docs/study.md "Machines")."""

import llama_cpp
import pytest

from lrmscope.engine.llama import cpu_has_amx, llama_class_repacking


@pytest.mark.parametrize("extra_bufts", [False, None], ids=["off", "as-lrmscope"])
def test_the_llama_class_loads_with_the_chosen_repacking(model_path, extra_bufts):
    default_params = llama_cpp.llama_cpp.llama_model_default_params
    with llama_class_repacking(extra_bufts):
        llm = llama_cpp.Llama(str(model_path), n_ctx=64, verbose=False)
    expected = (not cpu_has_amx()) if extra_bufts is None else extra_bufts
    assert llm.model_params.use_extra_bufts is expected
    assert llama_cpp.llama_cpp.llama_model_default_params is default_params
    llm.close()
