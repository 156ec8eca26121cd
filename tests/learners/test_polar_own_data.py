"""The README's own-data POLAR path, exactly as written: fine-tuning on a reference-pairs JSONL file."""

from __future__ import annotations

import json

from rewardlab import cli, rewards


def test_polar_finetune_on_your_own_reference_pairs_as_the_readme_writes_it(workdir, capsys):
    rows = []
    for i, (a, b) in enumerate([(2, 3), (4, 1), (5, 5), (7, 2), (6, 3), (8, 1), (9, 4), (3, 3), (1, 6), (2, 7), (4, 4), (5, 2)]):
        rows.append({"prompt": f"What is {a} + {b}?", "reference": f"{a} + {b} = {a + b}.", "chosen": f"{a + b}.",
                     "rejected": f"{a + b + 1}.", "split": "test" if i >= 8 else "train"})
    (workdir / "my.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli.main(["data", "validate", "--card", "reference-pairs", "--file", "my.jsonl", "--config", "pairs"]) == 0
    # the README's command, with the no-pretraining ablation (the pretrained discriminator is another recipe's run)
    # and, for the suite's time, 16 of the policy pool's held-out triplets scored instead of all of them
    assert cli.main(["train", "recipes/polar_finetune.yaml", "--set", "model.init_from=null", "--set", "data.path=my.jsonl",
                     "--set", "data.card=reference-pairs", "--set", "pool.max_eval_triplets=16"]) == 0
    out = capsys.readouterr().out
    # a run on your own data is named after it, so the recipe's own models:/polar-finetune is not moved
    assert "models:/polar-finetune-my/latest now points to version 1" in out
    metrics = json.loads((workdir / "runs" / "polar-finetune-my" / "eval.json").read_text())
    assert metrics["train_rows"] == 8  # the file's own train rows
    assert metrics["preference_acc_with_reference"] * 4 == round(metrics["preference_acc_with_reference"] * 4)  # 4 test pairs
    reward = rewards.load("models:/polar-finetune-my/1")
    args = ([r["prompt"] for r in rows[8:]], [r["chosen"] for r in rows[8:]], [r["reference"] for r in rows[8:]])
    assert len(reward.score(*args)) == 4
