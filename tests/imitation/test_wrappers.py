"""The imitation adapter: any TransitionReward drives the environment's reward, the true reward stays in info."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rewardlab import rewards
from rewardlab.imitation import TransitionRewardWrapper, make_reward_vec_env
from rewardlab.models.discriminator import Discriminator
from rewardlab.rewards.discriminator import DiscriminatorReward


@pytest.fixture(scope="module")
def reward(tmp_path_factory):
    """A (randomly initialised) discriminator reward, saved and loaded back the way a trained one is."""
    torch.manual_seed(0)
    folder = DiscriminatorReward.save(Discriminator(3, 1, (32, 32)), tmp_path_factory.mktemp("disc") / "reward",
                                      action_low=[-2.0], action_high=[2.0], absorbing=False)
    return rewards.load(str(folder))


def test_gym_wrapper_replaces_the_reward_and_keeps_the_true_one(reward):
    wrapped, twin = TransitionRewardWrapper(gym.make("Pendulum-v1"), reward), gym.make("Pendulum-v1")
    obs, _ = wrapped.reset(seed=3)
    twin_obs, _ = twin.reset(seed=3)
    rng = np.random.default_rng(0)
    learned, true = [], []
    for t in range(200):
        action = rng.uniform(-2, 2, size=1).astype(np.float32)
        next_obs, r, terminated, truncated, info = wrapped.step(action)
        _, true_r, *_ = twin.step(action)
        assert info["true_reward"] == pytest.approx(true_r)
        assert r == pytest.approx(float(reward.score(obs[None], action[None], next_obs[None], np.zeros(1))[0]), rel=1e-5)
        learned.append(r)
        true.append(true_r)
        obs = next_obs
    assert truncated and info["true_episode_return"] == pytest.approx(sum(true))
    assert np.all(np.asarray(learned) > 0) and not np.allclose(learned, true)  # -log(1 - D) > 0; Pendulum's is < 0


def test_vec_env_wrapper_scores_all_envs_and_reports_true_episode_returns(reward):
    from stable_baselines3.common.env_util import make_vec_env

    env = make_reward_vec_env("Pendulum-v1", reward, n_envs=2, seed=5)
    twin = make_vec_env("Pendulum-v1", n_envs=2, seed=5)
    obs, twin_obs = env.reset(), twin.reset()
    np.testing.assert_array_equal(obs, twin_obs)
    rng = np.random.default_rng(1)
    total = np.zeros(2)
    for t in range(200):
        actions = rng.uniform(-2, 2, size=(2, 1)).astype(np.float32)
        prev = obs
        obs, r, dones, infos = env.step(actions)
        _, true_r, _, _ = twin.step(actions)
        total += true_r
        np.testing.assert_allclose([i["true_reward"] for i in infos], true_r, rtol=1e-6)
        nxt = np.array([i["terminal_observation"] if d else o for o, d, i in zip(obs, dones, infos)])
        np.testing.assert_allclose(r, reward.score(prev, actions, nxt, np.zeros(2)), rtol=1e-5)
    assert dones.all()  # Pendulum's time limit: 200 steps
    np.testing.assert_allclose([i["true_episode_return"] for i in infos], total, rtol=1e-5)
    np.testing.assert_allclose([i["episode"]["r"] for i in infos], total, rtol=1e-4)  # SB3's Monitor sees the true reward too


def test_a_text_reward_is_refused_with_a_clear_message():
    class Text:
        modality = "text"

        def score(self, prompts, responses, references=None):
            return [0.0] * len(prompts)

    with pytest.raises(TypeError, match="not a TransitionReward"):
        TransitionRewardWrapper(gym.make("Pendulum-v1"), Text())


def test_a_discriminator_trained_with_absorbing_states_is_paid_its_absorbing_step_in_the_vec_env(tmp_path):
    """InvertedPendulum terminates when the pole falls. The learner trained D on the absorbing view, where the
    termination leads to the absorbing state and its self-loop is a step of its own; the reused reward must pay it."""
    import torch

    from rewardlab.data.transitions import absorbing_obs
    from rewardlab.models.discriminator import imitation_reward

    torch.manual_seed(0)
    net = Discriminator(obs_dim=5, act_dim=1, hidden=(16,), spectral_norm=True)
    with torch.no_grad():
        net.body[-1].bias.fill_(2.0)  # the absorbing state scores far from zero, so its step is visible in the sum
    folder = DiscriminatorReward.save(net, tmp_path / "d", action_low=[-3.0], action_high=[3.0], absorbing=True)
    reward = rewards.load(folder)
    venv = make_reward_vec_env("InvertedPendulum-v5", reward, n_envs=1, seed=0)
    venv.reset()
    rng = np.random.default_rng(0)
    learned, steps = [], 0
    while True:
        obs, r, dones, infos = venv.step(rng.uniform(-3, 3, size=(1, 1)).astype(np.float32))
        learned.append(float(r[0]))
        steps += 1
        if dones[0]:
            break
    assert venv.observation_space.shape == (5,)  # the flag is on the observations the agent sees
    true_length = infos[0]["episode"]["l"]
    assert steps == true_length + 1  # the absorbing self-loop is a step of its own
    a = absorbing_obs(4)[None]
    with torch.no_grad():
        expected = float(imitation_reward(net(torch.as_tensor(a), torch.zeros(1, 1), torch.as_tensor(a)))[0])
    assert learned[-1] == pytest.approx(expected, rel=1e-5)  # scored with a zeroed action, as in training
    venv.close()
