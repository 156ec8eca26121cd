"""Reward-model training throughput: rewardlab's Bradley-Terry learner vs plain TRL RewardTrainer.

Same backbone (embedded SmolLM2-135M, full fine-tuning), same train pairs (math-answers), same batch size, one
epoch each, each in its own process (so peak memory is its own). Prints pairs/s, peak RSS and held-out pairwise
accuracy (TRL's own ``evaluate`` for both), and the throughput ratios. Writes benchmarks/results/rm_training.json.

Variants:
  rewardlab        rewardlab.learners.bradley_terry.make_trainer (pre-tokenized, length-grouped, no checkpointing)
  trl-defaults     what a TRL user writes: RewardTrainer on prompt/chosen/rejected messages, RewardConfig defaults
                   (gradient checkpointing on; bf16 off, since its default refuses to start on a CPU)
  trl-matched      the same, with gradient checkpointing and bf16 off, as rewardlab runs on CPU

Run:  python benchmarks/rm_training.py [--pairs 96] [--eval-pairs 96]      (~15 minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "rm_training.json"


def worker(variant: str, pairs: int, eval_pairs: int, batch_size: int, max_length: int) -> dict:
    import tempfile

    from datasets import Dataset

    from rewardlab import backbones, recipes
    from rewardlab.data import load_preferences
    from rewardlab.learners import bradley_terry

    config, _, _ = recipes.load(
        "quickstart",
        [f"data.max_train_pairs={pairs}", f"data.max_eval_pairs={eval_pairs}", "model.freeze_layers=0", "train.epochs=1",
         f"train.batch_size={batch_size}", f"model.max_length={max_length}", "train.save_steps=100000", "train.logging_steps=1000", "model.template=chat"],
    )
    data = load_preferences(config.data)
    tokenizer = backbones.load_tokenizer(config.model.backbone)
    out = tempfile.mkdtemp()
    config.output_dir = Path(out)
    if variant == "rewardlab":
        trainer = bradley_terry.make_trainer(config, data, tokenizer)
        test = bradley_terry.tokenize_pairs(data.test_pairs, tokenizer, max_length, "chat")
    else:
        from transformers import AutoModelForSequenceClassification, set_seed
        from trl import RewardConfig, RewardTrainer

        def as_messages(rows):
            return Dataset.from_list([
                {"prompt": [{"role": "user", "content": r["prompt"]}], "chosen": [{"role": "assistant", "content": r["chosen"]}],
                 "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])

        # On a CPU, RewardConfig's bf16=True default refuses to start, so "defaults" means bf16 off and the rest default.
        extra = {"bf16": False} if variant == "trl-defaults" else {"gradient_checkpointing": False, "bf16": False}
        args = RewardConfig(output_dir=out, per_device_train_batch_size=batch_size, num_train_epochs=1, max_length=max_length,
                            report_to="none", save_strategy="no", logging_steps=1000, seed=0, **extra)
        set_seed(0)  # same head initialisation as rewardlab's run
        model = AutoModelForSequenceClassification.from_pretrained(backbones.resolve(config.model.backbone), num_labels=1)
        trainer = RewardTrainer(model=model, args=args, train_dataset=as_messages(data.train_pairs), processing_class=tokenizer)
        test = as_messages(data.test_pairs)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    accuracy = trainer.evaluate(test)["eval_accuracy"]
    return {
        "variant": variant,
        "pairs": len(data.train_pairs),
        "train_seconds": seconds,
        "pairs_per_second": len(data.train_pairs) / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "heldout_pair_accuracy": accuracy,
        "gradient_checkpointing": trainer.args.gradient_checkpointing,
        "bf16": trainer.args.bf16,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=96)
    p.add_argument("--eval-pairs", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=96)
    p.add_argument("--variants", default="rewardlab,trl-matched,trl-defaults")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print("RESULT " + json.dumps(worker(a.worker, a.pairs, a.eval_pairs, a.batch_size, a.max_length)), flush=True)
        return
    results = {}
    for variant in a.variants.split(","):
        cmd = [sys.executable, __file__, "--worker", variant, "--pairs", str(a.pairs), "--eval-pairs", str(a.eval_pairs),
               "--batch-size", str(a.batch_size), "--max-length", str(a.max_length)]
        print(f"== {variant}", flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{variant} failed")
        results[variant] = json.loads(line[7:])
        r = results[variant]
        print(f"   {r['pairs_per_second']:.2f} pairs/s  peak RSS {r['peak_rss_mb']:.0f} MB  held-out acc {r['heldout_pair_accuracy']:.3f}", flush=True)
    ours = results.get("rewardlab")
    ratios = {f"rewardlab_vs_{k}": ours["pairs_per_second"] / v["pairs_per_second"] for k, v in results.items() if ours and k != "rewardlab"}
    print(f"\n{'variant':14s} {'pairs/s':>8s} {'peak MB':>8s} {'acc':>6s}")
    for k, r in results.items():
        print(f"{k:14s} {r['pairs_per_second']:8.2f} {r['peak_rss_mb']:8.0f} {r['heldout_pair_accuracy']:6.3f}")
    for k, v in ratios.items():
        print(f"throughput ratio {k}: {v:.2f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"results": results, "ratios": ratios, "settings": vars(a)}, indent=2))
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
