"""A small MLP reward on transitions, with the input normalisation stored in its state dict."""

from __future__ import annotations

import torch
from torch import nn


class TransitionMLP(nn.Module):
    """r(s, a) or r(s, a, s'): an MLP with its own input standardisation (saved as buffers)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] | list[int] = (64, 64), use_next_obs: bool = False):
        super().__init__()
        self.obs_dim, self.act_dim, self.hidden, self.use_next_obs = obs_dim, act_dim, tuple(hidden), use_next_obs
        in_dim = n_in = obs_dim * (2 if use_next_obs else 1) + act_dim
        layers: list[nn.Module] = []
        for width in self.hidden:
            layers += [nn.Linear(in_dim, width), nn.Tanh()]
            in_dim = width
        layers.append(nn.Linear(in_dim, 1))
        self.body = nn.Sequential(*layers)
        self.register_buffer("in_mean", torch.zeros(n_in))
        self.register_buffer("in_std", torch.ones(n_in))

    def spec(self) -> dict:
        """Constructor arguments, stored in reward.json so the module can be rebuilt without pickling."""
        return {"obs_dim": self.obs_dim, "act_dim": self.act_dim, "hidden": list(self.hidden), "use_next_obs": self.use_next_obs}

    def features(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor | None = None) -> torch.Tensor:
        parts = [obs, actions] + ([next_obs] if self.use_next_obs else [])
        return torch.cat([p.float() for p in parts], dim=-1)

    def set_normalisation(self, x: torch.Tensor) -> None:
        self.in_mean.copy_(x.mean(0))
        self.in_std.copy_(x.std(0).clamp_min(1e-6))

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor | None = None) -> torch.Tensor:
        x = (self.features(obs, actions, next_obs) - self.in_mean) / self.in_std
        return self.body(x).squeeze(-1)
