"""A transition reward from an MLP on (s, a) or (s, a, s'), read back from a safetensors folder."""

from __future__ import annotations


from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.models.mlp import TransitionMLP
from rewardlab.rewards.base import RewardInputError, check_transition_batch
from rewardlab.rewards.registry import read_reward_json, register, write_reward_json


@register("mlp_transition")
class MLPTransitionReward:
    """Scores batches of transitions with a small MLP; ``dones`` are accepted and ignored."""

    modality = "transition"

    def __init__(self, net: TransitionMLP, device: str = "cpu"):
        self.net = net.to(device).eval()
        self.device = device

    @classmethod
    def from_folder(cls, folder: str | Path, device: str = "cpu", **_: Any) -> MLPTransitionReward:
        from safetensors.torch import load_file

        meta = read_reward_json(folder)
        net = TransitionMLP(**meta["net"])
        net.load_state_dict(load_file(str(Path(folder) / "model.safetensors")))
        return cls(net, device=device)

    @staticmethod
    def save(net: TransitionMLP, folder: str | Path, **meta: Any) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "model.safetensors"))
        write_reward_json(folder, "mlp_transition", net=net.spec(), **meta)
        return folder

    def score(self, obs, actions, next_obs, dones) -> np.ndarray:
        import torch

        obs, actions, next_obs, _ = check_transition_batch(obs, actions, next_obs, dones)
        if obs.shape[1:] != (self.net.obs_dim,) or actions.reshape(len(actions), -1).shape[1] != self.net.act_dim:
            raise RewardInputError(
                f"obs/actions: expected shapes (N, {self.net.obs_dim}) and (N, {self.net.act_dim}), "
                f"found {obs.shape} and {actions.shape}"
            )
        with torch.inference_mode():
            t = lambda a: torch.as_tensor(a, device=self.device)  # noqa: E731
            out = self.net(t(obs), t(actions.reshape(len(actions), -1)), t(next_obs))
        return out.cpu().numpy().astype(np.float32)

