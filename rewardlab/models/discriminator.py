"""GAIL discriminator on transitions, its local-Lipschitz gradient penalty, and the forward model of pessimistic
reward preconditioning (Blondé et al., "Lipschitzness Is All You Need To Tame Off-policy GAIL").

The discriminator reads a feature vector x = [s, a] (or [s, s']) standardised with statistics stored as buffers and
clamped to [-5, 5] as liayn-pytorch clamps its standardised inputs (a feature with near-zero expert variance, such
as an absorbing flag the expert never sets, would otherwise reach ~1000). "The discriminator's input" is that
vector, so the penalty's k = 1 is in standardised units whatever the task's scales. Expert = 1 (or a label drawn
from a range, liayn's smoothing), agent = 0; the imitation reward is -log(1 - sigmoid(D) + 1e-8).
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
from torch import nn
from torch.nn import functional as F

Variant = Literal["wgan", "dragan", "nagard", "none"]
EPS = 1e-8
CLAMP = 5.0  # standardised inputs are clamped to [-CLAMP, CLAMP] (liayn-pytorch's STANDARDIZED_OB_CLAMPS)


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, spectral: bool) -> nn.Sequential:
    """Linear layers with LeakyReLU(0.1) between them. ``spectral`` puts spectral norm on the HIDDEN layers only,
    as liayn-pytorch does: the output layer stays plain, so D is not 1-Lipschitz by construction and the gradient
    penalty still has something to bind (with every layer normalised, ||grad D|| <= 1 and a k = 1 penalty is 0)."""
    layers: list[nn.Module] = []
    for i, width in enumerate((*hidden, out_dim)):
        linear = nn.Linear(in_dim, width)
        hidden_layer = i < len(hidden)
        layers += [nn.utils.parametrizations.spectral_norm(linear) if spectral and hidden_layer else linear, nn.LeakyReLU(0.1)]
        in_dim = width
    return nn.Sequential(*layers[:-1])


class Discriminator(nn.Module):
    """D(s, a) or D(s, s'): logits, high for expert-like transitions."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] | list[int] = (100, 100),
                 inputs: Literal["sa", "ss"] = "sa", spectral_norm: bool = True):
        super().__init__()
        self.obs_dim, self.act_dim, self.hidden, self.inputs, self.spectral_norm = obs_dim, act_dim, tuple(hidden), inputs, spectral_norm
        self.in_dim = obs_dim + (act_dim if inputs == "sa" else obs_dim)
        self.body = mlp(self.in_dim, self.hidden, 1, spectral_norm)
        self.register_buffer("in_mean", torch.zeros(self.in_dim))
        self.register_buffer("in_std", torch.ones(self.in_dim))

    def spec(self) -> dict:
        """Constructor arguments, stored in reward.json so the module is rebuilt without pickling."""
        return {"obs_dim": self.obs_dim, "act_dim": self.act_dim, "hidden": list(self.hidden), "inputs": self.inputs,
                "spectral_norm": self.spectral_norm}

    def features(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """The standardised, clamped input x the network and the penalty see."""
        raw = torch.cat([obs.float(), (actions if self.inputs == "sa" else next_obs).float()], dim=-1)
        return ((raw - self.in_mean) / self.in_std).clamp(-CLAMP, CLAMP)

    def set_normalisation(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor, raw_columns=()) -> None:
        """Standardise with these (expert) statistics; ``raw_columns`` (e.g. absorbing flags) pass unchanged, as in
        liayn-pytorch, which standardises the state and appends the flag after."""
        raw = torch.cat([obs.float(), (actions if self.inputs == "sa" else next_obs).float()], dim=-1)
        self.in_mean.copy_(raw.mean(0))
        self.in_std.copy_(raw.std(0).clamp_min(1e-3))
        for c in raw_columns:
            self.in_mean[c], self.in_std[c] = 0.0, 1.0

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """D on standardised features (what the gradient penalty differentiates)."""
        return self.body(x).squeeze(-1)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(obs, actions, next_obs))


def imitation_reward(logits: torch.Tensor) -> torch.Tensor:
    """-log(1 - D + 1e-8) with D = sigmoid(logits): positive, large where the transition looks expert."""
    return -torch.log(1 - torch.sigmoid(logits) + EPS)


def penalty_points(variant: Variant, expert: torch.Tensor, agent: torch.Tensor, noise_std: float = 0.5,
                   split: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor | None:
    """Where the gradient penalty is evaluated (standardised features, one row per pair of samples).

    wgan: u * expert + (1 - u) * agent with u ~ U(0, 1) per row, drawn separately for the first ``split`` columns
    (the state) and the rest (the action or next state); dragan: expert + N(0, noise_std^2); nagard: agent + noise;
    none: no points (no penalty)."""
    if variant == "none":
        return None
    if variant == "wgan":
        n = min(len(expert), len(agent))
        expert, agent = expert[:n], agent[:n]
        u = torch.rand(n, 1, generator=generator, device=expert.device).expand(n, expert.shape[1]).clone()
        if split is not None and 0 < split < expert.shape[1]:
            u[:, split:] = torch.rand(n, 1, generator=generator, device=expert.device)
        return u * expert + (1 - u) * agent
    base = {"dragan": expert, "nagard": agent}.get(variant)
    if base is None:
        raise ValueError(f"penalty variant must be one of wgan, dragan, nagard, none; found {variant!r}")
    return base + noise_std * torch.randn(base.shape, generator=generator, device=base.device)


def gradient_norms(fn: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """Per-row ||d fn(x) / dx|| at ``points`` (fn maps rows to one scalar each)."""
    x = points.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(x).sum(), x, create_graph=create_graph)
    return grad.norm(dim=-1)


def gradient_penalty(fn: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor, k: float = 1.0, lam: float = 10.0,
                     one_sided: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(penalty, gradient norms). One-sided: lam * mean(max(0, ||grad|| - k)^2); two-sided: lam * mean((||grad|| - k)^2)."""
    norms = gradient_norms(fn, points)
    gap = (norms - k).clamp_min(0) if one_sided else norms - k
    return lam * gap.pow(2).mean(), norms.detach()


def discriminator_loss(disc: Discriminator, expert: torch.Tensor, agent: torch.Tensor, variant: Variant = "wgan",
                       k: float = 1.0, lam: float = 10.0, one_sided: bool = True, entropy_coef: float = 1e-3,
                       noise_std: float = 0.5, split: int | None = None, generator: torch.Generator | None = None,
                       expert_labels: tuple[float, float] = (1.0, 1.0)):
    """BCE (expert = a label drawn from U(expert_labels), 1 by default; agent = 0) - entropy_coef * mean Bernoulli
    entropy + the gradient penalty; features in, (loss, stats) out, where stats are floats to log.
    liayn-pytorch's MuJoCo setting smooths the expert labels to U(0.7, 1.2)."""
    e_logits, a_logits = disc.logits(expert), disc.logits(agent)
    low, high = expert_labels
    e_target = low + (high - low) * torch.rand(e_logits.shape, generator=generator, device=e_logits.device) if high > low \
        else torch.full_like(e_logits, low)
    bce = F.binary_cross_entropy_with_logits(e_logits, e_target) + \
        F.binary_cross_entropy_with_logits(a_logits, torch.zeros_like(a_logits))
    logits = torch.cat([e_logits, a_logits])
    entropy = (F.softplus(logits) - torch.sigmoid(logits) * logits).mean()  # Bernoulli entropy in nats
    loss = bce - entropy_coef * entropy
    stats = {"bce": bce.item(), "entropy": entropy.item(),
             "expert_acc": (e_logits > 0).float().mean().item(), "agent_acc": (a_logits < 0).float().mean().item()}
    points = penalty_points(variant, expert, agent, noise_std, split, generator)
    if points is not None:
        penalty, norms = gradient_penalty(disc.logits, points, k, lam, one_sided)
        loss = loss + penalty
        stats |= {"penalty": penalty.item(), "grad_norm": norms.mean().item()}
    else:
        with torch.enable_grad():
            stats["grad_norm"] = float(gradient_norms(disc.logits, torch.cat([expert, agent]), create_graph=False).mean())
        stats["penalty"] = 0.0
    stats["accuracy"] = (stats["expert_acc"] + stats["agent_acc"]) / 2
    return loss, stats


class ForwardModel(nn.Module):
    """f(s, a) -> s', for pessimistic reward preconditioning: where f is steep, the reward is trusted less."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] | list[int] = (100, 100)):
        super().__init__()
        self.body = mlp(obs_dim + act_dim, tuple(hidden), obs_dim, spectral=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def steepness(self, x: torch.Tensor, target: float = 1.0) -> torch.Tensor:
        """Per-row pen_f = max(0, ||d sum_j f_j(x) / dx|| - target)^2 (the gradient of the summed outputs stands in
        for the Jacobian: one backward pass instead of one per output)."""
        with torch.enable_grad():
            norms = gradient_norms(lambda z: self.body(z).sum(-1), x, create_graph=False)
        return (norms - target).clamp_min(0).pow(2)
