"""A scalar reward head on any transformers backbone (causal LM or encoder), with optional layer freezing."""

from __future__ import annotations

from contextlib import contextmanager

from torch import nn

from rewardlab import backbones


def blocks_of(model) -> nn.ModuleList | None:
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
    blocks = blocks_of(model)
    if blocks is None:
        raise ValueError(f"{type(model).__name__}: cannot find its transformer blocks to freeze")
    n_layers = min(n_layers, len(blocks))
    for p in model.get_input_embeddings().parameters():
        p.requires_grad_(False)
    for block in blocks[:n_layers]:
        for p in block.parameters():
            p.requires_grad_(False)
    return n_layers


#: the names transformers gives the classification head of a sequence-classification model (causal LMs: score;
#: encoders: classifier)
HEAD_NAMES = ("score", "classifier")


def build_scalar_rm(backbone: str, tokenizer, freeze_layers: int = 0, dtype: str = "float32", attn_implementation: str | None = None):
    """AutoModelForSequenceClassification with one label on ``backbone``; the pad token id set for last-token pooling."""
    import torch
    from transformers import AutoModelForSequenceClassification

    kwargs = {"num_labels": 1, "dtype": getattr(torch, dtype)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # transformers' LOAD REPORT lists the new head as MISSING, which reads as an error
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(backbones.resolve(backbone), output_loading_info=True, **kwargs)
    finally:
        hf_logging.set_verbosity(level)
    missing = list(info.get("missing_keys", []))
    head = [k for k in missing if k.split(".")[0] in HEAD_NAMES]
    others = [k for k in missing if k not in head]
    if head:
        print(f"{backbone}: new reward head ({', '.join(sorted(head))}) initialised, as expected for a reward model that has "
              "not been trained yet", flush=True)
    if others:  # the backbone's own weights missing from the checkpoint: worth seeing
        print(f"warning: {backbone}: {len(others)} backbone weights were not in the checkpoint and start untrained: "
              f"{', '.join(others[:8])}{' ...' if len(others) > 8 else ''}", flush=True)
    model.config.pad_token_id = tokenizer.pad_token_id
    freeze_bottom(model, freeze_layers)
    return model


def per_token_head(model) -> nn.Linear | None:
    """The scalar head when it reads every token's final hidden state (causal-LM classifiers: ``score``), else None.
    Encoders' heads read a pooled [CLS] vector instead, which has no per-token states to give."""
    head = getattr(model, "score", None)
    saved = getattr(head, "modules_to_save", None)  # peft (LoRA) trains a copy of the head: hook that one
    if saved is not None:
        head = saved[next(iter(saved))]
    return head if isinstance(head, nn.Linear) else None


@contextmanager
def head_inputs(model):
    """Within the block, every forward of ``model`` appends the tensor its head reads, [batch, tokens, hidden],
    to the yielded list: the final-layer hidden states, the very ones the reward is computed from."""
    head = per_token_head(model)
    if head is None:
        raise ValueError(f"{type(model).__name__}: its head does not read per-token hidden states (need a causal-LM classifier)")
    seen: list = []
    handle = head.register_forward_pre_hook(lambda _module, args: seen.append(args[0]))
    try:
        yield seen
    finally:
        handle.remove()


def read_positions(input_ids, pad_token_id: int | None):
    """Per row, the index of the token a causal-LM classifier reads its reward at: the last one that is not the pad
    id, as transformers pools (with pad = EOS, as SmolLM2 has it, that is the last token before the EOS)."""
    import torch

    if pad_token_id is None:
        return torch.full((input_ids.shape[0],), input_ids.shape[1] - 1, device=input_ids.device)
    index = torch.arange(input_ids.shape[1], device=input_ids.device)
    return (index * (input_ids != pad_token_id)).argmax(-1)
