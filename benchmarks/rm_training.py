"""Reward-model training throughput: rewardlab's Bradley-Terry learner, packed and unpacked, vs plain TRL.

Same backbone (embedded SmolLM2-135M, full fine-tuning), same train pairs, same batch size, one epoch each, each
(arm, seed) in its own process (so peak memory is its own). Per seed the arms run one after the other, so they
share the same neighbours on the machine. Prints pairs/s, tokens/s (the tokens of every chosen and rejected
sequence as the unpacked path has them: the same work for every arm), peak RSS and held-out pairwise accuracy
(TRL's own ``evaluate`` for every arm), per arm as mean +- std over seeds, and the throughput ratios paired by seed.
Writes the JSON after every run. ``--dataset`` is math-answers (short prompts) or long-prompts (multi-turn chats of
about 400 tokens, one-sentence answers).

Arms (learning rate, warmup, schedule, weight decay and seed are the quickstart recipe's in every arm but
trl-defaults):
  rewardlab-packed   train.packing=shared_prompt: each pair one row, the prompt computed once (exact; see
                     rewardlab/models/packing.py), rows length-grouped
  rewardlab          train.packing=none: TRL's padded chosen + rejected batch, pre-tokenized, length-grouped
  trl-matched        what a TRL user writes (RewardTrainer on prompt/chosen/rejected messages) with rewardlab's
                     settings: learning rate 3e-5, 10% warmup, linear decay, gradient checkpointing and bf16 off.
                     TRL refuses train_sampling_strategy="group_by_length" for pairs ("Can only automatically
                     infer lengths for datasets whose items are dictionaries with an 'input_ids' key"), so its
                     batches are uniform
  trl-defaults       RewardConfig's defaults (learning rate 1e-4, no warmup, gradient checkpointing on; bf16 off,
                     since its default refuses to start on a CPU)
  rewardlab-random   (not run by default) rewardlab with train.group_by_length=false: what length grouping buys

Run:  python benchmarks/rm_training.py --seeds 0 1 --pairs 192 --out benchmarks/results/rm_training_math.json
      python benchmarks/rm_training.py --dataset long-prompts --max-length 512 --pairs 64 --eval-pairs 64 --seeds 0 1 \
          --out benchmarks/results/rm_training_long.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "rm_training.json"


ARMS = ("rewardlab-packed", "rewardlab", "trl-matched", "trl-defaults", "rewardlab-random")
DEFAULT_ARMS = ARMS[:4]


def worker(arm: str, seed: int, pairs: int, eval_pairs: int, batch_size: int, max_length: int, dataset: str = "math-answers") -> dict:
    import tempfile

    from datasets import Dataset

    from rewardlab import backbones, recipes
    from rewardlab.data import load_preferences
    from rewardlab.learners import bradley_terry

    config, _, _ = recipes.load(
        "quickstart",
        [f"data.name={dataset}", f"data.max_train_pairs={pairs}", f"data.max_eval_pairs={eval_pairs}", "data.shifted=false",
         "model.freeze_layers=0", f"train.packing={'shared_prompt' if arm == 'rewardlab-packed' else 'none'}",
         "train.epochs=1", f"train.batch_size={batch_size}", f"model.max_length={max_length}", "train.save_steps=100000",
         "train.logging_steps=1000", "model.template=chat", f"seed={seed}",
         f"train.group_by_length={'false' if arm == 'rewardlab-random' else 'true'}"],
    )
    data = load_preferences(config.data)
    tokenizer = backbones.load_tokenizer(config.model.backbone)
    out = tempfile.mkdtemp()
    config.output_dir = Path(out)
    t = config.train
    if arm.startswith("rewardlab"):
        trainer = bradley_terry.make_trainer(config, data, tokenizer)
        test = bradley_terry.tokenize_pairs(data.test_pairs, tokenizer, max_length, "chat")
    else:
        from transformers import AutoModelForSequenceClassification, set_seed
        from trl import RewardConfig, RewardTrainer

        def as_messages(rows):
            def chat(value, role):
                return value if isinstance(value, list) else [{"role": role, "content": value}]
            return Dataset.from_list([{"prompt": chat(r["prompt"], "user"), "chosen": chat(r["chosen"], "assistant"),
                                       "rejected": chat(r["rejected"], "assistant")} for r in rows])

        if arm == "trl-defaults":  # on a CPU, RewardConfig's bf16=True default refuses to start; the rest is default
            extra = {"bf16": False}
        else:  # the recipe's optimisation settings, as rewardlab's learner passes them to RewardConfig
            extra = {"gradient_checkpointing": False, "bf16": False, "learning_rate": t.learning_rate, "warmup_steps": t.warmup_ratio,
                     "lr_scheduler_type": t.lr_scheduler, "weight_decay": t.weight_decay, "data_seed": seed}
        args = RewardConfig(output_dir=out, per_device_train_batch_size=batch_size, num_train_epochs=1, max_length=max_length,
                            report_to="none", save_strategy="no", logging_steps=1000, seed=seed, **extra)
        set_seed(seed)  # the head initialised from the same seed as rewardlab's run
        model = AutoModelForSequenceClassification.from_pretrained(backbones.resolve(config.model.backbone), num_labels=1)
        trainer = RewardTrainer(model=model, args=args, train_dataset=as_messages(data.train_pairs), processing_class=tokenizer)
        test = as_messages(data.test_pairs)
    # the work, the same for every arm: tokens of every chosen and rejected sequence as the unpacked path has them
    # (a packed arm computes fewer: the prompt once per pair)
    work = bradley_terry.tokenize_pairs(data.train_pairs, tokenizer, max_length, "chat")
    work_tokens = sum(len(c) + len(r) for c, r in zip(work["chosen_ids"], work["rejected_ids"]))
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    accuracy = trainer.evaluate(test)["eval_accuracy"]
    import shutil

    shutil.rmtree(out, ignore_errors=True)  # the run's output folder: gigabytes a run, nothing the benchmark reads
    return {
        "arm": arm,
        "seed": seed,
        "pairs": len(data.train_pairs),
        "train_seconds": seconds,
        "pairs_per_second": len(data.train_pairs) / seconds,
        "tokens_per_second": work_tokens / seconds,
        "dataset": dataset,
        "packing": config.train.packing if arm.startswith("rewardlab") else "none",
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "heldout_pair_accuracy": accuracy,
        "learning_rate": trainer.args.learning_rate,
        "warmup_steps": trainer.args.warmup_steps,
        "gradient_checkpointing": trainer.args.gradient_checkpointing,
        "bf16": trainer.args.bf16,
        "sampling": trainer.args.train_sampling_strategy,
        "load_average_at_start": os.getloadavg()[0],
    }


def summarize(runs: list[dict], arms: list[str]) -> dict:
    import statistics

    def ms(values):
        return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}

    by = {(r["arm"], r["seed"]): r for r in runs}
    keys = ("pairs_per_second", "tokens_per_second", "heldout_pair_accuracy", "peak_rss_mb")
    summary = {arm: {k: ms([r[k] for r in runs if r["arm"] == arm and k in r]) for k in keys}
               for arm in arms if any(r["arm"] == arm for r in runs)}
    ratios = {}
    for lead in ("rewardlab-packed", "rewardlab"):  # lead / arm, paired by seed (the same neighbours on the machine)
        for arm in arms:
            paired = [by[(lead, s)]["pairs_per_second"] / by[(arm, s)]["pairs_per_second"] for (a, s) in by if a == arm and (lead, s) in by]
            if arm != lead and paired and not (lead == "rewardlab" and arm == "rewardlab-packed"):
                ratios[f"{lead}_vs_{arm}"] = ms(paired)
    return {"summary": summary, "ratios": ratios}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=256)
    p.add_argument("--eval-pairs", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=96)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=list(DEFAULT_ARMS), choices=ARMS)
    p.add_argument("--dataset", default="math-answers", choices=["math-answers", "long-prompts"])
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-seed", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print("RESULT " + json.dumps(worker(a.worker, a.worker_seed, a.pairs, a.eval_pairs, a.batch_size, a.max_length, a.dataset)),
              flush=True)
        return
    runs = []
    settings = {k: v for k, v in vars(a).items() if not k.startswith("worker")}
    for seed in a.seeds:
        for arm in a.arms:
            cmd = [sys.executable, __file__, "--worker", arm, "--worker-seed", str(seed), "--pairs", str(a.pairs), "--eval-pairs",
                   str(a.eval_pairs), "--batch-size", str(a.batch_size), "--max-length", str(a.max_length), "--dataset", a.dataset]
            print(f"== {arm} seed {seed}", flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                print(proc.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{arm} failed")
            r = json.loads(line[7:])
            runs.append(r)
            print(f"   {r['pairs_per_second']:.2f} pairs/s  {r['tokens_per_second']:.0f} tokens/s  peak RSS {r['peak_rss_mb']:.0f} MB  held-out acc {r['heldout_pair_accuracy']:.3f}", flush=True)
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)  # after every run: a stopped sweep keeps what it finished
            Path(a.out).write_text(json.dumps({"runs": runs, **summarize(runs, a.arms), "settings": settings}, indent=2))
    result = summarize(runs, a.arms)
    print(f"\n{a.dataset}: {'arm':18s} {'pairs/s':>14s} {'tokens/s':>9s} {'peak MB':>8s} {'held-out acc':>14s}   "
          f"({len(a.seeds)} seed(s), mean +- std)")
    for arm, m in result["summary"].items():
        print(f"{arm:18s} {m['pairs_per_second']['mean']:7.2f} +- {m['pairs_per_second']['std']:4.2f} {m['tokens_per_second']['mean']:9.0f} "
              f"{m['peak_rss_mb']['mean']:8.0f} "
              f"{m['heldout_pair_accuracy']['mean']:7.3f} +- {m['heldout_pair_accuracy']['std']:.3f}")
    for k, v in result["ratios"].items():
        print(f"throughput ratio {k}: {v['mean']:.2f}x +- {v['std']:.2f} (paired by seed)")
    print(f"written {a.out}")


if __name__ == "__main__":
    main()
