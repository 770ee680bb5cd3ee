"""Eager attention a block at a time, for judges on the CPU whose model has no faster exact
kernel: Gemma 2 soft-caps its attention scores, which PyTorch's fused attention cannot do, so
transformers runs it in eager attention (docs/study.md "ShieldGemma").

transformers' eager attention makes a batch x heads x queries x keys score tensor and passes it
through six operations; for ShieldGemma's 16 x 4 prompts of a batch that tensor leaves the CPU's
caches, and for long thoughts it outgrows the memory. This computes the same operations, in the
same order, on blocks of batch rows and queries small enough to stay in a core's cache, and in a
causal layer skips the keys after a block's last query, which the mask hides anyway.
"""

from __future__ import annotations

BLOCKED_EAGER = "lrmscope_blocked_eager"
QUERY_BLOCK = 64  # queries a block; the keys after a block's last one are not computed
SCORE_BLOCK = 1 << 18  # scores a block: 1 MiB in float32, within a core's L2 cache


def blocked_eager_attention(
    module,
    query,
    key,
    value,
    attention_mask,
    dropout: float = 0.0,
    scaling: float | None = None,
    softcap: float | None = None,
    **kwargs,
):
    """transformers' eager attention function (inference only): (output, no weights)."""
    import torch

    batch, heads, queries, _ = query.shape
    groups = heads // key.shape[1]
    key = key.repeat_interleave(groups, dim=1)  # each key/value head serves `groups` query heads
    value = value.repeat_interleave(groups, dim=1)
    keys = key.shape[2]
    if scaling is None:
        scaling = module.head_dim**-0.5
    # Without a mask, or with keys cached before the queries, every key may be seen.
    triangle = attention_mask is not None and getattr(module, "is_causal", False)
    triangle = triangle and keys == queries
    span = min(queries, QUERY_BLOCK)
    rows = max(1, SCORE_BLOCK // (heads * span * keys))
    out = query.new_empty(batch, heads, queries, value.shape[-1])
    for row in range(0, batch, rows):
        group = slice(row, row + rows)
        masked = (
            group if attention_mask is not None and attention_mask.shape[0] > 1 else slice(None)
        )
        for start in range(0, queries, span):
            block = slice(start, start + span)
            seen = slice(0, min(start + span, keys) if triangle else keys)
            scores = torch.matmul(query[group, :, block], key[group, :, seen].transpose(2, 3))
            scores.mul_(scaling)
            if softcap is not None:
                scores.div_(softcap).tanh_().mul_(softcap)
            if attention_mask is not None:
                scores.add_(attention_mask[masked, :, block, seen])
            weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
            out[group, :, block] = torch.matmul(weights, value[group, :, seen])
    return out.transpose(1, 2).contiguous(), None


def register() -> str:
    """Make the function known to transformers, with eager attention's masks; its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(BLOCKED_EAGER, blocked_eager_attention)
    AttentionMaskInterface.register(BLOCKED_EAGER, eager_mask)
    return BLOCKED_EAGER
