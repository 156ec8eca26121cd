"""POLAR's reward layout: special tokens, truncation that keeps the candidate, the head read at the reward token."""

from __future__ import annotations

import pytest
import torch

from rewardlab import backbones, rewards
from rewardlab.models.scalar_head import build_scalar_rm
from rewardlab.rewards import PolarReward, RewardInputError
from rewardlab.rewards.polar import REWARD_TOKEN, SEP_TOKEN, add_polar_tokens, encode_triple


@pytest.fixture(scope="module")
def polar(tmp_path_factory):
    tokenizer = backbones.load_tokenizer(backbones.SMOLLM2)
    model = build_scalar_rm(backbones.SMOLLM2, tokenizer)
    add_polar_tokens(tokenizer, model)
    torch.nn.init.zeros_(model.score.weight)
    return PolarReward(model, tokenizer, max_length=64, device="cpu")


def test_special_tokens_are_single_tokens_and_embeddings_cover_them(polar):
    tok = polar.tokenizer
    for t in (SEP_TOKEN, REWARD_TOKEN):
        assert len(tok(t, add_special_tokens=False)["input_ids"]) == 1
    assert polar.model.get_input_embeddings().weight.shape[0] >= len(tok)


def test_zero_initialised_head_scores_zero(polar):
    assert polar.score(["What is 2 + 2?"], ["4"], ["Four."]) == [0.0]


def test_truncation_cuts_the_prompt_from_the_left_and_keeps_the_candidate(polar):
    tok = polar.tokenizer
    prompt = "Background: " + "blah " * 100 + "Question: what is 2 + 2?"
    candidate = "The answer is four, because two plus two makes four."
    ids, cut = encode_triple(tok, prompt, "It is 4.", candidate, max_length=64)
    assert cut and len(ids) <= 64
    cand_ids = tok(candidate, add_special_tokens=False)["input_ids"]
    assert ids[-1] == tok.convert_tokens_to_ids(REWARD_TOKEN)
    assert ids[-1 - len(cand_ids) : -1] == cand_ids  # the candidate, whole, right before the reward token
    text = tok.decode(ids)
    assert text.count(SEP_TOKEN) == 1 and "It is 4." in text
    assert "Question: what is 2 + 2?" in text.split(SEP_TOKEN)[1]  # the prompt's end survives, its start is cut
    assert "Background" not in text
    # a reference longer than the budget is cut from the left; the candidate still is not
    ids, cut = encode_triple(tok, "Q?", "word " * 200, candidate, max_length=64)
    assert cut and len(ids) <= 64 and ids[-1 - len(cand_ids) : -1] == cand_ids
    with pytest.raises(RewardInputError, match="never cut"):
        encode_triple(tok, "Q?", "ref", "word " * 200, max_length=64)


def test_head_reads_exactly_at_the_reward_token(polar):
    torch.manual_seed(0)
    torch.nn.init.normal_(polar.model.score.weight, std=0.02)
    try:
        tok = polar.tokenizer
        ids, _ = encode_triple(tok, "What is 2 + 2?", "4", "It is four.", 64)
        x = torch.tensor([ids])
        hidden = polar.model.base_model(input_ids=x).last_hidden_state[0]
        at_reward = polar.model.score(hidden[len(ids) - 1]).item()
        at_previous = polar.model.score(hidden[len(ids) - 2]).item()
        ours = polar.reward_at_token(x, torch.ones_like(x)).item()
        assert ours == pytest.approx(at_reward, abs=1e-5) and abs(ours - at_previous) > 1e-4
        # padded on the right, in a batch with a longer row: same value, and the HF forward that TRL trains
        # through pools at the same token
        longer, _ = encode_triple(tok, "What is 2 + 2? Think about it.", "4", "It is four, I am sure.", 64)
        batch = torch.full((2, len(longer)), tok.pad_token_id)
        mask = torch.zeros_like(batch)
        for row, seq in enumerate((ids, longer)):
            batch[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        padded = polar.reward_at_token(batch, mask)
        assert padded[0].item() == pytest.approx(at_reward, abs=1e-4)
        hf = polar.model(input_ids=batch, attention_mask=mask).logits[:, 0]
        torch.testing.assert_close(hf, padded, atol=1e-4, rtol=1e-4)
    finally:
        torch.nn.init.zeros_(polar.model.score.weight)


def test_references_are_required_and_the_folder_round_trips(polar, tmp_path):
    with pytest.raises(RewardInputError, match="references"):
        polar.score(["Q?"], ["A."])
    torch.nn.init.normal_(polar.model.score.weight, std=0.02)
    try:
        expected = polar.score(["What is 2 + 2?", "Name a colour."], ["4", "Blue"], ["Four.", "Red"])
        folder = PolarReward.save(polar.model, polar.tokenizer, tmp_path / "polar", max_length=64)
        loaded = rewards.load(folder)
        assert isinstance(loaded, PolarReward) and rewards.modality(loaded) == "text"
        assert loaded.score(["What is 2 + 2?", "Name a colour."], ["4", "Blue"], ["Four.", "Red"]) == pytest.approx(expected, abs=1e-5)
    finally:
        torch.nn.init.zeros_(polar.model.score.weight)
