"""Bradley-Terry on TRL: real steps lower the loss; the reward loads back (folder, runs:/, models:/) with equal
scores; the MLflow run holds everything; a crashed run is FAILED and --resume finishes it in the same run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from transformers import TrainerCallback

from rewardlab import learners, recipes, rewards, tracking
from rewardlab.data import load_preferences
from rewardlab.learners import bradley_terry
from rewardlab.tracking import ResumeError

# MiniLM is the fast embedded backbone; the SmolLM2 path is covered by test_smollm2_backbone below.
SMALL = [
    "model.backbone=embedded:minilm-l6",
    "model.freeze_layers=6",  # MiniLM has 6 blocks (the recipe's 20 is for SmolLM2's 30): all frozen, the head trains
    "model.max_length=64",
    "data.max_train_pairs=32",
    "data.max_eval_pairs=24",
    "data.max_eval_samples=48",
    "train.batch_size=8",
    "train.learning_rate=1.0e-4",
    "train.warmup_ratio=0",
    "train.logging_steps=1",
    "train.eval_batch_size=16",
    "name=bt-test",
]


@pytest.fixture(scope="module")
def trained(module_workdir):
    config, text, _ = recipes.load("quickstart", [*SMALL, "train.epochs=4", "model.freeze_layers=0"])
    result = learners.train(config, recipe_text=text)
    # held-out samples, for score comparisons below (the eval capped pairs only)
    result["samples"] = load_preferences(config.data).test_samples[:12]
    result["config"] = config
    return result


def test_training_steps_lower_the_loss(trained):
    losses = [h["loss"] for h in trained["log_history"] if "loss" in h]
    assert len(losses) == 16  # 32 pairs / batch 8 x 4 epochs, logged every step
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first - 0.1, (first, last)
    train_acc = [h["accuracy"] for h in trained["log_history"] if "accuracy" in h]
    assert sum(train_acc[-4:]) / 4 > 0.75  # the train pairs are being ranked right


def test_eval_metrics_are_the_rewards_own_on_the_held_out_rows_beside_length(trained):
    """Recomputed here from the loaded reward's scores and the rows' lengths, with sklearn's AUROC."""
    from sklearn.metrics import roc_auc_score

    m, data = trained["metrics"], load_preferences(trained["config"].data)
    reward = rewards.load(trained["model_uri"])
    pairs, samples = data.test_pairs, data.test_samples
    assert m["n_pairs"] == len(pairs) == 24 and m["n_samples"] == len(samples) == 48

    def ranked(good, bad):
        good, bad = np.asarray(good, float), np.asarray(bad, float)
        return float(np.mean((good > bad) + 0.5 * (good == bad)))

    chosen = reward.score([p["prompt"] for p in pairs], [p["chosen"] for p in pairs])
    rejected = reward.score([p["prompt"] for p in pairs], [p["rejected"] for p in pairs])
    assert m["pair_accuracy"] == pytest.approx(ranked(chosen, rejected), abs=1e-9)
    longer = ranked([len(p["chosen"]) for p in pairs], [len(p["rejected"]) for p in pairs])
    assert m["length_longer_pair_accuracy"] == pytest.approx(longer) and m["length_shorter_pair_accuracy"] == pytest.approx(1 - longer)
    labels = [int(s["correct"]) for s in samples]
    scores = reward.score([s["prompt"] for s in samples], [s["response"] for s in samples])
    assert m["auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    assert m["length_longer_auroc"] == pytest.approx(roc_auc_score(labels, [len(s["response"]) for s in samples]))
    assert m["margin_over_length"] == pytest.approx(m["pair_accuracy"] - max(m["length_longer_pair_accuracy"], m["length_shorter_pair_accuracy"]))


def test_the_rewards_statistics_on_the_held_out_answers_are_stored_for_normalisation(trained):
    """reward.json's normalization (what `serve --normalize` and rlhf's normalize apply) is the mean, std and
    quantiles of the reward's own scores on the test split's pairs and samples, and MLflow holds them."""
    data = load_preferences(trained["config"].data)
    reward = rewards.load(trained["model_uri"])
    scores = np.concatenate([
        reward.score([p["prompt"] for p in data.test_pairs], [p["chosen"] for p in data.test_pairs]),
        reward.score([p["prompt"] for p in data.test_pairs], [p["rejected"] for p in data.test_pairs]),
        reward.score([s["prompt"] for s in data.test_samples], [s["response"] for s in data.test_samples])])
    stats = reward.normalization
    assert stats["n"] == len(scores) == 2 * 24 + 48
    assert stats["mean"] == pytest.approx(scores.mean(), abs=1e-5) and stats["std"] == pytest.approx(scores.std(), abs=1e-5)
    assert stats["q05"] == pytest.approx(np.quantile(scores, 0.05), abs=1e-5) and stats["median"] == pytest.approx(np.median(scores), abs=1e-5)
    logged = tracking.get_run_data(trained["run_id"]).data.metrics
    assert logged["eval/reward_mean"] == pytest.approx(stats["mean"]) and logged["eval/reward_std"] == pytest.approx(stats["std"])


def test_reward_loads_back_with_equal_scores(trained):
    prompts = [s["prompt"] for s in trained["samples"]]
    responses = [s["response"] for s in trained["samples"]]
    local = rewards.load(f"{trained['output_dir']}/reward")
    assert isinstance(local, rewards.TextReward) and isinstance(local, rewards.ScalarTextReward)
    expected = local.score(prompts, responses)
    assert len(set(round(x, 4) for x in expected)) > 1  # not a constant
    assert trained["model_uri"] == "models:/bt-test/1"
    assert rewards.load("models:/bt-test/1").score(prompts, responses) == expected
    assert rewards.load(f"runs:/{trained['run_id']}/model").score(prompts, responses) == expected
    # chats as message lists score the same as the strings they hold
    as_messages = [[{"role": "assistant", "content": r}] for r in responses]
    assert local.score([[{"role": "user", "content": p}] for p in prompts], as_messages) == expected


def test_mlflow_pyfunc_predicts_the_same_scores(trained):
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(tracking.resolve_uri())
    frame = pd.DataFrame({"prompt": [s["prompt"] for s in trained["samples"]], "response": [s["response"] for s in trained["samples"]]})
    pyfunc = mlflow.pyfunc.load_model("models:/bt-test/1")
    expected = rewards.load(f"{trained['output_dir']}/reward").score(frame["prompt"].tolist(), frame["response"].tolist())
    assert list(pyfunc.predict(frame)) == pytest.approx(expected, abs=1e-6)


def test_mlflow_run_holds_params_metrics_plots_dataset_and_recipe(trained):
    run = tracking.get_run_data(trained["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["model.backbone"] == "embedded:minilm-l6"
    assert run.data.params["train.learning_rate"] == "0.0001"
    assert "eval/pair_accuracy" in run.data.metrics and "eval/length_longer_pair_accuracy" in run.data.metrics
    assert len(tracking.metric_history(trained["run_id"], "loss")) == 16
    plots = tracking.list_artifacts(trained["run_id"], "plots")
    assert {"plots/roc_curve.png", "plots/reward_histogram.png", "plots/learning_curves.png"} <= set(plots)
    top = tracking.list_artifacts(trained["run_id"])
    assert "recipe.yaml" in top and "data_cards" in top
    assert {"math-answers-train-pairs", "math-answers-test-pairs", "math-answers-test-samples", "math-answers-shifted-pairs",
            "math-answers-shifted-samples"} <= set(tracking.dataset_inputs(trained["run_id"]))
    assert "plots/roc_curve_shifted.png" in plots and "eval/shifted_auroc" in run.data.metrics


def test_eval_scores_the_shifted_split_beside_the_test_split(trained):
    """The shifted figures are the reward's own on the shifted rows (the test questions answered under another
    persona and temperature), not a copy of the test split's."""
    from rewardlab.rewards.evaluate import evaluate_text_reward

    config, _, _ = recipes.load("quickstart", SMALL)
    data = load_preferences(config.data)
    assert data.shifted_pairs and {s["qid"] for s in data.shifted_samples} <= {s["qid"] for s in load_preferences(
        config.data.model_copy(update={"max_eval_samples": None})).test_samples}
    reward = rewards.load(f"{trained['output_dir']}/reward")
    again = evaluate_text_reward(reward, data.shifted_pairs, data.shifted_samples).metrics
    m = trained["metrics"]
    assert m["shifted_pair_accuracy"] == pytest.approx(again["pair_accuracy"]) and m["shifted_auroc"] == pytest.approx(again["auroc"])
    assert m["shifted_n_pairs"] == len(data.shifted_pairs) == 24 and m["shifted_n_samples"] == 48
    assert (m["shifted_auroc"], m["shifted_length_shorter_auroc"]) != (m["auroc"], m["length_shorter_auroc"])


class CrashAt(TrainerCallback):
    """Simulates a crash (power cut, OOM kill) after a given optimizer step."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError(f"simulated crash at step {self.step}")


def test_crash_is_logged_failed_and_resume_continues_the_same_run(workdir):
    overrides = [*SMALL, "name=bt-resume", "train.max_steps=6", "train.save_steps=2", "model.freeze_layers=4"]
    config, text, _ = recipes.load("quickstart", overrides)
    with pytest.raises(ResumeError, match="run.json does not exist"):
        learners.train(config, resume=True)
    with pytest.raises(RuntimeError, match="simulated crash at step 5"):
        learners.train(config, recipe_text=text, callbacks=[CrashAt(5)])
    run_id = json.loads((config.out() / "run.json").read_text())["run_id"]
    crashed = tracking.get_run_data(run_id)
    assert crashed.info.status == "FAILED"
    assert "simulated crash" in crashed.data.tags["error"]
    assert "error.txt" in tracking.list_artifacts(run_id)
    assert [s for s, _ in tracking.metric_history(run_id, "loss")] == [1, 2, 3, 4]  # logged before the crash: kept

    changed, _, _ = recipes.load("quickstart", [*overrides, "train.learning_rate=0.001"])
    with pytest.raises(ResumeError, match=rf"train.learning_rate: logged '{config.train.learning_rate}', now '0.001'.*--allow-changed"):
        learners.train(changed, resume=True)  # MLflow would show the old value while training used the new one
    assert [s for s, _ in tracking.metric_history(run_id, "loss")] == [1, 2, 3, 4]  # refused before anything ran

    resumed = learners.train(config, recipe_text=text, resume=True)
    assert resumed["run_id"] == run_id
    assert resumed["global_step"] == 6
    steps = [s for s, _ in tracking.metric_history(run_id, "loss")]
    assert steps[-2:] == [5, 6] and steps.count(3) == 1  # continued from checkpoint-4: steps 1-2 not redone
    assert tracking.get_run_data(run_id).info.status == "FINISHED"

    with tracking.tracked_run(changed, "", run_id, allow_changed=True):  # the explicit flag: recorded, not silent
        pass
    data = tracking.get_run_data(run_id).data
    assert data.tags["resume_changed"] == "train.learning_rate" and data.params["train.learning_rate"] == str(config.train.learning_rate)
    assert "resume_changes.json" in tracking.list_artifacts(run_id)


def test_smollm2_backbone_trains_and_scores(workdir):
    """The default backbone: the GGUF is converted once, a scalar head trains on it, and the loss falls."""
    overrides = [
        "name=bt-smollm2", "data.max_train_pairs=8", "data.max_eval_pairs=8", "data.max_eval_samples=8", "train.epochs=4", "train.batch_size=4",
        "train.learning_rate=1.0e-4", "train.warmup_ratio=0", "train.logging_steps=1", "model.freeze_layers=24",
        "model.max_length=96", "tracking.register_model=false",
    ]
    config, text, _ = recipes.load("quickstart", overrides)
    result = learners.train(config, recipe_text=text)
    losses = [h["loss"] for h in result["log_history"] if "loss" in h]
    assert len(losses) == 8 and sum(losses[-2:]) / 2 < sum(losses[:2]) / 2
    reward = rewards.load(f"{result['output_dir']}/reward")
    assert reward.model.config.model_type == "llama"
    assert result["model_uri"] == f"runs:/{result['run_id']}/model"


def test_cli_eval_prints_reward_next_to_length_baselines(trained, capsys, tmp_path):
    from rewardlab import cli

    out_json = tmp_path / "eval.json"
    assert cli.main(["eval", "models:/bt-test/1", "--max-pairs", "12", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "pairwise accuracy" in out and "AUROC vs correctness" in out and "longer" in out and "shorter" in out
    metrics = json.loads(out_json.read_text())
    assert metrics["n_pairs"] == 12
    from rewardlab.data import TextDataConfig

    pairs = load_preferences(TextDataConfig(name="math-answers", max_eval_pairs=12, max_eval_samples=12)).test_pairs  # as eval reads them
    reward = rewards.load("models:/bt-test/1")
    chosen = np.asarray(reward.score([p["prompt"] for p in pairs], [p["chosen"] for p in pairs]))
    rejected = np.asarray(reward.score([p["prompt"] for p in pairs], [p["rejected"] for p in pairs]))
    assert metrics["pair_accuracy"] == pytest.approx(float(np.mean((chosen > rejected) + 0.5 * (chosen == rejected))))
