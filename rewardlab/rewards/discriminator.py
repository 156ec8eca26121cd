"""A trained GAIL discriminator as a TransitionReward: r = -log(1 - sigmoid(D(s, a)) + 1e-8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.data.transitions import scale_actions, to_absorbing, zero_absorbing_actions
from rewardlab.models.discriminator import Discriminator, imitation_reward
from rewardlab.rewards.base import RewardInputError, check_transition_batch
from rewardlab.rewards.registry import read_reward_json, register, write_reward_json


@register("gail_discriminator")
class DiscriminatorReward:
    """Scores raw environment transitions the way the imitation learner rewarded them during training.

    The learner saw actions rescaled to [-1, 1] (Stable-Baselines3 stores them so) and, with absorbing states, an
    extra observation flag; both are applied here, so callers pass the environment's own observations and actions.
    With absorbing states, observations may come either raw (a terminated transition, ``dones`` = 1, then leads to
    the absorbing state) or already flagged by ``rewardlab.envs.absorbing.AbsorbingState``, the learner's own view,
    which also has the absorbing state's self-loop step; only the flagged view pays that step's reward, so
    ``rewardlab.imitation.make_reward_vec_env`` wraps environments that way for such a reward. At the absorbing
    state the action is zeroed, as in training."""

    modality = "transition"

    def __init__(self, net: Discriminator, action_low, action_high, absorbing: bool, device: str = "cpu"):
        self.net = net.to(device).eval()
        self.device = device
        self.low, self.high = np.asarray(action_low, np.float32), np.asarray(action_high, np.float32)
        self.absorbing = absorbing
        self.obs_dim = net.obs_dim - int(absorbing)

    @classmethod
    def from_folder(cls, folder: str | Path, device: str = "cpu", **_: Any) -> DiscriminatorReward:
        from safetensors.torch import load_file

        meta = read_reward_json(folder)
        net = Discriminator(**meta["net"])
        net.load_state_dict(load_file(str(Path(folder) / "model.safetensors")))
        return cls(net, meta["action_low"], meta["action_high"], meta["absorbing"], device=device)

    @staticmethod
    def save(net: Discriminator, folder: str | Path, action_low, action_high, absorbing: bool, **meta: Any) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(folder / "model.safetensors"))
        write_reward_json(folder, "gail_discriminator", net=net.spec(), action_low=np.asarray(action_low).tolist(),
                          action_high=np.asarray(action_high).tolist(), absorbing=absorbing, **meta)
        return folder

    def inputs(self, obs, actions, next_obs, dones):
        """The learner's view of a raw batch: rescaled actions, and the absorbing flag when there is one."""
        obs, actions, next_obs, dones = check_transition_batch(obs, actions, next_obs, dones)
        actions = actions.reshape(len(actions), -1)
        flagged = self.absorbing and obs.shape[1:] == (self.net.obs_dim,) and next_obs.shape[1:] == (self.net.obs_dim,)
        if (obs.shape[1:] != (self.obs_dim,) and not flagged) or actions.shape[1] != self.net.act_dim:
            also = f" (or (N, {self.net.obs_dim}) with the absorbing flag)" if self.absorbing else ""
            raise RewardInputError(f"obs/actions: expected shapes (N, {self.obs_dim}){also} and (N, {self.net.act_dim}), "
                                   f"found {obs.shape} and {actions.shape}")
        actions = scale_actions(actions, self.low, self.high)
        if self.absorbing:
            if not flagged:
                obs, next_obs = to_absorbing(obs, next_obs, dones.reshape(-1) > 0.5)
            actions = zero_absorbing_actions(obs, actions)  # as the learner masks them
        return obs.astype(np.float32), actions, next_obs.astype(np.float32)

    def logits(self, obs, actions, next_obs, dones) -> np.ndarray:
        import torch

        o, a, n = self.inputs(obs, actions, next_obs, dones)
        with torch.inference_mode():
            t = lambda x: torch.as_tensor(x, device=self.device)  # noqa: E731
            return self.net(t(o), t(a), t(n)).cpu().numpy()

    def score(self, obs, actions, next_obs, dones) -> np.ndarray:
        import torch

        return imitation_reward(torch.as_tensor(self.logits(obs, actions, next_obs, dones))).numpy().astype(np.float32)
