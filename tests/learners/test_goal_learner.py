"""The goal-conditioned contrastive RM: position sampling, the loss, Q-values, the goal state round trip, and the
learner end to end on the embedded SmolLM2 (a few steps, top blocks only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardlab import backbones, learners, recipes, rewards
from rewardlab.data import DataError
from rewardlab.learners import goal_contrastive as goal
from rewardlab.rewards.goal import GoalTextReward, filter_vote, majority
from rewardlab.models.scalar_head import read_positions
from rewardlab.rewards.text import encode_span

FAST = ["model.freeze_layers=27", "train.batch_size=8", "train.logging_steps=1", "train.learning_rate=2e-4",
        "train.max_steps=10", "data.max_train_pairs=80", "data.max_eval_pairs=40", "data.max_eval_samples=120"]


def test_positions_lie_inside_the_response_and_goals_follow_sources():
    starts = torch.tensor([3, 10, 0, 7])
    ends = torch.tensor([9, 11, 5, 40])
    g = torch.Generator().manual_seed(0)
    source, target = goal.sample_positions(starts, ends, 200, generator=g)
    assert (source >= starts[:, None]).all() and (source < ends[:, None]).all()
    assert (target >= source).all() and (target < ends[:, None]).all()
    # uniform: every position of a short response gets drawn
    assert set(source[0].tolist()) == set(range(3, 9))
    assert set(target[1].tolist()) == {10}


def test_positions_never_fall_in_prompt_or_padding_of_a_real_batch():
    tokenizer = backbones.load_tokenizer("embedded:smollm2-135m-instruct")
    pairs = [{"prompt": "What is 7 * 8? Answer in one short sentence.", "chosen": "7 times 8 is 56.", "rejected": "It is 54, I think, or maybe 58."},
             {"prompt": "What is 2 + 2?", "chosen": "4", "rejected": "The answer is five because two and two make five."}]
    dataset = goal.tokenize_pairs(pairs, tokenizer, 96, "plain")
    batch = goal.make_collator(tokenizer.pad_token_id)([dataset[i] for i in range(len(dataset))])
    ends = read_positions(batch["input_ids"], tokenizer.pad_token_id) + 1
    source, target = goal.sample_positions(batch["response_start"], ends, 500, generator=torch.Generator().manual_seed(1))
    prompt_ids = {tuple(tokenizer(p["prompt"] + "\n", add_special_tokens=False)["input_ids"]) for p in pairs}
    for row in range(4):
        start = int(batch["response_start"][row])
        assert tuple(batch["input_ids"][row, :start].tolist()) in prompt_ids  # everything before start is the prompt
        assert batch["attention_mask"][row, source[row]].all() and batch["attention_mask"][row, target[row]].all()
        assert int(source[row].min()) >= start
        assert (batch["input_ids"][row, target[row]] != tokenizer.pad_token_id).all()  # nor on the EOS (= pad here)


def test_contrastive_loss_rewards_aligned_preferred_states_and_separated_rejected_ones():
    starts, ends = torch.tensor([2, 2, 2, 2]), torch.tensor([6, 6, 6, 6])
    aligned = torch.zeros(4, 6, 3)
    aligned[:2, :, 0] = 1.0  # preferred responses all point one way
    aligned[2:, :, 0] = -1.0  # rejected ones the other
    good, pos, neg = goal.contrastive_loss(aligned, starts, ends, 8)
    bad, _, _ = goal.contrastive_loss(torch.ones(4, 6, 3), starts, ends, 8)  # everything alike
    assert pos == pytest.approx(1.0) and neg == pytest.approx(-1.0)
    assert good < bad
    assert float(good) == pytest.approx(-np.log(1 / (1 + np.exp(-1))) - np.log(1 - 1 / (1 + np.exp(1))), abs=1e-5)


def test_a_shared_prefix_gives_no_negative_from_inside_it():
    """Before the first differing token a causal model's states of the two answers are one tensor: here e1 in both.
    After it the preferred answer is e2 and the dispreferred e3 (orthogonal). With ``diverge`` every negative pair is
    (e2, e3), cosine exactly 0; without it, some are (e1, e1), cosine 1."""
    hidden = torch.zeros(2, 10, 3)
    hidden[:, :, 0] = 1.0  # e1 everywhere ...
    hidden[0, 6:] = torch.tensor([0.0, 1.0, 0.0])  # ... until the answers diverge at 6: e2 for the preferred one
    hidden[1, 6:] = torch.tensor([0.0, 0.0, 1.0])  # e3 for the dispreferred one
    starts, ends, diverge = torch.tensor([2, 2]), torch.tensor([10, 10]), torch.tensor([6])
    _, _, neg = goal.contrastive_loss(hidden, starts, ends, 16, torch.Generator().manual_seed(0), diverge=diverge)
    assert float(neg) == 0.0
    _, _, neg_all = goal.contrastive_loss(hidden, starts, ends, 16, torch.Generator().manual_seed(0))
    assert float(neg_all) > 0.1
    # answers that never diverge before they end (one a prefix of the other, the shorter the preferred) give none
    loss, pos, neg = goal.contrastive_loss(torch.ones(2, 10, 3), starts, ends, 4, diverge=torch.tensor([10]))
    assert np.isnan(float(neg)) and float(pos) == pytest.approx(1.0)
    assert float(loss) == pytest.approx(-np.log(1 / (1 + np.exp(-1.0))), abs=1e-6)  # the positive term alone


def test_diverge_is_the_first_token_where_the_tokenized_answers_differ():
    tokenizer = backbones.load_tokenizer("embedded:smollm2-135m-instruct")
    pairs = [{"prompt": "What is 12 + 7?", "chosen": "Step 1: 12 + 7 = 19. The answer is 19.",
              "rejected": "Step 1: 12 + 7 = 18. The answer is 18."}]
    row = goal.tokenize_pairs(pairs, tokenizer, 96, "plain")[0]
    d = row["diverge"]
    assert row["chosen_ids"][:d] == row["rejected_ids"][:d] and row["chosen_ids"][d] != row["rejected_ids"][d]
    assert d > row["chosen_start"] + 3  # "Step 1: 12 + 7 =" is shared inside the answers
    batch = goal.make_collator(tokenizer.pad_token_id)([row])
    assert batch["diverge"].tolist() == [d]
    assert goal.divergence([1, 2, 3], [1, 2]) == 2 and goal.divergence([4], [5]) == 0


def test_the_positive_term_averages_the_whole_cross_product_of_sources_and_goals():
    """n sources and n goals per pair give n x n cosines (the paper's loss), not n matched pairs: recomputed by hand
    from the same draws."""
    torch.manual_seed(0)
    hidden = torch.randn(4, 12, 5)
    starts, ends, n = torch.tensor([1, 3, 2, 0]), torch.tensor([12, 9, 10, 7]), 6
    loss, pos, neg = goal.contrastive_loss(hidden, starts, ends, n, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    source, target = goal.sample_positions(starts[:2], ends[:2], n, g)
    cos = [torch.nn.functional.cosine_similarity(hidden[b, source[b, i]], hidden[b, target[b, j]], dim=0)
           for b in range(2) for i in range(n) for j in range(n)]
    assert len(cos) == 2 * n * n
    assert float(pos) == pytest.approx(float(torch.stack(cos).mean()), abs=1e-6)
    c, r = goal.sample_span(starts[:2], ends[:2], n, g), goal.sample_span(starts[2:], ends[2:], n, g)
    negs = [torch.nn.functional.cosine_similarity(hidden[b, c[b, i]], hidden[b + 2, r[b, j]], dim=0)
            for b in range(2) for i in range(n) for j in range(n)]
    expected = -torch.log(torch.sigmoid(torch.stack(cos)).mean()) - torch.log(1 - torch.sigmoid(torch.stack(negs)).mean())
    assert float(loss) == pytest.approx(float(expected), abs=1e-5)
    assert float(neg) == pytest.approx(float(torch.stack(negs).mean()), abs=1e-6)


def test_min_q_within_length_buckets_removes_a_length_artefact():
    """Correct answers are longer, and a longer answer's minimum Q is lower: overall min-Q AUROC falls below 0.5
    while, among answers of about the same length, min-Q ranks every correct one above every wrong one."""
    rng = np.random.default_rng(0)
    lengths = np.repeat([10.0, 20.0, 40.0], 40)
    labels = np.tile([1, 0], 60)
    labels[:40] = np.r_[np.ones(8), np.zeros(32)].astype(int)  # short answers: mostly wrong
    labels[80:] = np.r_[np.ones(32), np.zeros(8)].astype(int)  # long answers: mostly right
    mins = -lengths / 10 + 0.5 * labels + rng.uniform(0, 0.1, len(labels))  # lower with length, higher when correct
    assert goal.auroc(labels, mins) < 0.5
    assert goal.within_length_auroc(labels, mins, lengths) == pytest.approx(1.0)
    assert np.isnan(goal.within_length_auroc(np.ones(6, int), mins[:6], lengths[:6]))  # one class: nothing to rank


def test_filter_vote_drops_low_q_samples_and_counts_saved_tokens():
    q_ok, q_bad = np.full(10, 0.9), np.r_[np.full(6, 0.9), np.full(4, 0.1)]
    answer, spent, total = filter_vote([3, 5, 5, 3, 3], [q_ok, q_bad, q_bad, q_ok, q_ok], threshold=0.5, skip=5)
    assert answer == 3 and total == 50 and spent == 30 + 2 * 7  # dropped samples stop at their 7th token
    answer, spent, total = filter_vote([5, 5, 3], [q_bad, q_bad, q_ok], threshold=0.5, skip=5)
    assert answer == 3 and majority([5, 5, 3]) == 5
    answer, _, _ = filter_vote([5, 5, 3], [q_bad] * 3, threshold=0.5, skip=5)  # all dropped: unfiltered vote
    assert answer == 5


def test_filter_vote_saves_nothing_when_every_sample_is_dropped():
    """The fallback vote reads every sample, so a generator wrote them all in full: 0 tokens saved, as in the
    paper's eval_rm.py. (Before the fix the dropped samples' early stops still counted as saved.)"""
    q_bad = np.r_[np.full(6, 0.9), np.full(4, 0.1)]
    answer, spent, total = filter_vote([5, 5, 3], [q_bad] * 3, threshold=0.5, skip=5)
    assert answer == 5 and spent == total == 30


def test_the_contrastive_term_alone_falls_when_trained_through_the_head_inputs():
    from rewardlab.models.scalar_head import build_scalar_rm, head_inputs

    tokenizer = backbones.load_tokenizer("embedded:smollm2-135m-instruct")
    torch.manual_seed(0)
    model = build_scalar_rm("embedded:smollm2-135m-instruct", tokenizer, freeze_layers=28)
    pairs = [{"prompt": f"What is {a} + {b}?", "chosen": f"{a} plus {b} is {a + b}.", "rejected": f"I think it is {a + b + 3}, or so."}
             for a, b in [(2, 3), (4, 9), (7, 1), (6, 6)]]
    dataset = goal.tokenize_pairs(pairs, tokenizer, 64, "plain")
    batch = goal.make_collator(tokenizer.pad_token_id)([dataset[i] for i in range(len(dataset))])
    ends = read_positions(batch["input_ids"], tokenizer.pad_token_id) + 1
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    losses = []
    for step in range(12):
        with head_inputs(model) as seen:
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        loss, _, _ = goal.contrastive_loss(seen[-1], batch["response_start"], ends, 8, torch.Generator().manual_seed(step))
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < losses[0] - 0.1, losses


@pytest.fixture(scope="module")
def trained(module_workdir):
    config, text, _ = recipes.load("goal_rm", FAST)
    return config, learners.train(config, recipe_text=text)


def test_loss_falls_and_the_run_reports_q_metrics(trained):
    _, result = trained
    history = [h for h in result["log_history"] if "contrastive_loss" in h]
    assert len(history) == 10
    total = [h["loss"] for h in history]
    assert np.mean(total[-3:]) < total[0] - 0.05, total
    m = result["metrics"]
    assert m["n_questions"] == 20  # the 120 held-out samples capped in FAST are 20 questions x 6 samples


def test_q_metrics_are_the_rewards_own_on_the_held_out_samples(trained):
    """Recomputed here from the loaded reward's Q-values and the samples' stated answers (sklearn's AUROC)."""
    from collections import Counter

    from sklearn.metrics import roc_auc_score

    from rewardlab.data import load_preferences

    config, result = trained
    m, samples = result["metrics"], load_preferences(config.data).test_samples
    reward = rewards.load(result["model_uri"])
    qs = reward.q_values([s["prompt"] for s in samples], [s["response"] for s in samples])
    labels = [int(s["correct"]) for s in samples]
    assert m["q_auroc_last"] == pytest.approx(roc_auc_score(labels, [q[-1] for q in qs]), abs=1e-5)
    scores = reward.score([s["prompt"] for s in samples], [s["response"] for s in samples])
    assert m["auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    by_question: dict = {}
    for s in samples:
        by_question.setdefault(s["qid"], []).append(s)
    def vote(group):  # the most common stated answer (None ignored), ties to the first seen
        counts = Counter(s["stated"] for s in group if s["stated"] is not None)
        return counts.most_common(1)[0][0] if counts else None

    assert m["majority_vote_acc"] == pytest.approx(np.mean([vote(g) == g[0]["answer"] for g in by_question.values()]))
    spent = total = 0
    q_of = {id(s): q for s, q in zip(samples, qs)}
    for group in by_question.values():
        _, used, n = filter_vote([s["stated"] for s in group], [q_of[id(s)] for s in group], m["q_threshold"], config.q_eval.skip_tokens)
        spent, total = spent + used, total + n
    assert m["filter_tokens_saved"] == pytest.approx(1 - spent / total)


def test_goal_state_is_saved_and_q_values_match_response_tokens(trained):
    config, result = trained
    reward = rewards.load(result["model_uri"])
    assert isinstance(reward, GoalTextReward) and reward.goal_state.shape == (576,)
    local = GoalTextReward.from_folder(f"{result['output_dir']}/reward")
    assert torch.equal(local.goal_state, reward.goal_state)
    prompts = ["What is 6 * 7? Answer in one short sentence.", "What is 9 - 4?"]
    answers = ["6 times 7 is 42.", "The answer is five, because nine take away four leaves five."]
    qs = reward.q_values(prompts, answers)
    for p, a, q in zip(prompts, answers, qs):
        ids = reward.tokenizer(p + "\n" + a, add_special_tokens=False)["input_ids"]
        n_prompt = len(reward.tokenizer(p + "\n", add_special_tokens=False)["input_ids"])
        assert q.shape == (len(ids) - n_prompt,)  # the response's tokens; the reward is read at the last one
        assert np.all(np.abs(q) <= 1.0 + 1e-5)
    # the goal is the mean last-token state of correct answers: one answer as its own goal has final Q = 1
    reward.goal_state = reward.response_states(prompts[:1], answers[:1])[0][-1]
    assert reward.q_values(prompts[:1], answers[:1])[0][-1] == pytest.approx(1.0, abs=1e-5)
    # the score is the plain reward, read at the last response state: a goal RM is still a TextReward
    scores = reward.score(prompts, answers)
    assert len(set(scores)) == 2
    assert reward.scores_from_states(reward.response_states(prompts, answers)) == pytest.approx(scores, abs=1e-4)


def test_a_baseline_is_scored_on_the_same_split_and_a_bad_one_fails_before_training(trained):
    from rewardlab.data import load_preferences

    config, result = trained
    same = goal.baseline_metrics(goal.load_baseline(result["model_uri"]), load_preferences(config.data))
    assert same["baseline_auroc"] == pytest.approx(result["metrics"]["auroc"], abs=1e-6)  # itself as its own baseline
    with pytest.raises(DataError, match="baseline: cannot load 'models:/no-such-rm/1'"):
        goal.load_baseline("models:/no-such-rm/1")


def test_the_server_serves_q_values_and_the_remote_reward_has_them(trained, serve_reward):
    import httpx

    _, result = trained
    reward = rewards.load(result["model_uri"])
    prompts, answers = ["What is 3 + 5?", "What is 9 * 2?"], ["3 plus 5 is 8.", "It is 20, I believe."]
    local = reward.q_values(prompts, answers)
    with serve_reward(reward) as url:
        info = httpx.get(f"{url}/v1/info").json()
        assert "q_values" in info["capabilities"]
        served = httpx.post(f"{url}/v1/q_values", json={"prompts": prompts, "responses": answers}).json()["q_values"]
        assert [len(q) for q in served] == [len(q) for q in local]
        assert np.allclose(np.concatenate(served), np.concatenate(local), atol=1e-5)
        remote = rewards.load(url)
        assert np.allclose(remote.q_values(prompts, answers)[1], local[1], atol=1e-5)
        bad = httpx.post(f"{url}/v1/q_values", json={"prompts": prompts, "responses": answers[:1]})
        assert bad.status_code == 422 and "responses" in bad.json()["error"]["message"]


def test_q_values_follow_truncation_from_the_left():
    tokenizer = backbones.load_tokenizer("embedded:smollm2-135m-instruct")
    ids, cut, start = encode_span(tokenizer, "What is 1 + 1? " * 20, "Two.", 12, "plain")
    assert cut and len(ids) == 12 and tokenizer.decode(ids[start:]) == "Two.<|im_end|>"


def test_an_encoder_backbone_is_refused(module_workdir):
    config, _, _ = recipes.load("goal_rm", ["model.backbone=embedded:minilm-l6", "model.freeze_layers=6"])
    tokenizer = backbones.load_tokenizer("embedded:minilm-l6")
    with pytest.raises(DataError, match="causal LM"):
        goal.build_model(config, tokenizer)
