"""POLAR three-way comparison on one eval set: Bradley-Terry baseline, POLAR without pretraining, POLAR.

All three are trained on the same math-answers train pairs and scored on the same held-out pairs:

  bradley_terry        recipes/quickstart.yaml: r(prompt, response), no reference
  polar_no_pretrain    recipes/polar_finetune.yaml with model.init_from=null (the paper's ablation)
  polar                recipes/polar_pretrain.yaml, then recipes/polar_finetune.yaml from that run's model

The POLAR arms read a verified correct reference for each pair (see data.math_answers.with_references); the
BT arm reads none. Each seed changes the training seed of every arm (head init, data order, triplet draws).
Prints accuracy per arm as mean +- std over seeds, and POLAR's held-out discrimination accuracy; writes
benchmarks/results/polar.json. Every run lands in a temporary SQLite MLflow store.

Run:  python benchmarks/polar.py --seeds 0 1 2        (~25 minutes a seed on 2 CPU cores)
      python benchmarks/polar.py --seeds 0 --set train.max_steps=20      (overrides go to every arm)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "polar.json"


def train(recipe: str, overrides: list[str]) -> dict:
    from rewardlab import learners, recipes

    config, text, _ = recipes.load(recipe, overrides)
    start = time.perf_counter()
    result = learners.get(config.learner).run(config, recipe_text=text)
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", action="append", default=[], help="recipe override applied to every arm (repeatable)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rewardlab-polar-bench-"))
    os.chdir(work)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work}/mlflow.db"
    rows = []
    for seed in args.seeds:
        common = [f"seed={seed}", *args.set]
        bt = train("quickstart", [*common, f"name=bench-bt-s{seed}"])
        pre = train("polar_pretrain", [*common, f"name=bench-polar-pretrain-s{seed}"])
        tuned = train("polar_finetune", [*common, f"name=bench-polar-s{seed}", f"model.init_from={pre['model_uri']}"])
        fresh = train("polar_finetune", [*common, f"name=bench-polar-nopre-s{seed}", "model.init_from=null"])
        row = {
            "seed": seed,
            "bradley_terry": bt["metrics"]["pair_accuracy"],
            "polar_no_pretrain": fresh["metrics"]["preference_acc_with_reference"],
            "polar": tuned["metrics"]["preference_acc_with_reference"],
            "polar_no_pretrain_reference_not_chosen": fresh["metrics"]["preference_acc_reference_not_chosen"],
            "polar_reference_not_chosen": tuned["metrics"]["preference_acc_reference_not_chosen"],
            "polar_pretrain_zero_shot": pre["metrics"]["preference_acc_with_reference"],
            "discrimination_heldout_prompts": pre["metrics"]["discrimination_acc_heldout_prompts"],
            "discrimination_heldout_policies": pre["metrics"]["discrimination_acc_heldout_policies"],
            "seconds": {"bradley_terry": bt["seconds"], "polar_pretrain": pre["seconds"], "polar_finetune": tuned["seconds"],
                        "polar_no_pretrain": fresh["seconds"]},
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    def stat(key: str) -> dict:
        values = [r[key] for r in rows]
        return {"mean": round(statistics.mean(values), 4), "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0}

    keys = ["bradley_terry", "polar_no_pretrain", "polar", "polar_no_pretrain_reference_not_chosen", "polar_reference_not_chosen",
            "polar_pretrain_zero_shot",
            "discrimination_heldout_prompts", "discrimination_heldout_policies"]
    summary = {k: stat(k) for k in keys}
    print(f"\nheld-out math-answers pairs, {len(rows)} seed(s): pairwise accuracy, mean +- std")
    for k in keys:
        print(f"  {k:34s} {summary[k]['mean']:.3f} +- {summary[k]['std']:.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"seeds": args.seeds, "overrides": args.set, "runs": rows, "summary": summary}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
