"""TRL reward functions from rewardlab rewards: order and count of the floats, local / MLflow / remote sources,
references from a dataset column, and SPO win rates."""

from __future__ import annotations

import asyncio
import inspect

import pytest
import torch

from rewardlab import backbones, recipes, rewards, tracking
from rewardlab.models.scalar_head import build_scalar_rm
from rewardlab.rewards import PolarReward, RewardInputError, ScalarTextReward
from rewardlab.rewards.polar import add_polar_tokens
from rewardlab.rlhf import WinRateReward, correctness_reward, groups_of, reward_function, win_rate_reward, win_rates

QUESTIONS = ["What is 2 + 3?", "What is 4 * 5?", "What is 9 - 7?"]
ANSWERS = ["2 + 3 = 5.", "The answer is 6.", "4 * 5 = 20.", "It is twenty-one.", "9 - 7 = 2.", "9 - 7 = 3."]


@pytest.fixture(scope="module")
def text_folder(tmp_path_factory):
    """A scalar RM on the embedded MiniLM with a random head: different texts get different scores."""
    torch.manual_seed(0)
    tokenizer = backbones.load_tokenizer(backbones.MINILM)
    model = build_scalar_rm(backbones.MINILM, tokenizer)
    head = model.score if hasattr(model, "score") else model.classifier
    torch.nn.init.normal_(head.weight, std=0.5)
    return ScalarTextReward.save(model, tokenizer, tmp_path_factory.mktemp("rm") / "reward", max_length=48, template="plain")


def grouped(n: int = 2):
    """GRPO's layout: each prompt's ``n`` completions are consecutive (conversational, as TRL passes them)."""
    prompts = [[{"role": "user", "content": q}] for q in QUESTIONS for _ in range(n)]
    completions = [[{"role": "assistant", "content": a}] for a in ANSWERS[: len(prompts)]]
    return prompts, completions


def test_adapter_returns_one_float_per_completion_in_order(text_folder):
    reward = rewards.load(text_folder)
    func = reward_function(text_folder, name="quickstart")
    prompts, completions = grouped()
    out = func(prompts=prompts, completions=completions, completion_ids=[[1]] * 6, answer=[5, 5, 20, 20, 2, 2])
    assert func.__name__ == "quickstart" and len(out) == 6 and all(isinstance(x, float) for x in out)
    assert out == pytest.approx(reward.score(prompts, completions), abs=1e-5)
    assert len(set(round(x, 5) for x in out)) == 6  # distinct texts, distinct scores: the order is checkable
    reversed_out = func(prompts=prompts[::-1], completions=completions[::-1])
    assert reversed_out == pytest.approx(out[::-1], abs=1e-5)


def test_adapter_loads_a_registered_model_by_mlflow_uri(text_folder, workdir):
    with tracking.start_run(tracking.TrackingConfig(), "rlhf-adapter-test") as run:
        uri = run.log_reward_model(text_folder, "rlhf-adapter-rm")
    func = reward_function(uri)
    prompts, completions = grouped()
    assert func.__name__ == "rlhf-adapter-rm"
    assert func(prompts=prompts, completions=completions) == pytest.approx(rewards.load(text_folder).score(prompts, completions))


def test_remote_adapter_is_async_and_matches_the_local_reward(text_folder, serve_reward):
    local = rewards.load(text_folder)
    prompts, completions = grouped()
    with serve_reward(local) as url:
        func = reward_function(url, name="served")
        assert inspect.iscoroutinefunction(func.__call__)
        out = asyncio.run(func(prompts=prompts, completions=completions))
    assert out == pytest.approx(local.score(prompts, completions), abs=1e-5)


def test_remote_spo_is_async_and_matches_local_spo(text_folder, serve_reward):
    prompts, completions = grouped(2)
    local = win_rate_reward(text_folder, 2)
    assert not inspect.iscoroutinefunction(local.__call__)
    with serve_reward(rewards.load(text_folder)) as url:
        remote = win_rate_reward(url, 2, name="served_spo")
        assert inspect.iscoroutinefunction(remote.__call__)
        out = asyncio.run(remote(prompts=prompts, completions=completions))
    assert out == pytest.approx(local(prompts=prompts, completions=completions), abs=1e-5)
    assert [a + b for a, b in zip(out[::2], out[1::2])] == pytest.approx([1.0, 1.0, 1.0])


def test_references_come_from_the_named_dataset_column(text_folder):
    func = reward_function(text_folder, reference_column="reference")
    prompts, completions = grouped()
    with pytest.raises(RewardInputError, match="column 'reference'.*columns: \\['answer'\\]"):
        func(prompts=prompts, completions=completions, answer=[1] * 6)
    with pytest.raises(RewardInputError, match="has 2 values for 6 completions"):
        func(prompts=prompts, completions=completions, reference=["a", "b"])


def test_correctness_reads_the_last_stated_number():
    prompts, completions = grouped()
    assert correctness_reward(prompts, completions, answer=[5, 5, 20, 20, 2, 2]) == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]


def test_win_rates_of_a_symmetric_preference_sum_to_half_the_group():
    p = [[0.5, 0.9, 0.7], [0.1, 0.5, 0.2], [0.3, 0.8, 0.5]]
    assert win_rates(p) == pytest.approx([0.8, 0.15, 0.55])
    assert sum(win_rates(p)) == pytest.approx(1.5)


@pytest.mark.parametrize("group_size", [2, 3, 6])
def test_spo_rewards_of_each_group_sum_to_n_over_2_and_follow_the_scores(text_folder, group_size):
    reward = rewards.load(text_folder)
    prompts = [QUESTIONS[0]] * 6 if group_size == 6 else [q for q in QUESTIONS for _ in range(2)][:6]
    if group_size == 3:
        prompts = [QUESTIONS[0]] * 3 + [QUESTIONS[1]] * 3
    spo = WinRateReward(text_folder, group_size)
    out = spo(prompts=prompts, completions=ANSWERS)
    scores = reward.score(prompts, ANSWERS)
    for start in range(0, 6, group_size):
        group = slice(start, start + group_size)
        assert sum(out[group]) == pytest.approx(group_size / 2)
        ranked_by_score = sorted(range(group_size), key=lambda i: scores[group][i])
        assert sorted(range(group_size), key=lambda i: out[group][i]) == ranked_by_score


def test_spo_with_polar_uses_each_completion_as_the_others_reference():
    torch.manual_seed(1)
    tokenizer = backbones.load_tokenizer(backbones.SMOLLM2)
    model = build_scalar_rm(backbones.SMOLLM2, tokenizer)
    add_polar_tokens(tokenizer, model)
    torch.nn.init.normal_(model.score.weight, std=0.05)
    polar = PolarReward(model, tokenizer, max_length=64, device="cpu")
    spo = WinRateReward(polar, 3, preference="polar")
    out = spo(prompts=[QUESTIONS[1]] * 3, completions=ANSWERS[2:5])
    assert sum(out) == pytest.approx(1.5) and len(set(round(x, 6) for x in out)) == 3
    r = {(i, j): polar.score([QUESTIONS[1]], [ANSWERS[2 + i]], [ANSWERS[2 + j]])[0] for i in range(3) for j in range(3) if i != j}
    p01 = 1 / (1 + pytest.importorskip("math").exp(-(r[(0, 1)] - r[(1, 0)])))
    p02 = 1 / (1 + pytest.importorskip("math").exp(-(r[(0, 2)] - r[(2, 0)])))
    assert out[0] == pytest.approx((p01 + p02) / 2, abs=1e-5)


def test_spo_refuses_incomplete_or_mixed_groups(text_folder):
    with pytest.raises(RewardInputError, match="not whole groups of 4"):
        groups_of(["q"] * 6, 4)
    with pytest.raises(RewardInputError, match="answer 2 different prompts"):
        groups_of(["a", "a", "b", "a"], 2) and groups_of(["a", "b"], 2)
    with pytest.raises(RewardInputError, match="at least 2"):
        WinRateReward(text_folder, 1)(prompts=["q"], completions=["a"])


def test_the_noisy_oracle_prefers_the_correct_answer_except_at_its_flip_rate():
    from rewardlab.rlhf.rewards import OracleWinRate

    prompts = ["What is 2 + 2?"] * 4
    completions = ["2 + 2 = 4.", "It is 5.", "The answer is 4.", "3"]
    answer = [4.0] * 4
    exact = OracleWinRate(4, flip_rate=0.0, seed=0)
    rates = [exact(prompts, completions, answer=answer) for _ in range(200)]
    # with no noise a correct answer beats both wrong ones and ties (a fair coin) with the other correct one
    for i in (0, 2):
        assert sum(r[i] for r in rates) / 200 == pytest.approx((2 + 0.5) / 3, abs=0.03)
        assert all(r[i] >= 2 / 3 for r in rates)
    assert all(sum(r) == pytest.approx(4 / 2) for r in rates)  # every comparison has one winner
    noisy = OracleWinRate(4, flip_rate=0.3, seed=1)
    for _ in range(400):
        noisy(prompts, completions, answer=answer)
    assert noisy.comparisons == 400 * 4 and noisy.flipped / noisy.comparisons == pytest.approx(0.3, abs=0.03)
    with pytest.raises(ValueError, match="flip_rate"):
        OracleWinRate(4, flip_rate=0.7)


def test_label_flips_swap_that_share_of_train_pairs_and_leave_the_test_split_alone():
    from rewardlab.data import TextDataConfig, load_preferences

    clean = load_preferences(TextDataConfig())
    noisy = load_preferences(TextDataConfig(label_flip_rate=0.25, label_flip_seed=3))
    swapped = [a["chosen"] == b["rejected"] and a["rejected"] == b["chosen"] for a, b in zip(clean.train_pairs, noisy.train_pairs)]
    kept = [a == b for a, b in zip(clean.train_pairs, noisy.train_pairs)]
    assert all(s or k for s, k in zip(swapped, kept)) and sum(swapped) / len(swapped) == pytest.approx(0.25, abs=0.04)
    assert noisy.test_pairs == clean.test_pairs and noisy.shifted_pairs == clean.shifted_pairs


def test_the_spo_oracle_recipe_builds_the_oracle_and_the_logged_exact_reward():
    from rewardlab.rlhf.rewards import OracleWinRate, correctness_reward
    from rewardlab.rlhf.train import reward_functions

    config, _, _ = recipes.load("spo_oracle", ["rewards.0.flip_rate=0.0"])
    oracle, exact = reward_functions(config.rewards, config.train.num_generations, config.seed)
    assert isinstance(oracle, OracleWinRate) and oracle.__name__ == "spo_oracle" and exact is correctness_reward
    prompts, completions = ["What is 3 * 3?"] * 4, ["9", "3 * 3 = 9.", "It is 6.", "12"]
    rates = oracle(prompts, completions, answer=[9.0] * 4)
    assert max(rates[2:]) <= 1 / 3 and min(rates[:2]) >= 2 / 3  # no noise: both right answers beat both wrong ones
    with pytest.raises(ValueError, match="flip_rate applies"):
        reward_functions(recipes.load("grpo_math", ["rewards=[{source: correctness, flip_rate: 0.2}]"])[0].rewards, 4)


def test_normalize_whitens_with_the_stored_statistics_locally_and_through_the_server(text_folder, tmp_path, serve_reward):
    import shutil

    import numpy as np

    from rewardlab.rewards.text import record_normalization

    folder = shutil.copytree(text_folder, tmp_path / "reward")
    prompts, completions = grouped()
    raw = np.asarray(rewards.load(folder).score(prompts, completions))
    stats = record_normalization(folder, raw[:4])  # statistics from other answers than the ones scored below
    expected = (raw - stats["mean"]) / stats["std"]
    assert reward_function(folder, normalize=True)(prompts=prompts, completions=completions) == pytest.approx(expected, abs=1e-5)
    with serve_reward(rewards.load(folder)) as url:
        remote = reward_function(url, normalize=True)
        assert asyncio.run(remote(prompts=prompts, completions=completions)) == pytest.approx(expected, abs=1e-5)
    with pytest.raises(RewardInputError, match="normalize needs the reward's stored statistics"):
        reward_function(text_folder, normalize=True)
