"""Issue 28, item 14: every text reward's ``score`` takes one item (a string, or one chat as a list of messages) as
well as a batch, and returns a list of one float; one item mixed with a batch is refused with a message saying so."""

from __future__ import annotations

import pytest
import torch

from rewardlab import backbones, rewards
from rewardlab.models.scalar_head import build_scalar_rm
from rewardlab.rewards import GoalTextReward, PolarReward, RewardInputError, ScalarTextReward
from rewardlab.rewards.polar import add_polar_tokens

USER = [{"role": "user", "content": "What is 3 + 4?"}]
ASSISTANT = [{"role": "assistant", "content": "7"}]


@pytest.fixture(scope="module")
def minilm():
    """An untrained scalar reward on the embedded MiniLM (these tests are about the inputs, not about quality)."""
    torch.manual_seed(0)
    tokenizer = backbones.load_tokenizer(backbones.MINILM)
    return ScalarTextReward(build_scalar_rm(backbones.MINILM, tokenizer), tokenizer, max_length=48, template="plain", device="cpu")


@pytest.fixture(scope="module")
def smollm2():
    """One SmolLM2 classifier shared by a POLAR and a goal-conditioned reward (both need a causal LM's per-token head)."""
    torch.manual_seed(0)
    tokenizer = backbones.load_tokenizer(backbones.SMOLLM2)
    model = build_scalar_rm(backbones.SMOLLM2, tokenizer)
    add_polar_tokens(tokenizer, model)
    return model, tokenizer


def test_a_string_prompt_and_a_string_response_are_one_item(minilm):
    one = minilm.score("What is 3 + 4?", "7")
    assert isinstance(one, list) and len(one) == 1
    assert one == pytest.approx(minilm.score(["What is 3 + 4?"], ["7"]), abs=1e-6)
    assert minilm.score("What is 3 + 4?", "8") != pytest.approx(one, abs=1e-6)  # the response is read, not its characters


def test_one_chat_as_a_message_list_is_one_item(minilm):
    batch = minilm.score([USER], [ASSISTANT])
    assert len(batch) == 1
    assert minilm.score(USER, ASSISTANT) == pytest.approx(batch, abs=1e-6)
    assert minilm.score(USER, "7") == pytest.approx(minilm.score([USER], ["7"]), abs=1e-6)
    # a list of chats stays a batch, even of one
    assert len(minilm.score([USER, USER], [ASSISTANT, "8"])) == 2


@pytest.mark.parametrize("prompts, responses, needle", [
    pytest.param("What is 3 + 4?", ["7", "8"], "prompts is a single string but responses is a list of 2", id="one-prompt-two-responses"),
    pytest.param(["a", "b"], "7", "responses is a single string but prompts is a list of 2", id="two-prompts-one-response"),
    pytest.param(USER, ["7", "8"], "prompts is a single chat", id="one-chat-two-responses"),
    pytest.param({"role": "user", "content": "hi"}, "7", "one message dict", id="a-bare-message"),
])
def test_one_item_mixed_with_a_batch_is_refused_saying_lists_are_needed(minilm, prompts, responses, needle):
    with pytest.raises(RewardInputError, match="list") as err:
        minilm.score(prompts, responses)
    assert needle in str(err.value)


@pytest.mark.parametrize("prompts, responses", [(7, [7]), (7, "7")])
def test_a_prompt_that_is_neither_a_chat_nor_a_list_names_the_field(minilm, prompts, responses):
    with pytest.raises(RewardInputError, match="prompts: expected a list of chats"):
        minilm.score(prompts, responses)


def test_polar_and_goal_rewards_take_one_item(smollm2):
    model, tokenizer = smollm2
    polar = PolarReward(model, tokenizer, max_length=64, device="cpu")
    one = polar.score("What is 3 + 4?", "7", "Seven.")
    assert len(one) == 1 and one == pytest.approx(polar.score(["What is 3 + 4?"], ["7"], ["Seven."]), abs=1e-5)
    with pytest.raises(RewardInputError, match="references is a list of 2"):
        polar.score("What is 3 + 4?", "7", ["Seven.", "7"])
    goal = GoalTextReward(model, tokenizer, goal_state=torch.ones(model.config.hidden_size), max_length=64, device="cpu")
    assert goal.score(USER, ASSISTANT) == pytest.approx(goal.score([USER], [ASSISTANT]), abs=1e-5)
    q_one, q_batch = goal.q_values("What is 3 + 4?", "7"), goal.q_values(["What is 3 + 4?"], ["7"])
    assert len(q_one) == 1 and q_one[0] == pytest.approx(q_batch[0], abs=1e-5)


def test_the_remote_reward_takes_one_item_and_drops_references_its_reward_ignores(minilm, serve_reward):
    with serve_reward(minilm) as url:
        remote = rewards.load(url)
        assert remote.uses_references is False
        assert remote.score("What is 3 + 4?", "7") == pytest.approx(minilm.score(["What is 3 + 4?"], ["7"]), abs=1e-4)
        # as a local reward that does not use references ignores them, so does the remote one (the server refuses them)
        assert remote.score(["What is 3 + 4?"], ["7"], ["Seven."]) == pytest.approx(minilm.score(["What is 3 + 4?"], ["7"]), abs=1e-4)
        with pytest.raises(RewardInputError, match="lists"):
            remote.score("What is 3 + 4?", ["7", "8"])
