"""The GAIL discriminator's gradient penalty and its point sets, on functions whose gradients are known."""

from __future__ import annotations

import pytest
import torch

from rewardlab.models.discriminator import Discriminator, discriminator_loss, gradient_penalty, imitation_reward, penalty_points


@pytest.mark.parametrize("w_norm, one_sided, expected", [(3.0, True, 10 * 2.0**2), (3.0, False, 10 * 2.0**2),
                                                         (0.5, True, 0.0), (0.5, False, 10 * 0.5**2)])
def test_penalty_of_a_linear_function_with_a_known_gradient_norm(w_norm, one_sided, expected):
    w = torch.randn(5)
    w = w / w.norm() * w_norm  # f(x) = w.x has |grad f| = |w| everywhere
    points = torch.randn(64, 5)
    penalty, norms = gradient_penalty(lambda x: x @ w, points, k=1.0, lam=10.0, one_sided=one_sided)
    torch.testing.assert_close(norms, torch.full((64,), w_norm), rtol=1e-5, atol=1e-5)
    assert float(penalty) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_penalty_of_a_quadratic_matches_its_pointwise_gradient_norms():
    points = torch.randn(200, 3) * 2  # f(x) = |x|^2 / 2 has grad x: norm |x|
    penalty, _ = gradient_penalty(lambda x: 0.5 * (x**2).sum(-1), points, k=1.0, lam=10.0, one_sided=True)
    expected = 10 * ((points.norm(dim=-1) - 1).clamp_min(0) ** 2).mean()
    assert float(penalty) == pytest.approx(float(expected), rel=1e-5)


def test_wgan_points_interpolate_each_pair_block_by_block():
    g = torch.Generator().manual_seed(0)
    expert, agent = torch.randn(100, 5, generator=g), torch.randn(100, 5, generator=g) + 3
    points = penalty_points("wgan", expert, agent, split=3, generator=g)
    for block in (slice(0, 3), slice(3, 5)):
        u = (points[:, block] - agent[:, block]) / (expert[:, block] - agent[:, block])
        assert torch.allclose(u, u[:, :1].expand_as(u), atol=1e-4)  # one mix per row and block: on the segment
        assert bool(((u >= -1e-5) & (u <= 1 + 1e-5)).all())
    u_state = ((points[:, 0] - agent[:, 0]) / (expert[:, 0] - agent[:, 0]))
    u_action = ((points[:, 3] - agent[:, 3]) / (expert[:, 3] - agent[:, 3]))
    assert not torch.allclose(u_state, u_action)  # state and action mixes are drawn separately
    assert 0.3 < float(u_state.mean()) < 0.7 and float(u_state.std()) > 0.2  # spread over [0, 1]


def test_dragan_points_sit_around_the_expert_and_nagard_around_the_agent():
    g = torch.Generator().manual_seed(1)
    expert, agent = torch.zeros(500, 4), torch.full((500, 4), 10.0)
    dragan = penalty_points("dragan", expert, agent, noise_std=0.5, generator=g)
    nagard = penalty_points("nagard", expert, agent, noise_std=0.5, generator=g)
    assert float((dragan - expert).mean().abs()) < 0.05 and float((dragan - expert).std()) == pytest.approx(0.5, rel=0.1)
    assert float((nagard - agent).mean().abs()) < 0.05 and float((nagard - agent).std()) == pytest.approx(0.5, rel=0.1)
    assert penalty_points("none", expert, agent) is None
    with pytest.raises(ValueError, match="wgan, dragan, nagard, none"):
        penalty_points("gp", expert, agent)


def test_training_separates_expert_from_agent_and_the_penalty_keeps_the_gradient_small():
    def train(variant):
        torch.manual_seed(0)
        disc = Discriminator(3, 1, hidden=(64, 64), spectral_norm=False)
        opt = torch.optim.Adam(disc.parameters(), lr=3e-3)
        g = torch.Generator().manual_seed(0)
        first = None
        for _ in range(300):
            expert = torch.randn(128, 4, generator=g) * 0.3 + 1.0
            agent = torch.randn(128, 4, generator=g) * 0.3 - 1.0
            loss, stats = discriminator_loss(disc, expert, agent, variant, generator=g)
            first = first if first is not None else stats["bce"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        return first, stats

    first, free = train("none")
    _, tamed = train("wgan")
    assert free["bce"] < first / 4 and free["accuracy"] > 0.95  # the classes are separable
    assert tamed["accuracy"] > 0.95
    assert tamed["grad_norm"] < free["grad_norm"] / 2 and tamed["grad_norm"] < 1.5  # locally ~1-Lipschitz
    assert tamed["penalty"] > 0 and free["penalty"] == 0


def test_the_imitation_reward_grows_with_the_logit():
    r = imitation_reward(torch.tensor([-5.0, 0.0, 5.0]))
    assert float(r[0]) < float(r[1]) < float(r[2]) and float(r[0]) > 0


def test_spectral_norm_leaves_the_output_layer_plain_so_the_penalty_can_bind():
    """liayn-pytorch normalises the hidden layers only: D is not 1-Lipschitz by construction, so a steep output
    layer makes ||grad D|| > 1 and the one-sided k = 1 penalty positive (with every layer normalised it would be 0)."""
    torch.manual_seed(0)
    disc = Discriminator(3, 1, hidden=(32, 32), spectral_norm=True)
    head = disc.body[-1]
    assert isinstance(head, torch.nn.Linear) and not hasattr(head, "parametrizations")
    assert all(hasattr(layer, "parametrizations") for layer in disc.body if isinstance(layer, torch.nn.Linear) and layer is not head)
    with torch.no_grad():
        head.weight.mul_(50.0)
    disc.eval()
    penalty, norms = gradient_penalty(disc.logits, torch.randn(256, 4), k=1.0, lam=10.0, one_sided=True)
    assert float(norms.mean()) > 1.5 and float(penalty) > 0.1


def test_standardised_inputs_are_clamped_and_flags_pass_unstandardised():
    disc = Discriminator(2, 1, hidden=(8,), spectral_norm=False)
    obs = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.1, 0.0]])  # column 1 is a flag the expert never sets
    actions = torch.tensor([[0.5], [0.6], [0.7]])
    disc.set_normalisation(obs, actions, obs)
    x = disc.features(torch.tensor([[0.0, 1.0]]), torch.tensor([[100.0]]), obs[:1])
    assert float(x[0, 1]) == 5.0 and float(x[0, 2]) == 5.0  # without the clamp: 1 / 1e-3 = 1000 and ~1000
    disc.set_normalisation(obs, actions, obs, raw_columns=[1])
    assert float(disc.features(torch.tensor([[0.0, 1.0]]), actions[:1], obs[:1])[0, 1]) == 1.0


def test_expert_label_smoothing_draws_labels_from_the_range():
    disc = Discriminator(1, 1, hidden=(4,), spectral_norm=False)
    with torch.no_grad():
        disc.body[-1].bias.fill_(20.0)  # every logit about 20: BCE(20, y) = 20 (1 - y) + softplus(-20)
        disc.body[-1].weight.zero_()
    expert, agent = torch.zeros(4000, 2), torch.zeros(1, 2)
    g = torch.Generator().manual_seed(0)
    _, hard = discriminator_loss(disc, expert, agent, "none", generator=g)
    _, smooth = discriminator_loss(disc, expert, agent, "none", generator=g, expert_labels=(0.7, 1.2))
    agent_bce = 20.0  # the agent term: BCE(20, 0) = 20
    assert hard["bce"] - agent_bce == pytest.approx(0.0, abs=1e-3)
    assert smooth["bce"] - agent_bce == pytest.approx(20 * (1 - 0.95), rel=0.05)  # E[y] = 0.95
