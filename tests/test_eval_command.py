"""`rewardlab eval` on your own data: RewardBench 2's best-of-N layout from a dataset folder (its scoring rule on
the reward's own scores, Ties included), the MLflow evaluation run, bad input refused before anything is written,
and the README's path end to end: train a LoRA Bradley-Terry RM on UltraFeedback-layout data, evaluate it, serve
it, evaluate it through the server, browse it."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest

from rewardlab import cli, rewards, tracking
from tests.rewards.test_report import rewardbench2_scoring, rewardbench2_ties

USER = lambda text: {"role": "user", "content": text}  # noqa: E731
BOT = lambda text: {"role": "assistant", "content": text}  # noqa: E731


def write_parquet(folder, split: str, rows: list[dict]) -> None:
    from datasets import Dataset

    (folder / "data").mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows).to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))


def rewardbench2_layout() -> list[dict]:
    """Rows with RewardBench 2's fields: id, prompt, chosen [str], rejected [str], num_correct, num_rejected,
    total_completions, models, subset; its Ties subset with ids ref:K / tied:K and several correct answers."""
    rows = []
    for i in range(12):
        a, b = i + 2, i + 5
        rows.append({"id": str(i), "prompt": f"What is {a} + {b}?", "chosen": [f"{a} + {b} = {a + b}."],
                     "rejected": [f"{a + b + d}." for d in (1, 2, -3)], "num_correct": 1, "num_rejected": 3,
                     "total_completions": 4, "models": ["m"] * 4, "subset": ["Math", "Factuality", "Focus"][i % 3]})
    for k in range(4):
        for kind, correct in (("ref", [f"Any prime, e.g. {k + 2}."]), ("tied", [f"{p} is prime." for p in (2, 3, 5)])):
            rows.append({"id": f"{kind}:{k}", "prompt": f"Name a prime number ({k}).", "chosen": correct,
                         "rejected": [f"{4 + 2 * j} is prime." for j in range(2)], "num_correct": len(correct), "num_rejected": 2,
                         "total_completions": len(correct) + 2, "models": ["m"] * (len(correct) + 2), "subset": "Ties"})
    return rows


def test_best_of_n_on_rewardbench2s_layout_matches_its_rule_and_logs_an_evaluation_run(workdir, reward_folder, capsys):
    rows = rewardbench2_layout()
    write_parquet(workdir / "rb2", "test", rows)
    out = workdir / "rb2.json"
    assert cli.main(["eval", str(reward_folder), "--data", f"hf:{workdir / 'rb2'}", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    reward = rewards.load(reward_folder)
    texts = {(r["prompt"], t) for r in rows for t in r["chosen"] + r["rejected"]}
    scored = dict(zip(texts, reward.score([p for p, _ in texts], [t for _, t in texts])))
    others = [r for r in rows if r["subset"] != "Ties"]
    expected = rewardbench2_scoring([{**r, "chosen": [(r["prompt"], t) for t in r["chosen"]],
                                      "rejected": [(r["prompt"], t) for t in r["rejected"]]} for r in others], scored)
    assert report["format"] == "best-of-n"  # detected: chosen and rejected are lists
    assert {k: v["accuracy"] for k, v in report["subsets"].items() if k != "Ties"} == pytest.approx(expected, abs=1e-9)
    ties = [{**r, "chosen": [(r["prompt"], t) for t in r["chosen"]], "rejected": [(r["prompt"], t) for t in r["rejected"]]}
            for r in rows if r["subset"] == "Ties"]
    assert report["subsets"]["Ties"]["accuracy"] == pytest.approx(rewardbench2_ties(ties, scored), abs=1e-9)
    n_pairs = sum(len(r["chosen"]) * len(r["rejected"]) for r in rows)
    assert report["n_pairs"] == n_pairs and report["n_rows"] == len(rows)
    for key in ("pairwise_accuracy", "best_of_n_accuracy", "ece", "brier", "length_spearman"):
        assert isinstance(report[key], float)
    printed = capsys.readouterr().out
    assert "best-of-N accuracy" in printed and "Ties rule" in printed
    run = tracking.get_run_data(report["eval_run_id"])
    assert run.data.tags["rewardlab.kind"] == "evaluation" and run.data.tags["evaluated_model"] == str(reward_folder)
    assert run.data.metrics["best_of_n_accuracy"] == pytest.approx(report["best_of_n_accuracy"])
    assert run.data.metrics["subset/Math/accuracy"] == pytest.approx(report["subsets"]["Math"]["accuracy"])
    assert mlflow.get_experiment(run.info.experiment_id).name == tracking.EVAL_EXPERIMENT  # a bare folder has no training run
    artifacts = set(tracking.list_artifacts(run.info.run_id, "eval")) | set(tracking.list_artifacts(run.info.run_id, "plots"))
    assert {"eval/subsets.json", "eval/eval.json", "plots/reliability.png", "plots/margin_histogram.png"} <= artifacts
    contexts = [tag.value for d in run.inputs.dataset_inputs for tag in d.tags if tag.key == "mlflow.data.context"]
    assert contexts == ["eval"] and run.inputs.dataset_inputs[0].dataset.name == "rb2"


def _bad_cases(tmp):
    (tmp / "missing.jsonl").write_text(json.dumps({"prompt": "q", "chosen": "a"}) + "\n")
    (tmp / "lists.jsonl").write_text(json.dumps({"prompt": "q", "chosen": ["a", "b"], "rejected": "c"}) + "\n")
    (tmp / "empty.jsonl").write_text("")
    write_parquet(tmp / "folder", "test", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    return [
        (["--data", str(tmp / "missing.jsonl")], ["missing.jsonl", "row 1", "field 'rejected' is missing"]),
        (["--data", str(tmp / "lists.jsonl"), "--format", "pairs"], ["lists.jsonl", "row 1", "field 'chosen'", "--format best-of-n"]),
        (["--data", str(tmp / "empty.jsonl")], ["empty.jsonl", "no rows to evaluate"]),
        (["--data", f"hf:{tmp / 'folder'}", "--split", "validation"], ["folder", "no split 'validation'", "its splits: test"]),
        (["--data", str(tmp / "missing.jsonl"), "--subset-column", "topic"], ["missing.jsonl", "row 1", "'topic' is not a field"]),
        (["--data", str(tmp / "missing.jsonl"), "--column", "answer=x"], ["--column", "unknown field answer"]),
    ]


def test_bad_input_names_source_row_and_field_and_writes_nothing(workdir, reward_folder, capsys):
    for argv, expected in _bad_cases(workdir):
        out = workdir / "never.json"
        assert cli.main(["eval", str(reward_folder), *argv, "--json", str(out)]) == 2, argv
        err = capsys.readouterr().err
        assert all(text in err for text in expected), (argv, err)
        assert "Traceback" not in err and not out.exists()
    mlflow.set_tracking_uri(tracking.resolve_uri())
    assert mlflow.search_runs(search_all_experiments=True).empty  # no evaluation run was opened either


def ultrafeedback_rows(n: int, offset: int = 0) -> list[dict]:
    """HuggingFaceH4/ultrafeedback_binarized's layout: a prompt string, message lists repeating it, scores."""
    out = []
    for i in range(offset, offset + n):
        q = f"What is {i % 9 + 1} times {i % 7 + 2}?"
        right, wrong = (i % 9 + 1) * (i % 7 + 2), (i % 9 + 1) * (i % 7 + 2) + 1 + i % 3
        out.append({"prompt": q, "prompt_id": str(i), "chosen": [USER(q), BOT(f"It is {right}.")],
                    "rejected": [USER(q), BOT(f"I think it is {wrong}, roughly.")], "messages": [USER(q), BOT(f"It is {right}.")],
                    "score_chosen": 8.0, "score_rejected": 4.0, "subset": "times" if i % 2 else "product"})
    return out


def test_your_own_data_end_to_end_train_lora_evaluate_serve_browse(workdir, capsys, serve_reward):
    data = workdir / "uf"
    write_parquet(data, "train_prefs", ultrafeedback_rows(48))
    write_parquet(data, "test_prefs", ultrafeedback_rows(16, offset=100))
    # the README's commands, with the small model and budget a test affords
    assert cli.main(["train", "quickstart", "--set", f"data.name=hf:{data}", "--set", "data.split=train_prefs", "--set", "name=my-rm",
                     "--set", "model.backbone=embedded:minilm-l6", "--set", "model.freeze_layers=4", "--set", "model.max_length=64",
                     "--set", "model.lora={r: 4, alpha: 8, dropout: 0.0}", "--set", "train.batch_size=8",
                     "--set", "train.learning_rate=1.0e-3", "--set", "train.warmup_ratio=0", "--set", "train.epochs=2"]) == 0
    train_run = json.loads((workdir / "runs" / "my-rm" / "eval.json").read_text())["run_id"]
    out = workdir / "eval.json"
    assert cli.main(["eval", "models:/my-rm/1", "--data", f"hf:{data}", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["format"] == "pairs" and report["n_pairs"] == 16
    assert set(report["subsets"]) == {"times", "product"} and sum(s["count"] for s in report["subsets"].values()) == 16
    assert report["best_of_n_accuracy"] >= report["pairwise_accuracy"] - 1e-9  # one rejected answer: ties go to chosen
    run = tracking.get_run_data(report["eval_run_id"])
    assert run.data.tags["evaluated_run_id"] == train_run  # linked to the model's training run ...
    assert run.info.experiment_id == tracking.get_run_data(train_run).info.experiment_id
    logged = mlflow.get_logged_model(run.data.tags["evaluated_model_id"])  # ... and to its logged model, which lists the metrics
    assert logged.source_run_id == train_run
    assert {m.key: m.value for m in logged.metrics}["pairwise_accuracy"] == pytest.approx(report["pairwise_accuracy"])
    capsys.readouterr()
    with serve_reward(rewards.load("models:/my-rm/1")) as url:
        served = workdir / "served.json"
        assert cli.main(["eval", url, "--data", f"hf:{data}", "--json", str(served), "--no-mlflow"]) == 0
    through_server = json.loads(served.read_text())
    for key in ("pairwise_accuracy", "ece", "brier", "length_spearman", "margin_mean"):
        assert through_server[key] == pytest.approx(report[key], abs=1e-5), key
    assert "eval_run_id" not in through_server
    assert cli.main(["models", "list"]) == 0
    assert "my-rm" in capsys.readouterr().out
    evaluations = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.evaluated_run_id = '{train_run}'")
    assert list(evaluations["run_id"]) == [report["eval_run_id"]]
    np.testing.assert_allclose(evaluations["metrics.pairwise_accuracy"], report["pairwise_accuracy"])
