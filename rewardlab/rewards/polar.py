"""POLAR's reward: r(prompt, reference, candidate), high when the candidate comes from the reference's policy.

The model reads one sequence, ``prompt \\n reference <sep> prompt \\n candidate <reward>``, and a scalar head reads
the final hidden state at the ``<reward>`` token. Both tokens are added to the tokenizer as special tokens (the
embeddings are resized when the model is built). Training and inference share ``encode_triple``, so the layout
and the truncation are the same in both: the reference and the candidate are kept, and the prompt, which appears
twice, is cut from the left (its end, next to the answer, stays). Only when reference and candidate alone exceed
the budget is the reference cut (from the left); the candidate is never cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardlab.rewards.base import Chat, RewardInputError, chat_to_messages, check_text_batch
from rewardlab.rewards.registry import register
from rewardlab.rewards.text import MAX_BATCH_TOKENS, load_classifier_folder, padded_batches, save_classifier_folder

SEP_TOKEN = "<|polar_sep|>"
REWARD_TOKEN = "<|polar_reward|>"


def add_polar_tokens(tokenizer, model=None) -> tuple[int, int]:
    """Register the separator and reward tokens (idempotent); resize ``model``'s embeddings to match."""
    ids = getattr(tokenizer, "_rewardlab_polar_ids", None)  # get_vocab() builds a 50k-entry dict: check once
    if ids is None:
        missing = [t for t in (SEP_TOKEN, REWARD_TOKEN) if t not in tokenizer.get_vocab()]
        if missing:
            tokenizer.add_tokens(missing, special_tokens=True)
        ids = (tokenizer.convert_tokens_to_ids(SEP_TOKEN), tokenizer.convert_tokens_to_ids(REWARD_TOKEN))
        tokenizer._rewardlab_polar_ids = ids
    if model is not None and model.get_input_embeddings().weight.shape[0] < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    return ids


def _text(chat: Chat, role: str, field: str) -> str:
    return "\n".join(m["content"] for m in chat_to_messages(chat, role, field))


def encode_triple(tokenizer, prompt: Chat, reference: Chat, candidate: Chat, max_length: int) -> tuple[list[int], bool]:
    """Token ids of ``prompt\\nreference <sep> prompt\\ncandidate <reward>`` within ``max_length``; also whether
    anything was cut. The last id is always the reward token."""
    sep_id, reward_id = add_polar_tokens(tokenizer)

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    p = ids(_text(prompt, "user", "prompt") + "\n")
    r = ids(_text(reference, "assistant", "reference"))
    c = ids(_text(candidate, "assistant", "candidate"))
    budget = max_length - 2  # sep and reward tokens
    if len(c) > budget:
        raise RewardInputError(f"candidate is {len(c)} tokens, longer than max_length {max_length} allows; it is never cut")
    cut = False
    if len(r) + len(c) > budget:
        r, cut = r[len(r) + len(c) - budget :], True  # keep the end of the reference
    per_prompt = (budget - len(r) - len(c)) // 2
    if len(p) > per_prompt:
        p, cut = (p[len(p) - per_prompt :] if per_prompt > 0 else []), True
    return p + r + [sep_id] + p + c + [reward_id], cut


@register("polar")
class PolarReward:
    """A policy-discriminator reward. ``score`` needs ``references``: one reference answer per response.

    Scores are relative to the reference: a candidate written like the reference scores high. After each call,
    ``last_truncated[i]`` says whether item i's prompt or reference was cut.
    """

    modality = "text"
    uses_references = True

    def __init__(self, model, tokenizer, max_length: int = 512, batch_size: int = 16, device: str | None = None):
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.reward_token_id = add_polar_tokens(tokenizer)[1]
        self.last_truncated: list[bool] = []

    @classmethod
    def from_folder(cls, folder: str | Path, **kwargs: Any) -> PolarReward:
        meta, model, tokenizer = load_classifier_folder(folder)
        kwargs.setdefault("max_length", meta.get("max_length", 512))
        return cls(model, tokenizer, **kwargs)

    @staticmethod
    def save(model, tokenizer, folder: str | Path, max_length: int, **meta: Any) -> Path:
        return save_classifier_folder(model, tokenizer, folder, "polar", max_length=max_length, sep_token=SEP_TOKEN,
                                      reward_token=REWARD_TOKEN, **meta)

    def score(self, prompts: Sequence[Chat], responses: Sequence[Chat], references: Sequence[Chat] | None = None) -> list[float]:
        import torch

        if references is None:
            raise RewardInputError("references: a POLAR reward scores each response against a reference answer; pass references")
        prompts, responses, references = check_text_batch(prompts, responses, references)
        encoded = [encode_triple(self.tokenizer, p, ref, c, self.max_length) for p, ref, c in zip(prompts, references, responses)]
        self.last_truncated = [cut for _, cut in encoded]
        out = [0.0] * len(encoded)
        with torch.inference_mode():
            for idx, ids, mask in padded_batches([e[0] for e in encoded], self.batch_size, self.tokenizer.pad_token_id,
                                                  getattr(self, "max_batch_tokens", MAX_BATCH_TOKENS)):
                values = self.reward_at_token(ids.to(self.device), mask.to(self.device))
                for row, i in enumerate(idx):
                    out[i] = float(values[row])
        return out

    def reward_at_token(self, input_ids, attention_mask):
        """The head applied to the final hidden state at each row's (last) reward token."""
        import torch

        hidden = self.model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        is_reward = input_ids == self.reward_token_id
        if not bool(is_reward.any(dim=1).all()):
            raise RewardInputError("every sequence must end with the reward token")
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        last = torch.where(is_reward, positions, -1).max(dim=1).values
        picked = hidden[torch.arange(len(input_ids), device=input_ids.device), last]
        return self.model.score(picked).squeeze(-1)
