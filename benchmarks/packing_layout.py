"""Which packed layout runs fastest: one forward + backward of a Bradley-Terry batch on SmolLM2-135M (full model),
the same pairs in three layouts:

  unpacked   TRL's layout: chosen and rejected sequences right-padded in one [2B, L] batch (the peer)
  per-row    shared-prompt rows, each pair one row, padded to the longest row, a [B, 1, L, L] mask (rewardlab's)
  flat       the same rows concatenated into one padding-free [1, T] row with a block-diagonal [1, 1, T, T] mask

on math-answers (short prompts) and long-prompts (about 400-token chats), batches of 8 pairs drawn in length order
as the training sampler groups them. Prints milliseconds per batch (median of --repeats) and the ratios; writes
benchmarks/results/packing_layout.json. All three give the same rewards (tests/learners/test_packing.py).

Run:  OMP_NUM_THREADS=2 python benchmarks/packing_layout.py            (~3 minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

RESULTS = Path(__file__).parent / "results" / "packing_layout.json"


def main() -> None:
    from rewardlab import backbones
    from rewardlab.data import TextDataConfig, load_preferences
    from rewardlab.models.packing import collate, pack, packed_forward
    from rewardlab.models.scalar_head import build_scalar_rm
    from rewardlab.rewards.text import encode

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    torch.manual_seed(0)
    tokenizer = backbones.load_tokenizer(backbones.SMOLLM2)
    model = build_scalar_rm(backbones.SMOLLM2, tokenizer).eval()  # eval: no dropout, the same work every repeat
    pad = tokenizer.pad_token_id
    results: dict = {"threads": torch.get_num_threads(), "datasets": {}}
    for name, max_length in (("math-answers", 96), ("long-prompts", 512)):
        pairs = load_preferences(TextDataConfig(name=name, shifted=False)).train_pairs[: 8 * args.batches]
        seqs = [(encode(tokenizer, p["prompt"], p["chosen"], max_length, "chat")[0], encode(tokenizer, p["prompt"], p["rejected"], max_length, "chat")[0])
                for p in pairs]
        seqs.sort(key=lambda cr: max(map(len, cr)))
        batches = [seqs[i : i + 8] for i in range(0, len(seqs), 8)]

        def unpacked(batch):
            all_seqs = [c for c, _ in batch] + [r for _, r in batch]
            width = max(map(len, all_seqs))
            ids = torch.full((len(all_seqs), width), pad)
            mask = torch.zeros_like(ids)
            for i, s in enumerate(all_seqs):
                ids[i, : len(s)], mask[i, : len(s)] = torch.tensor(s), 1
            return model(input_ids=ids, attention_mask=mask).logits[:, 0]

        def packed(batch, flat):
            rows = [pack(c, r, pad_id=pad) for c, r in batch]
            return packed_forward(model, collate(rows, pad, True, flat=flat))[0]

        layouts = {"unpacked": unpacked, "per-row": lambda b: packed(b, False), "flat": lambda b: packed(b, True)}
        row: dict = {}
        for layout, fn in layouts.items():
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                for batch in batches:
                    rewards = fn(batch)
                    loss = -F.logsigmoid(rewards[: len(batch)] - rewards[len(batch):]).mean()
                    loss.backward()
                    model.zero_grad(set_to_none=True)
                times.append((time.perf_counter() - start) / len(batches))
            row[layout] = round(1000 * statistics.median(times), 1)
            print(f"{name:13s} {layout:9s} {row[layout]:8.1f} ms / batch of 8 pairs", flush=True)
        row["per-row_speedup_over_unpacked"] = round(row["unpacked"] / row["per-row"], 2)
        row["flat_speedup_over_unpacked"] = round(row["unpacked"] / row["flat"], 2)
        results["datasets"][name] = row
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results["datasets"], indent=2))


if __name__ == "__main__":
    main()
