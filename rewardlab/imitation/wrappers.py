"""Put any TransitionReward into an environment: the gymnasium wrapper (``rewardlab.envs.reward``, re-exported by
this package) and an SB3 VecEnv wrapper.

Both replace the environment's reward with ``reward.score(obs, action, next_obs, terminated)`` and keep the
environment's own reward in ``info["true_reward"]`` (and, for whole episodes, ``info["true_episode_return"]``), so
an agent trains on the learned reward while evaluation still reads the true one. Only ``rewards/`` and ``envs/`` are imported:
any TransitionReward works, local, from MLflow, or remote.
"""

from __future__ import annotations

import numpy as np


def reward_vec_env_class():
    """``TransitionRewardVecEnv``, an SB3 VecEnvWrapper (built lazily: SB3 is imported only when it is used)."""
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class TransitionRewardVecEnv(VecEnvWrapper):
        """A vectorised environment whose rewards come from ``reward``, scored for all sub-environments at once.

        On an episode end SB3 resets the sub-environment and returns the new first observation; the transition is
        scored with ``info["terminal_observation"]``, the real last observation."""

        def __init__(self, venv, reward):
            super().__init__(venv)
            self.reward = reward
            self._obs = None
            self._actions = None
            self._returns = np.zeros(venv.num_envs)

        def reset(self):
            self._obs = self.venv.reset()
            self._returns[:] = 0
            return self._obs

        def step_async(self, actions):
            self._actions = np.asarray(actions)
            self.venv.step_async(actions)

        def step_wait(self):
            obs, true_rewards, dones, infos = self.venv.step_wait()
            next_obs = np.array(obs, copy=True)
            terminated = np.zeros(len(dones))
            for i, (done, info) in enumerate(zip(dones, infos)):
                if done:
                    next_obs[i] = info["terminal_observation"]
                    terminated[i] = float(not info.get("TimeLimit.truncated", False))
            learned = self.reward.score(self._obs, self._actions.reshape(len(dones), -1), next_obs, terminated)
            self._returns += true_rewards
            for i, info in enumerate(infos):
                info["true_reward"] = float(true_rewards[i])
                if dones[i]:
                    info["true_episode_return"] = float(self._returns[i])
                    self._returns[i] = 0
            self._obs = obs
            return obs, np.asarray(learned, np.float32), dones, infos

    return TransitionRewardVecEnv


def make_reward_vec_env(env_id: str, reward, n_envs: int = 1, seed: int = 0):
    """SB3-ready: ``n_envs`` copies of ``env_id`` (with SB3's Monitor, which logs the true episode return) whose
    rewards come from ``reward``. ``reward`` is a TransitionReward or anything ``rewards.load`` accepts.

    A reward trained with absorbing states (``reward.absorbing``, e.g. a GAIL discriminator) gets environments
    wrapped in ``AbsorbingState``, the view it was trained on: a termination leads to the absorbing state, whose
    self-loop step is paid its reward too, so the agent optimises the objective the discriminator was trained for."""
    from stable_baselines3.common.env_util import make_vec_env

    if isinstance(reward, str):
        from rewardlab import rewards

        reward = rewards.load(reward)
    wrapper = None
    if getattr(reward, "absorbing", False):
        from rewardlab.envs.absorbing import AbsorbingState as wrapper
    return reward_vec_env_class()(make_vec_env(env_id, n_envs=n_envs, seed=seed, wrapper_class=wrapper), reward)
