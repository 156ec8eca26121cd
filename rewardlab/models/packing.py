"""Shared-prompt packing of preference pairs: the prompt is computed once for both answers.

A pair's two token sequences (chosen, rejected), as the unpacked path tokenizes them, share a prefix: the prompt
and the template up to the answer. One packed row holds that prefix once, then the chosen answer's own tokens,
then the rejected answer's, with

* an attention mask in which the prefix attends to itself (causally), each answer attends to the prefix and to
  itself (causally) but never to the other answer;
* position ids that restart each answer where the prefix ends.

In a causal model every token's hidden state then equals the one it has in the unpacked forward of its own
sequence, so each answer's reward, read at its own last token, is the unpacked reward (tested to 1e-4 on SmolLM2).

An encoder (BERT's bidirectional attention, a pooled [CLS] head) lets prompt tokens attend to the answer, so the
prompt's states differ between the two answers and cannot be shared. For encoders a packed row holds the two full
sequences side by side, each attending only to itself, positions restarting at 0 and each read at its own [CLS]:
still exact, it only removes the padding between the two sequences of a pair.

Rows of a batch are padded to the longest packed row and masked per row ([batch, 1, L, L], an additive float
mask, which both the SDPA and the eager attention of transformers take as a custom 4D mask). Concatenating every
row into one padding-free sequence would need a block-diagonal mask over the whole batch: with a dense mask, SDPA
on CPU then spends batch^2 times the attention work, so per-row masks are what runs fastest here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


def shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """The length of the longest common prefix of two token sequences, leaving each at least one token of its own
    (so each answer has a last token to read its reward at)."""
    n, limit = 0, min(len(a), len(b)) - 1
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def is_causal(model) -> bool:
    """Whether the model's head reads per-token states of a causal LM (shared-prompt packing is exact), rather
    than a pooled [CLS] of an encoder."""
    return hasattr(_base(model), "score")


@dataclass
class Packed:
    """One pair as a packed row: ``ids`` and ``positions``; ``segment`` per token (0 prefix, 1 chosen, 2
    rejected); ``prefix`` (shared tokens), the chosen and rejected lengths of the unpacked sequences, and where in
    them each reward is read (``chosen_read``, ``rejected_read``); ``chosen_at`` / ``rejected_at`` are those
    positions in the packed row."""

    ids: list[int]
    positions: list[int]
    segment: list[int]
    prefix: int
    chosen_len: int
    rejected_len: int
    chosen_read: int = 0
    rejected_read: int = 0
    chosen_at: int = 0
    rejected_at: int = 0

    def index(self, side: int, position: int) -> int:
        """The packed index of token ``position`` of the unpacked chosen (side 1) or rejected (side 2) sequence."""
        if side == 1 or position < self.prefix:
            return position
        if self.prefix:  # causal: the rejected answer's own tokens follow the chosen ones
            return position + (self.chosen_len - self.prefix)
        return position + self.chosen_len  # encoder: the whole rejected sequence follows the whole chosen one


def read_position(ids: Sequence[int], pad_id: int | None) -> int:
    """Where a causal sequence classifier reads its reward: the last token that is not the pad token
    (transformers' rule, so a trailing pad-as-EOS is skipped as in the unpacked forward)."""
    for t in range(len(ids) - 1, -1, -1):
        if ids[t] != pad_id:
            return t
    return len(ids) - 1


def pack(chosen: Sequence[int], rejected: Sequence[int], share: bool = True, pad_id: int | None = None) -> Packed:
    """Pack one pair; ``share`` (causal models) computes the common prefix once. Rewards are read where the
    unpacked forward reads them: the last non-pad token (causal), the [CLS] at each sequence's start (encoder)."""
    chosen, rejected = list(chosen), list(rejected)
    p = shared_prefix(chosen, rejected) if share else 0
    c, r = len(chosen) - p, len(rejected) - p
    ids = chosen + rejected[p:]
    positions = list(range(p + c)) + (list(range(p, p + r)) if share else list(range(r)))
    row = Packed(ids, positions, [0] * p + [1] * c + [2] * r, p, len(chosen), len(rejected))
    row.chosen_read, row.rejected_read = (read_position(chosen, pad_id), read_position(rejected, pad_id)) if share else (0, 0)
    row.chosen_at, row.rejected_at = row.index(1, row.chosen_read), row.index(2, row.rejected_read)
    return row


def flatten(rows: Sequence[Packed]) -> Packed:
    """Every packed row of a batch as one padding-free row (segments renumbered so that rows never see each other);
    read positions become offsets into it. Used by ``collate(..., flat=True)``."""
    ids, positions, segment, chosen_at, rejected_at, offset = [], [], [], [], [], 0
    for j, row in enumerate(rows):
        ids += row.ids
        positions += row.positions
        segment += [3 * j + s for s in row.segment]
        chosen_at.append(offset + row.chosen_at)
        rejected_at.append(offset + row.rejected_at)
        offset += len(row.ids)
    flat = Packed(ids, positions, segment, 0, 0, 0)
    flat.chosen_at, flat.rejected_at = chosen_at, rejected_at  # lists: one per pair
    return flat


def collate(rows: Sequence[Packed], pad_id: int, causal: bool, dtype=torch.float32, flat: bool = False) -> dict:
    """Tensors for a batch of packed rows: ``input_ids`` and ``position_ids`` [B, L] (padded), the additive
    ``attention_mask_4d`` [B, 1, L, L], ``tokens`` [B, L] (1 on real tokens), ``read_index`` [2B] (the chosen
    answers' read positions, then the rejected ones', TRL's order). ``flat``: one padding-free row [1, T] holding
    the whole batch with a block-diagonal mask (``read_index`` then indexes that row); measured slower on CPU,
    kept for the comparison (see the module's docstring)."""
    if flat:
        one = flatten(rows)
        out = collate([one], pad_id, causal, dtype)
        out["read_index"] = torch.tensor(one.chosen_at + one.rejected_at)
        out["flat"] = True
        return out
    width = max(len(row.ids) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    segment = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row.ids)
        ids[i, :n] = torch.tensor(row.ids)
        positions[i, :n] = torch.tensor(row.positions)
        segment[i, :n] = torch.tensor(row.segment)
    q, k = segment[:, :, None], segment[:, None, :]
    same = q == k
    if causal:  # a pair's prefix (segment 3j) is seen by its answers (3j+1, 3j+2), never by another pair's; no look-ahead
        allowed = (same | ((k % 3 == 0) & (k // 3 == q // 3))) & (q >= 0) & (k >= 0)
        allowed &= torch.ones(width, width, dtype=torch.bool).tril()[None]
    else:  # two sequences side by side, each bidirectional within itself
        allowed = same & (q >= 0)
    allowed |= torch.eye(width, dtype=torch.bool)[None]  # padding attends to itself: no row is all masked
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)[:, None]
    read = torch.tensor([row.chosen_at for row in rows] + [row.rejected_at for row in rows])
    return {"input_ids": ids, "position_ids": positions, "attention_mask_4d": mask, "tokens": (segment >= 0).long(), "read_index": read}


def _base(model):
    """The transformers model under DDP and peft wrappers (where its head modules are)."""
    model = getattr(model, "module", model)  # DistributedDataParallel
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def packed_forward(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(rewards [2B]: chosen then rejected, final hidden states [B, L, H]) of a packed batch. The forward goes
    through the model itself (DDP and peft wrappers included), which returns the final states; then a causal LM's
    head reads the state at each answer's last token, and an encoder's pooler and classifier each sequence's [CLS]."""
    base = _base(model)
    dtype = next(base.parameters()).dtype
    kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask_4d"].to(dtype=dtype),
              "position_ids": batch["position_ids"], "output_hidden_states": True}
    causal = is_causal(base)
    if not causal:
        kwargs["token_type_ids"] = torch.zeros_like(batch["input_ids"])
    else:
        kwargs["use_cache"] = False
    hidden = model(**kwargs).hidden_states[-1]
    index = batch["read_index"].to(hidden.device)
    rows = torch.zeros_like(index) if batch.get("flat") else torch.arange(hidden.shape[0], device=hidden.device).repeat(2)
    read = hidden[rows, index]  # [2B, H]
    if causal:
        rewards = base.score(read)[:, 0]
    else:  # BertForSequenceClassification's head: pooler (dense + tanh on [CLS]), dropout, classifier
        pooler = getattr(base, base.base_model_prefix).pooler
        rewards = base.classifier(base.dropout(pooler.activation(pooler.dense(read))))[:, 0]
    return rewards, hidden


def unpacked_states(hidden: torch.Tensor, rows: Sequence[Packed]) -> torch.Tensor:
    """The packed states laid out as the unpacked batch's would be: [2B, Lmax, H], chosen sequences then rejected
    ones, each token of each sequence at its own position (zeros past a sequence's end). Equal, token by token, to
    the final hidden states of the unpacked forward (for causal models)."""
    lengths = [row.chosen_len for row in rows] + [row.rejected_len for row in rows]
    width = max(lengths)
    index = torch.zeros((2 * len(rows), width), dtype=torch.long)
    source = torch.zeros((2 * len(rows), width), dtype=torch.long)
    valid = torch.zeros((2 * len(rows), width), dtype=torch.bool)
    for j, row in enumerate(rows):
        for side, at in ((1, j), (2, j + len(rows))):
            n = lengths[at]
            index[at, :n] = torch.tensor([row.index(side, t) for t in range(n)])
            source[at] = j
            valid[at, :n] = True
    index, source, valid = index.to(hidden.device), source.to(hidden.device), valid.to(hidden.device)
    return hidden[source, index] * valid[..., None]
