"""The goal-conditioned reward: a Bradley-Terry scalar reward whose hidden states also give per-token Q-values.

Trained by learners/goal_contrastive.py (Nath et al., "Learning Goal-Conditioned Representations for Language
Reward Models"). The folder holds what a scalar text reward holds plus ``goal_state.safetensors``: the mean
final hidden state, at the last token, over preferred (for math: correct) training responses. The Q-value of a
token is the cosine between its final hidden state (the tensor the reward head reads) and that goal state.

Capabilities beyond ``score``: ``q_values(prompts, responses)`` -> one array per response, one value per response
token (the response's own tokens, then the end token where the reward is read). ``filter_vote`` and
``q_rerank`` below are the two uses the paper makes of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.rewards.base import Chat, RewardInputError, check_text_batch
from rewardlab.rewards.registry import register
from rewardlab.rewards.text import ScalarTextReward, encode_span, load_classifier_folder, padded_batches, save_classifier_folder

GOAL_FILE = "goal_state.safetensors"


@register("goal_rm")
class GoalTextReward(ScalarTextReward):
    """A scalar text reward with a goal state. ``score`` is the Bradley-Terry reward; ``q_values`` reads the goal."""

    def __init__(self, model, tokenizer, goal_state=None, **kwargs: Any):
        super().__init__(model, tokenizer, **kwargs)
        self.goal_state = None if goal_state is None else goal_state.detach().float().cpu()

    @classmethod
    def from_folder(cls, folder: str | Path, **kwargs: Any) -> GoalTextReward:
        from safetensors.torch import load_file

        meta, model, tokenizer = load_classifier_folder(folder)
        kwargs.setdefault("max_length", meta.get("max_length", 512))
        kwargs.setdefault("template", meta.get("template", "chat"))
        goal = load_file(str(Path(folder) / GOAL_FILE))["goal_state"]
        return cls(model, tokenizer, goal_state=goal, **kwargs)

    @staticmethod
    def save(model, tokenizer, folder: str | Path, max_length: int, template: str, goal_state, **meta: Any) -> Path:
        """Weights, tokenizer, ``reward.json`` and the goal state: everything ``from_folder`` needs, nothing pickled."""
        from safetensors.torch import save_file

        folder = save_classifier_folder(model, tokenizer, folder, "goal_rm", max_length=max_length, template=template, **meta)
        save_file({"goal_state": goal_state.detach().float().cpu().contiguous()}, str(folder / GOAL_FILE))
        return folder

    def response_states(self, prompts: Sequence[Chat], responses: Sequence[Chat]) -> list:
        """Per response, the final hidden states (float32, on CPU) of its tokens up to and including the one the
        reward is read at: [response tokens, hidden]. ``self.model.score(states[-1])`` is the reward."""
        import torch
        from tqdm.auto import tqdm

        from rewardlab.models.scalar_head import head_inputs, read_positions

        prompts, responses, _ = check_text_batch(prompts, responses, None)
        encoded = [encode_span(self.tokenizer, p, r, self.max_length, self.template) for p, r in zip(prompts, responses)]
        out: list = [None] * len(encoded)
        batches = padded_batches([e[0] for e in encoded], self.batch_size, self.tokenizer.pad_token_id)
        n_batches = -(-len(encoded) // self.batch_size)
        with torch.inference_mode(), head_inputs(self.model) as seen:
            for idx, ids, mask in tqdm(batches, total=n_batches, desc="hidden states", unit="batch", leave=False, disable=n_batches < 4):
                self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
                hidden = seen.pop().float().cpu()
                last = read_positions(ids, self.tokenizer.pad_token_id)
                for row, i in enumerate(idx):
                    start = min(encoded[i][2], int(last[row]))
                    out[i] = hidden[row, start : int(last[row]) + 1]
        return out

    def q_values(self, prompts: Sequence[Chat], responses: Sequence[Chat]) -> list[np.ndarray]:
        """Per response, cos(h_t, goal) for each response token t up to the one the reward is read at."""
        if self.goal_state is None:
            raise RewardInputError("this reward has no goal state; it is computed at the end of training")
        return q_from_states(self.response_states(prompts, responses), self.goal_state)

    def scores_from_states(self, states: list) -> list[float]:
        """The rewards of responses whose ``response_states`` are at hand: the head on each last state."""
        import torch

        with torch.inference_mode():
            head = self.model.score
            last = torch.stack([h[-1] for h in states]).to(device=self.device, dtype=head.weight.dtype)
            return head(last)[:, 0].float().cpu().tolist()


def goal_from_states(states: list):
    """The goal state: the mean last-token state over the preferred responses whose ``response_states`` these are."""
    import torch

    if not states:
        raise RewardInputError("no preferred responses to compute the goal state from")
    return torch.stack([h[-1] for h in states]).mean(0)


def q_from_states(states: list, goal) -> list[np.ndarray]:
    import torch

    return [torch.nn.functional.cosine_similarity(h, goal[None, :], dim=-1).numpy() for h in states]


def min_q(q: np.ndarray, skip: int) -> float:
    """The lowest Q after the first ``skip`` tokens (the whole response if it is shorter)."""
    tail = q[skip:] if len(q) > skip else q
    return float(tail.min())


def majority(answers: Sequence[Any]) -> Any:
    """The most common answer, ignoring None; ties go to the answer seen first. None if there is none."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def filter_vote(answers: Sequence[Any], qs: Sequence[np.ndarray], threshold: float, skip: int = 5) -> tuple[Any, int, int]:
    """Majority vote over the samples whose minimum Q after ``skip`` tokens stays at or above ``threshold``.

    Returns (answer, tokens generated, tokens a generator would have spent without filtering): a dropped sample
    could have been stopped at the first token where its Q fell below the threshold. If every sample is dropped,
    the vote falls back to all samples, which a generator must then have written out in full: nothing is saved
    (as in the paper's ``examples/eval_rm.py``).
    """
    kept, spent, total = [], 0, 0
    for answer, q in zip(answers, qs):
        total += len(q)
        below = np.nonzero(q[skip:] < threshold)[0] if len(q) > skip else np.zeros(0, dtype=int)
        if len(below):
            spent += skip + int(below[0]) + 1
        else:
            spent += len(q)
            kept.append(answer)
    if not kept:
        return majority(list(answers)), total, total
    return majority(kept), spent, total


def q_rerank(qs: Sequence[np.ndarray], how: str = "last") -> int:
    """Index of the sample to keep when reranking by Q: the highest final Q (``last``) or mean Q (``mean``)."""
    values = [float(q[-1]) if how == "last" else float(np.mean(q)) for q in qs]
    return int(np.argmax(values))
