"""Shared-prompt packing is exact: on the embedded SmolLM2 (causal, prompt shared) and MiniLM (encoder, two
sequences side by side), the packed forward gives the unpacked rewards, the same Bradley-Terry loss and the same
gradients for a batch, and the goal-conditioned term sees the same hidden states; a packed training run follows
the unpacked one step for step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rewardlab import backbones, learners, recipes
from rewardlab.models.packing import collate, is_causal, pack, packed_forward, unpacked_states
from rewardlab.models.scalar_head import build_scalar_rm, head_inputs
from rewardlab.rewards.text import encode

PAIRS = [("What is 12 + 7? Answer in one short sentence, and show the sum.", "12 + 7 = 19.", "It is 20."),
         ("Name the capital of France.", "Paris.", "Lyon, I think, or maybe Marseille; hard to say."),
         ("What is 3 * 4?", "3 * 4 = 12", "3 * 4 = 12, no wait, 13."),
         ("Say hi", "Hi!", "Hello there, friend; how are you doing today?")]


def unpacked(model, tokenizer, seqs: list[list[int]]):
    """TRL's layout: every sequence right-padded in one batch; rewards from the model's own pooling."""
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, : len(s)], mask[i, : len(s)] = torch.tensor(s), 1
    return model(input_ids=ids, attention_mask=mask).logits[:, 0]


def bt_loss(rewards: torch.Tensor) -> torch.Tensor:
    half = len(rewards) // 2
    return -F.logsigmoid(rewards[:half] - rewards[half:]).mean()


@pytest.mark.parametrize("backbone,template", [(backbones.SMOLLM2, "chat"), (backbones.MINILM, "plain")])
def test_packed_and_unpacked_forwards_give_the_same_rewards_loss_and_gradients(backbone, template):
    torch.manual_seed(0)
    tokenizer = backbones.load_tokenizer(backbone)
    model = build_scalar_rm(backbone, tokenizer).eval()  # no dropout: both forwards see the same network
    torch.nn.init.normal_((model.score if hasattr(model, "score") else model.classifier).weight, std=0.2)
    chosen = [encode(tokenizer, p, c, 128, template)[0] for p, c, _ in PAIRS]
    rejected = [encode(tokenizer, p, r, 128, template)[0] for p, _, r in PAIRS]
    rows = [pack(c, r, share=is_causal(model), pad_id=tokenizer.pad_token_id) for c, r in zip(chosen, rejected)]
    if is_causal(model):
        assert all(row.prefix > 10 for row in rows)  # the prompt (and template) is computed once
        assert sum(len(r.ids) for r in rows) < sum(map(len, chosen + rejected)) - 40
    batch = collate(rows, tokenizer.pad_token_id, is_causal(model))

    reference = unpacked(model, tokenizer, chosen + rejected)
    loss_ref = bt_loss(reference)
    loss_ref.backward()
    grads_ref = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    rewards, _ = packed_forward(model, batch)
    loss = bt_loss(rewards)
    loss.backward()

    assert rewards.detach() == pytest.approx(reference.detach(), abs=1e-4)
    assert float(loss) == pytest.approx(float(loss_ref), abs=1e-5)
    with torch.no_grad():  # the padding-free layout (the whole batch as one row) gives them too
        flat, _ = packed_forward(model, collate(rows, tokenizer.pad_token_id, is_causal(model), flat=True))
    assert flat == pytest.approx(reference.detach(), abs=1e-4)
    assert set(grads_ref) == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, grad in grads_ref.items():
        got = dict(model.named_parameters())[name].grad
        assert torch.allclose(got, grad, atol=1e-4, rtol=1e-3), (name, float((got - grad).abs().max()))


def test_the_goal_terms_hidden_states_are_the_unpacked_ones():
    torch.manual_seed(0)
    tokenizer = backbones.load_tokenizer(backbones.SMOLLM2)
    model = build_scalar_rm(backbones.SMOLLM2, tokenizer).eval()
    chosen = [encode(tokenizer, p, c, 128, "chat")[0] for p, c, _ in PAIRS]
    rejected = [encode(tokenizer, p, r, 128, "chat")[0] for p, _, r in PAIRS]
    with torch.no_grad(), head_inputs(model) as seen:
        unpacked(model, tokenizer, chosen + rejected)
        rows = [pack(c, r, pad_id=tokenizer.pad_token_id) for c, r in zip(chosen, rejected)]
        _, hidden = packed_forward(model, collate(rows, tokenizer.pad_token_id, True))
    reference, states = seen[0], unpacked_states(hidden, rows)
    for i, seq in enumerate(chosen + rejected):  # every real token of every sequence
        assert torch.allclose(states[i, : len(seq)], reference[i, : len(seq)], atol=1e-4), i


SMALL = ["model.freeze_layers=26", "model.max_length=96",  # SmolLM2: no dropout, so both runs see the same network "data.max_train_pairs=24",
         "data.max_eval_pairs=8", "data.max_eval_samples=8", "train.batch_size=8", "train.max_steps=3", "train.logging_steps=1",
         "train.learning_rate=1.0e-4", "train.warmup_ratio=0", "tracking.register_model=false"]


def test_a_packed_training_run_follows_the_unpacked_one(workdir):
    losses = {}
    for packing in ("none", "shared_prompt"):
        config, text, _ = recipes.load("quickstart", [*SMALL, f"train.packing={packing}", f"name=pack-{packing}"])
        result = learners.train(config, recipe_text=text)
        losses[packing] = [h["loss"] for h in result["log_history"] if "loss" in h]
        assert len(losses[packing]) == 3
    assert losses["shared_prompt"] == pytest.approx(losses["none"], abs=2e-4)


def test_long_prompts_ship_as_generated_and_share_most_of_each_pair():
    from rewardlab.data import TextDataConfig, load_preferences
    from rewardlab.data.long_prompts import LongPromptsConfig, build, generate

    shipped, fresh = build(), generate(LongPromptsConfig())
    assert shipped["pairs"] == fresh["pairs"] and shipped["samples"] == fresh["samples"]
    data = load_preferences(TextDataConfig(name="long-prompts"))  # validated against data_cards/long-prompts.md
    assert (len(data.train_pairs), len(data.test_pairs), len(data.test_samples)) == (512, 128, 256)
    pair = data.train_pairs[0]
    assert pair["chosen"] != pair["rejected"] and pair["rejected"].split()[2] in " ".join(m["content"] for m in pair["prompt"])
    tokenizer = backbones.load_tokenizer(backbones.SMOLLM2)
    rows = [pack(encode(tokenizer, p["prompt"], p["chosen"], 1024, "chat")[0], encode(tokenizer, p["prompt"], p["rejected"], 1024, "chat")[0],
                 pad_id=tokenizer.pad_token_id) for p in data.train_pairs[:20]]
    assert all(r.prefix > 300 and r.chosen_len - r.prefix < 20 for r in rows)  # a long prompt, one-sentence answers


def test_polar_triplets_pack_exactly():
    from rewardlab.rewards.polar import add_polar_tokens, encode_triple

    torch.manual_seed(0)
    tokenizer = backbones.load_tokenizer(backbones.SMOLLM2)
    model = build_scalar_rm(backbones.SMOLLM2, tokenizer).eval()
    add_polar_tokens(tokenizer, model)
    good = [encode_triple(tokenizer, p, c, c, 160)[0] for p, c, _ in PAIRS]  # reference = the chosen answer
    bad = [encode_triple(tokenizer, p, c, r, 160)[0] for p, c, r in PAIRS]
    rows = [pack(g, b, pad_id=tokenizer.pad_token_id) for g, b in zip(good, bad)]
    with torch.no_grad():
        rewards, _ = packed_forward(model, collate(rows, tokenizer.pad_token_id, True))
        reference = unpacked(model, tokenizer, good + bad)
    assert rewards == pytest.approx(reference, abs=1e-4)
