"""Lipschitz off-policy GAIL on SB3: relabelling uses the current discriminator, absorbing states, a short real run."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rewardlab import learners, recipes, rewards, tracking
from rewardlab.envs.absorbing import AbsorbingState
from rewardlab.learners import lipschitz_gail as lg
from rewardlab.models.discriminator import imitation_reward

FAST = ["agent.total_steps=1600", "agent.learning_starts=400", "eval.every=800", "eval.episodes=1", "demos.episodes=4",
        "discriminator.update_every=1"]


@pytest.fixture(scope="module")
def trained(module_workdir):
    config, text, _ = recipes.load("gail_pendulum", FAST)
    return learners.train(config, recipe_text=text), config


def test_relabelling_reads_the_current_discriminator_not_the_stored_reward():
    from stable_baselines3 import SAC

    config, _, _ = recipes.load("gail_pendulum", FAST)
    env = lg.make_env("Pendulum-v1", False, seed=0)
    rng = np.random.default_rng(0)
    expert = tuple(rng.normal(size=(64, d)).astype(np.float32) for d in (3, 1, 3))
    gail = lg.GAIL(config, 3, 1, expert)
    model = SAC("MlpPolicy", env, buffer_size=1000, learning_starts=10, replay_buffer_class=lg.replay_buffer_class(), device="cpu", seed=0)
    buffer = model.replay_buffer
    obs, _ = env.reset(seed=0)
    for _ in range(50):
        action = env.action_space.sample()
        nxt, r, term, trunc, info = env.step(action)
        buffer.add(obs[None], nxt[None], (action / 2)[None], np.array([1234.0]), np.array([term]), [info])  # a stored reward no one may read
        obs = nxt
    with pytest.raises(RuntimeError, match="no reward_fn"):
        buffer.sample(4)
    buffer.reward_fn = gail.rewards

    def expected(batch):
        with torch.no_grad():
            return imitation_reward(gail.disc(batch.observations, batch.actions, batch.next_observations)).unsqueeze(1)

    np.random.seed(0)
    before = buffer.sample(32)
    assert not torch.any(before.rewards == 1234.0)
    torch.testing.assert_close(before.rewards, expected(before))
    for _ in range(20):  # train the discriminator: the same transitions must now get the new discriminator's rewards
        gail.update(buffer.sample_transitions)
    np.random.seed(0)
    after = buffer.sample(32)
    torch.testing.assert_close(after.observations, before.observations)
    torch.testing.assert_close(after.rewards, expected(after))
    assert not torch.allclose(after.rewards, before.rewards)


def test_absorbing_state_wrapper_and_expert_conversion():
    env = AbsorbingState(gym.make("InvertedPendulum-v5"))  # falls over quickly under random actions
    obs, _ = env.reset(seed=0)
    assert obs.shape == (5,) and obs[-1] == 0
    for t in range(1000):
        obs, r, terminated, truncated, info = env.step(np.array([3.0], np.float32))  # push hard: it falls
        assert not terminated  # a real termination becomes the absorbing state, never a terminal flag
        if obs[-1] == 1:
            break
    np.testing.assert_array_equal(obs, lg.absorbing_obs(4))
    obs, r, terminated, truncated, info = env.step(np.array([0.0], np.float32))
    assert truncated and r == 0.0 and info["absorbing"]
    np.testing.assert_array_equal(obs, lg.absorbing_obs(4))

    class Demo:  # two transitions, the second terminal
        obs = np.ones((2, 4), np.float32)
        actions = np.full((2, 1), 3.0, np.float32)
        next_obs = np.ones((2, 4), np.float32) * 2
        terminated = np.array([False, True])
        episode = np.zeros(2, np.int64)

    o, a, n = lg.expert_arrays(Demo, np.array([-3.0], np.float32), np.array([3.0], np.float32), absorbing=True)
    assert o.shape == (3, 5) and np.all(a[:2] == 1.0) and a[2, 0] == 0.0  # actions rescaled to [-1, 1]; zero at absorbing
    np.testing.assert_array_equal(n[1], lg.absorbing_obs(4))  # terminal -> absorbing
    np.testing.assert_array_equal(o[2], lg.absorbing_obs(4))
    np.testing.assert_array_equal(n[2], lg.absorbing_obs(4))  # absorbing loops on itself


def test_short_run_trains_a_discriminator_that_prefers_expert_transitions(trained):
    result, config = trained
    curve = result["curve"]
    assert [p["env_steps"] for p in curve] == [800, 1600]
    last = curve[-1]
    assert last["disc_accuracy"] > 0.6  # better than chance at telling expert from agent
    assert last["disc_penalty"] >= 0 and 0 < last["disc_grad_norm"] < 5
    from rewardlab.data.expert_demos import ExpertDemosConfig, load_demos

    demos = load_demos(ExpertDemosConfig())
    reward = rewards.load(result["model_uri"])
    assert isinstance(reward, rewards.TransitionReward)
    rng = np.random.default_rng(0)
    n = len(demos.obs)
    random_actions = rng.uniform(-2, 2, size=(n, 1)).astype(np.float32)
    expert_r = reward.score(demos.obs, demos.actions, demos.next_obs, np.zeros(n))
    random_r = reward.score(demos.obs, random_actions, demos.next_obs, np.zeros(n))
    assert expert_r.mean() > random_r.mean()  # the expert's own action scores above a random one in the same state


def test_run_is_tracked_with_curves_penalty_and_plots(trained):
    result, _ = trained
    true_return = tracking.metric_history(result["run_id"], "eval/true_return")
    assert [s for s, _ in true_return] == [800, 1600]
    assert len(tracking.metric_history(result["run_id"], "train/disc_accuracy")) == 2
    assert len(tracking.metric_history(result["run_id"], "train/disc_grad_norm")) == 2
    assert tracking.metric_history(result["run_id"], "train/disc_penalty")
    artifacts = tracking.list_artifacts(result["run_id"], "plots")
    assert any(a.endswith("learning_curves.png") for a in artifacts)
    assert result["metrics"]["expert_return"] > result["metrics"]["random_return"]


def test_bad_settings_are_reported_with_the_key():
    with pytest.raises(recipes.RecipeError, match="penalty.variant"):
        recipes.load("gail_pendulum", ["penalty.variant=gp"])


def test_pessimistic_preconditioning_scales_the_reward_by_kappa_within_its_floor():
    config, _, _ = recipes.load("gail_pendulum", FAST + ["precondition.enabled=true", "precondition.target=0.5"])
    plain_cfg, _, _ = recipes.load("gail_pendulum", FAST)
    rng = np.random.default_rng(0)
    expert = tuple(rng.normal(size=(64, d)).astype(np.float32) for d in (3, 1, 3))
    torch.manual_seed(0)
    pessimistic = lg.GAIL(config, 3, 1, expert)
    torch.manual_seed(0)
    plain = lg.GAIL(plain_cfg, 3, 1, expert)  # same discriminator weights, no forward model
    obs, act = (torch.as_tensor(rng.normal(size=(256, d)).astype(np.float32)) for d in (3, 1))
    nxt = 3 * torch.sin(2 * obs) + act  # dynamics steeper in some places than others
    batch = lambda n: (obs[:n], act[:n], nxt[:n])  # noqa: E731
    for _ in range(200):  # the forward model learns s' = f(s, a), and with it where the dynamics are steep
        pessimistic.update(batch)
        plain.update(batch)
    scaled, base = pessimistic.rewards(obs, act, nxt), plain.rewards(obs, act, nxt)
    kappa = (scaled / base).squeeze(1)
    assert bool((kappa >= 0.7 - 1e-5).all()) and bool((kappa <= 1 + 1e-5).all())
    assert float(kappa.min()) < 0.999  # steep regions are trusted less
    assert 0.7 - 1e-5 <= pessimistic.last_kappa <= 1.0


def test_state_only_discriminator_reward_sends_terminal_transitions_to_the_absorbing_state(tmp_path):
    from rewardlab.models.discriminator import Discriminator
    from rewardlab.rewards.discriminator import DiscriminatorReward

    torch.manual_seed(0)
    net = Discriminator(5, 1, (16,), inputs="ss")  # D(s, s') with the absorbing flag: 4 observation dims + 1
    reward = rewards.load(str(DiscriminatorReward.save(net, tmp_path / "r", [-3.0], [3.0], absorbing=True)))
    obs, act, nxt = np.ones((2, 4), np.float32), np.zeros((2, 1), np.float32), np.full((2, 4), 2.0, np.float32)
    _, _, seen = reward.inputs(obs, act, nxt, np.array([0.0, 1.0]))
    np.testing.assert_array_equal(seen[0], [2, 2, 2, 2, 0])
    np.testing.assert_array_equal(seen[1], lg.absorbing_obs(4))
    scores = reward.score(obs, act, nxt, np.array([0.0, 1.0]))
    assert scores.shape == (2,) and scores[0] != scores[1] and np.all(scores > 0)
    with pytest.raises(rewards.RewardInputError, match=r"expected shapes \(N, 4\)"):
        reward.score(np.ones((2, 3)), act, np.ones((2, 3)), np.zeros(2))


def test_liayn_discriminator_settings_subsample_the_demos_and_pass_over_them_once_per_update():
    config, _, _ = recipes.load("gail_pendulum", FAST + ["discriminator.steps_per_update=0", "discriminator.batch_size=16",
                                                         "discriminator.expert_labels=[0.7,1.2]"])
    episode = np.repeat(np.arange(3), 100)
    idx = lg.subsample_indices(episode, np.zeros(300, bool), 20, np.random.default_rng(0))
    assert len(idx) == 15 and all(np.diff(idx[episode[idx] == e]).tolist() == [20] * 4 for e in range(3))
    keep = np.zeros(300, bool)
    keep[[99, 199]] = True  # terminations are always kept, so their absorbing rows survive the subsampling
    assert {99, 199} <= set(lg.subsample_indices(episode, keep, 20, np.random.default_rng(0)).tolist())
    rng = np.random.default_rng(0)
    expert = tuple(rng.normal(size=(100, d)).astype(np.float32) for d in (3, 1, 3))
    gail = lg.GAIL(config, 3, 1, expert)
    calls = []

    def sample(n):
        calls.append(n)
        return tuple(torch.as_tensor(rng.normal(size=(n, d)).astype(np.float32)) for d in (3, 1, 3))

    stats = gail.update(sample)
    assert calls == [16] * 6 and stats["steps"] == 6.0  # 100 expert rows in batches of 16, the last partial one dropped
