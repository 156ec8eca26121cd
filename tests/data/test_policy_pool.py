"""The policy pool and POLAR's triplet builder: splits by topic, no held-out policy in training, the shipped rows."""

from __future__ import annotations

from collections import Counter

import pytest

from rewardlab.data import DataError, find_card
from rewardlab.data.policy_pool import Policy, PolicyPoolConfig, build, generate, make_prompts, make_triplets

RULE_POOL = PolicyPoolConfig(
    policies=(Policy("template-a", kind="template"), Policy("template-b", kind="template"), Policy("bigram", kind="bigram")),
    held_out_policies=("bigram",),
    n_topics=12,
)


def test_prompts_are_instructions_and_prefixes_split_by_topic():
    prompts = make_prompts(20, 0.25, seed=0)
    assert Counter(p["prompt_kind"] for p in prompts) == {"instruction": 20, "prefix": 20}
    by_topic = {}
    for p in prompts:
        by_topic.setdefault(p["topic"], set()).add(p["split"])
    assert all(len(splits) == 1 for splits in by_topic.values())  # a topic is never on both sides
    assert sum("test" in s for s in by_topic.values()) == 5


def test_triplets_never_put_a_held_out_policy_in_training():
    rows = generate(RULE_POOL)
    find_card("policy-trajectories").validate_rows(rows)
    triplets = make_triplets(rows, per_prompt=4, seed=0)
    assert triplets.train and triplets.eval_prompts and triplets.eval_policies
    train_pids = {r["pid"] for r in rows if r["split"] == "train"}
    for t in triplets.train:
        assert "bigram" not in (t["policy_a"], t["policy_b"]) and t["policy_a"] != t["policy_b"]
        assert t["pid"] in train_pids
    assert all(t["pid"] not in train_pids for t in triplets.eval_prompts + triplets.eval_policies)
    assert all(t["policy_a"] == "bigram" and t["policy_b"] != "bigram" for t in triplets.eval_policies)
    # reference and positive are A's two samples (either order); the negative is one of B's
    samples = {}
    for r in rows:
        samples.setdefault((r["pid"], r["policy"]), []).append(r["trajectory"])
    for t in triplets.train:
        assert sorted([t["reference"], t["positive"]]) == sorted(samples[(t["pid"], t["policy_a"])])
        assert t["negative"] in samples[(t["pid"], t["policy_b"])]
    assert len({(t["reference"] == samples[(t["pid"], t["policy_a"])][0]) for t in triplets.train}) == 2
    # held-out prompts: every ordered pair of policies, not a few draws
    test_pids = {r["pid"] for r in rows} - train_pids
    assert len(triplets.eval_prompts) == len(test_pids) * 2  # template-a/b both ways
    assert len(triplets.eval_policies) == len(test_pids) * 2  # bigram against each template


def test_bad_pool_settings_are_reported():
    with pytest.raises(DataError, match="not in the pool"):
        PolicyPoolConfig(held_out_policies=("nobody",))
    with pytest.raises(DataError, match="at least two policies"):
        PolicyPoolConfig(policies=RULE_POOL.policies, held_out_policies=("template-a", "bigram"))


def test_shipped_pool_has_six_or_more_policies_that_really_differ():
    rows = build()
    find_card("policy-trajectories").validate_rows(rows)
    by_policy: dict[str, list[str]] = {}
    for r in rows:
        by_policy.setdefault(r["policy"], []).append(r["trajectory"])
    assert len(by_policy) >= 6
    # no two policies of different families write the same answers (a restyling may leave a terse numeric answer
    # as it was, "12." in capitals is "12."; a policy and its restyling are never compared, see make_triplets)
    texts = {p: set(t) for p, t in by_policy.items()}
    family = {r["policy"]: r["family"] for r in rows}
    for a in texts:
        for b in texts:
            if a < b and family[a] != family[b]:
                assert len(texts[a] & texts[b]) / len(texts[a]) < 0.05, (a, b)
    held = {r["policy"] for r in rows if r["policy_split"] == "held_out"}
    assert held and held < set(by_policy)


def test_rewrite_policies_restyle_their_base_policy_and_bad_ones_are_named():
    cfg = PolicyPoolConfig(
        n_topics=4,
        policies=[{"id": "bot", "kind": "template"}, {"id": "bigram", "kind": "bigram"},
                  {"id": "bot-upper", "kind": "rewrite", "base": "bot", "transform": "upper"}],
        held_out_policies=["bigram"],
    )
    rows = generate(cfg)
    base = {(r["pid"], r["sample"]): r["trajectory"] for r in rows if r["policy"] == "bot"}
    upper = {(r["pid"], r["sample"]): r["trajectory"] for r in rows if r["policy"] == "bot-upper"}
    assert upper and upper == {k: v.upper() for k, v in base.items()}
    with pytest.raises(DataError, match="bot-lower.*transform"):
        PolicyPoolConfig(policies=[*cfg.policies, {"id": "bot-lower", "kind": "rewrite", "base": "bot", "transform": "lowest"}],
                         held_out_policies=["bigram"])


def test_the_pool_asks_arithmetic_never_a_math_answers_test_question_and_holds_out_word_problems():
    from rewardlab.data import math_answers

    prompts = make_prompts(8, 0.25, seed=0, n_arithmetic=40, n_reasoning=12, held_out_kinds=("reasoning",))
    kinds = Counter(p["prompt_kind"] for p in prompts)
    assert kinds == {"instruction": 8, "prefix": 8, "arithmetic": 40, "reasoning": 12}
    default = math_answers.MathAnswersConfig()
    test_ids = math_answers.test_qids(default)
    held = {q["question"] for q in math_answers.make_questions(default.n_questions, default.seed) if q["qid"] in test_ids}
    arithmetic = [p for p in prompts if p["prompt_kind"] == "arithmetic"]
    assert len({p["prompt"] for p in arithmetic}) == 40 and not {p["prompt"] for p in arithmetic} & held
    assert {p["split"] for p in arithmetic} == {"train", "test"}
    assert all(p["split"] == "test" for p in prompts if p["prompt_kind"] == "reasoning")


def test_a_policy_and_its_own_restyling_are_never_each_others_negative():
    cfg = PolicyPoolConfig(
        n_topics=8, n_arithmetic=8, n_reasoning=4,
        policies=[{"id": "bot", "kind": "template"}, {"id": "bot-upper", "kind": "rewrite", "base": "bot", "transform": "upper"},
                  {"id": "bigram", "kind": "bigram"}, {"id": "bigram-title", "kind": "rewrite", "base": "bigram", "transform": "title_case"},
                  {"id": "bot-2", "kind": "template"}],
        held_out_policies=["bot-2"],
    )
    rows = generate(cfg)
    find_card("policy-trajectories").validate_rows(rows)
    assert {r["family"] for r in rows if r["policy"] == "bot-upper"} == {"bot"}
    triplets = make_triplets(rows, per_prompt=16, seed=0)
    family = {r["policy"]: r["family"] for r in rows}
    for t in triplets.train + triplets.eval_prompts + triplets.eval_policies:
        assert family[t["policy_a"]] != family[t["policy_b"]], t
    assert {(t["policy_a"], t["policy_b"]) for t in triplets.train} >= {("bot", "bigram"), ("bot-upper", "bigram-title")}
    # the held-out prompt kind (word problems) is never trained on, and is evaluated
    assert all(t["prompt_kind"] != "reasoning" for t in triplets.train)
    assert any(t["prompt_kind"] == "reasoning" for t in triplets.eval_prompts)
