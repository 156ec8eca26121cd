"""A scalar reward head on any transformers backbone (causal LM or encoder), with optional layer freezing."""

from __future__ import annotations

from torch import nn

from rewardlab import backbones


def _blocks(model) -> nn.ModuleList | None:
    """The transformer blocks of a backbone, whatever the architecture calls them."""
    base = model.base_model
    for path in ("layers", "encoder.layer", "h", "transformer.h", "decoder.layers"):
        obj = base
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, nn.ModuleList):
            return obj
    return None


def freeze_bottom(model, n_layers: int) -> int:
    """Freeze the input embeddings and the first ``n_layers`` blocks; return how many blocks were frozen.

    Trades quality for speed and memory: gradients stop below the first trainable block.
    """
    if n_layers <= 0:
        return 0
    blocks = _blocks(model)
    if blocks is None:
        raise ValueError(f"{type(model).__name__}: cannot find its transformer blocks to freeze")
    n_layers = min(n_layers, len(blocks))
    for p in model.get_input_embeddings().parameters():
        p.requires_grad_(False)
    for block in blocks[:n_layers]:
        for p in block.parameters():
            p.requires_grad_(False)
    return n_layers


def build_scalar_rm(backbone: str, tokenizer, freeze_layers: int = 0, dtype: str = "float32", attn_implementation: str | None = None):
    """AutoModelForSequenceClassification with one label on ``backbone``; the pad token id set for last-token pooling."""
    import torch
    from transformers import AutoModelForSequenceClassification

    kwargs = {"num_labels": 1, "dtype": getattr(torch, dtype)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForSequenceClassification.from_pretrained(backbones.resolve(backbone), **kwargs)
    model.config.pad_token_id = tokenizer.pad_token_id
    freeze_bottom(model, freeze_layers)
    return model
