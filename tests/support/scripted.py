"""What the controller tests on the scripted backend share: a rendered prompt whose template
already opened the thought, and greedy sampling with room for every script."""

from lrmscope.engine.settings import SamplerSettings

P = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n"
SAMPLER = SamplerSettings(temperature=0, max_tokens=200, seed=7)
