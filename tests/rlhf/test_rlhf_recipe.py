"""An RLHF recipe end to end on the embedded policy: accuracy before and after, reward curves, KL, completion
tables, in a real SQLite MLflow store; GRPO with a served reward and RLOO with SPO win rates."""

from __future__ import annotations

import json

import pytest
import torch

from rewardlab import backbones, recipes, tracking
from rewardlab.models.scalar_head import build_scalar_rm
from rewardlab.rewards import ScalarTextReward
from rewardlab.rlhf import train as rlhf

TINY = ["data.train_prompts=4", "data.eval_prompts=4", "train.max_steps=2", "train.num_generations=2", "train.prompts_per_step=2",
        "train.max_completion_length=10", "train.log_completions_every=1", "eval.max_new_tokens=10"]


@pytest.fixture(scope="module")
def rm_folder(tmp_path_factory):
    torch.manual_seed(0)
    tokenizer = backbones.load_tokenizer(backbones.MINILM)
    model = build_scalar_rm(backbones.MINILM, tokenizer)
    return ScalarTextReward.save(model, tokenizer, tmp_path_factory.mktemp("rm") / "reward", max_length=64, template="plain")


def test_held_out_prompts_are_disjoint_from_training_prompts_and_carry_answers():
    train, held_out = rlhf.math_prompts(rlhf.DataConfig(train_prompts=40, eval_prompts=30))
    questions = lambda rows: {r["prompt"][0]["content"] for r in rows}  # noqa: E731
    assert len(questions(train)) == 40 and len(questions(held_out)) == 30 and not questions(train) & questions(held_out)
    row = held_out[0]
    assert row["reference"].endswith(f"= {int(row['answer'])}.")


def test_grpo_recipe_tracks_accuracy_reward_curves_kl_and_completions(rm_folder, workdir, serve_reward):
    from rewardlab import rewards

    with serve_reward(rewards.load(rm_folder)) as url:
        config, text, _ = recipes.load("grpo_math", [*TINY, f"rewards=[{{source: correctness}}, {{source: '{url}', name: served_rm, weight: 0.5}}]"])
        result = rlhf.run(config, recipe_text=text)
    run_id = result["run_id"]
    m = result["metrics"]
    assert 0 <= m["heldout_accuracy_before"] <= 1 and 0 <= m["heldout_accuracy_after"] <= 1
    before_after = tracking.metric_history(run_id, "eval/heldout_accuracy")
    assert [s for s, _ in before_after] == [0, 2] and [v for _, v in before_after] == [m["heldout_accuracy_before"], m["heldout_accuracy_after"]]
    answers = json.loads(tracking.download(f"runs:/{run_id}/heldout_answers.json").read_text())
    answers = [dict(zip(answers["columns"], r)) for r in answers["data"]]
    assert sum(r["before_correct"] for r in answers) / len(answers) == m["heldout_accuracy_before"]
    # the paired counts are the questions whose answer turned right, and turned wrong
    assert m["heldout_fixed"] == sum(r["after_correct"] and not r["before_correct"] for r in answers)
    assert m["heldout_broken"] == sum(r["before_correct"] and not r["after_correct"] for r in answers)
    assert (m["heldout_fixed"] - m["heldout_broken"]) / len(answers) == pytest.approx(m["heldout_accuracy_after"] - m["heldout_accuracy_before"])
    correctness = tracking.metric_history(run_id, "rewards/correctness/mean")
    served = tracking.metric_history(run_id, "rewards/served_rm/mean")
    assert len(correctness) == 2 and len(served) == 2 and all(0 <= v <= 1 for _, v in correctness)
    assert len(tracking.metric_history(run_id, "kl")) == 2
    tables = tracking.list_artifacts(run_id, "completions")
    assert tables == ["completions/step_00001.json", "completions/step_00002.json"]
    table = json.loads(tracking.download(f"runs:/{run_id}/{tables[-1]}").read_text())
    columns = table["columns"]
    rows = [dict(zip(columns, r)) for r in table["data"]]
    assert len(rows) == 4 and {"prompt", "completion", "correctness", "served_rm"} <= set(columns)
    # the table's correctness column is the reward the trainer logged for that step
    assert sum(r["correctness"] for r in rows) / 4 == pytest.approx(correctness[-1][1])
    assert (workdir / "runs" / "grpo-math" / "policy" / "adapter_config.json").exists()
    assert tracking.list_artifacts(run_id, "plots") == ["plots/learning_curves.png"]


def test_rloo_with_spo_win_rates_sums_each_group_to_half_its_size(rm_folder, workdir):
    config, text, _ = recipes.load("spo_math", [*TINY, "train.algo=rloo", "train.max_steps=1",
                                                  f"rewards=[{{source: '{rm_folder}', win_rate: true, name: spo_win_rate}}, {{source: correctness, weight: 0}}]"])
    result = rlhf.run(config, recipe_text=text)
    win = tracking.metric_history(result["run_id"], "rewards/spo_win_rate/mean")
    assert len(win) == 1 and win[0][1] == pytest.approx(0.5)  # groups of 2 sum to 1: the mean win rate is 1/2


def test_a_missing_registered_reward_names_its_recipe_before_any_work(workdir):
    config, text, _ = recipes.load("grpo_math", TINY)  # rewards[1] is models:/quickstart-bt/latest: not in this store
    with pytest.raises(FileNotFoundError, match=r"(?s)rewards\[1\]\.source: models:/quickstart-bt/latest.*recipes/quickstart\.yaml"):
        rlhf.run(config, recipe_text=text)
    assert not (workdir / "runs" / "grpo-math").exists()  # failed before the run folder or an MLflow run was made


def test_the_default_learning_rate_follows_the_kind_of_fine_tuning():
    lora, _, _ = recipes.load("grpo_math", [])
    full, _, _ = recipes.load("grpo_math", ["policy.lora=null"])
    chosen, _, _ = recipes.load("grpo_math", ["policy.lora=null", "train.learning_rate=1e-4"])
    assert (rlhf.learning_rate(lora), rlhf.learning_rate(full), rlhf.learning_rate(chosen)) == (5e-4, 5e-5, 1e-4)
