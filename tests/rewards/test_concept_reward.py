"""ConceptShapingReward: the sign of the shaping for known good and bad transitions, explanations, the learned
version against the rules, saving and loading, and /v1/explain on the real server."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from rewardlab import rewards
from rewardlab.data.concepts import parse_board
from rewardlab.data.s2e_dataset import S2EDatasetConfig, build
from rewardlab.learners import s2e
from rewardlab.rewards import ConceptShapingReward, RewardInputError

BLOCK = parse_board("......./......./......./......./......./ooo.xx.")  # column 3 blocks o's three and makes x's three
WIN = parse_board("......./......./......./x....../x....../x.oo...")   # column 0 wins vertically


def c4(reward, board, col):
    flat = board.reshape(1, -1)
    return float(reward.score(flat, np.array([col]), flat, np.zeros(1))[0]), reward.explain(flat, np.array([col]))[0]


def test_connect4_rules_shaping_rewards_good_moves_and_not_bad_ones():
    rules = ConceptShapingReward.rules("connect4")
    win, win_text = c4(rules, WIN, 0)
    block, block_text = c4(rules, BLOCK, 3)
    ignore, ignore_text = c4(rules, BLOCK, 1)  # leaves o's three open: the opponent wins next move
    assert win == pytest.approx(1.0) and "wins the game" in win_text
    assert block == pytest.approx(0.5) and "blocks the opponent" in block_text and "centre" in block_text  # one value: the block's
    assert ignore == 0.0 and ignore_text == "This move has no notable effect."
    full = parse_board("x....../o....../x....../o....../x....../o......")
    assert c4(rules, full, 0) == (0.0, "This move is illegal: the column is full.")


def test_lunar_rules_shaping_is_positive_for_a_good_transition_and_negative_for_a_bad_one():
    rules = ConceptShapingReward.rules("lunarlander")
    obs = np.array([[0.2, 0.8, 0.1, -0.6, 0.2, 0.0, 0.0, 0.0]])
    better = np.array([[0.18, 0.77, 0.08, -0.5, 0.15, 0.0, 0.0, 0.0]])  # closer, slower, straighter
    worse = np.array([[0.23, 0.82, 0.15, -0.7, 0.25, 0.0, 0.0, 0.0]])   # farther, faster, more tilted
    good = rules.score(obs, np.array([0]), better, np.zeros(1))[0]
    bad = rules.score(obs, np.array([2]), worse, np.zeros(1))[0]
    assert good > 0 and bad < -0.3  # moving away is paid negatively, not 0, and the main engine's fuel on top
    assert "fires its main engine" in rules.explain(obs, np.array([2]), worse)[0]


def lunar_step(rules, obs, nxt, action=0):
    return float(rules.score(np.asarray([obs]), np.array([action]), np.asarray([nxt]), np.zeros(1))[0])


def test_lunar_shaping_telescopes_a_trip_away_and_back_nets_zero():
    """S2E's Lunar Lander shaping is potential-based: over a loop its steps sum to zero, so oscillating earns
    nothing, and moving away alone costs."""
    rules = ConceptShapingReward.rules("lunarlander")
    s0 = [0.2, 0.8, 0.1, -0.6, 0.2, 0.0, 0.0, 0.0]
    s1 = [0.3, 0.9, 0.2, -0.8, 0.3, 0.1, 0.0, 0.0]  # farther, faster, more tilted
    away, back = lunar_step(rules, s0, s1), lunar_step(rules, s1, s0)
    assert away < -1.0
    assert away + back == pytest.approx(0.0, abs=1e-4)
    loop = [s0, s1, [0.1, 0.5, 0.0, -0.2, 0.05, 0.0, 0.0, 0.0], [0.25, 0.7, 0.3, -0.1, -0.1, 0.0, 0.0, 0.0], s0]
    assert sum(lunar_step(rules, a, b) for a, b in zip(loop, loop[1:])) == pytest.approx(0.0, abs=1e-4)
    # a leg touch followed by a lift nets 0: +10 down, -10 up
    up = [0.05, 0.02, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    down = [0.05, 0.02, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    touch, lift = lunar_step(rules, up, down), lunar_step(rules, down, up)
    assert touch == pytest.approx(10.0, abs=1e-4) and lift == pytest.approx(-10.0, abs=1e-4)


def test_ground_truth_shaping_on_the_sparse_reward_is_gymnasiums_own_reward():
    """With the rule concepts, sparse reward + S2E shaping equals LunarLander-v3's dense reward at every step."""
    env = s2e.make_env("lunarlander", None, ConceptShapingReward.rules("lunarlander"), 1.0, "sparse", seed=3)
    rng = np.random.default_rng(0)
    shaped, true = [], []
    for episode in range(3):
        env.reset(seed=100 + episode)
        done = False
        while not done:
            _, r, terminated, truncated, info = env.step(int(rng.integers(4)))
            shaped.append(r)
            true.append(info["true_reward"])
            done = terminated or truncated
    env.close()
    assert len(shaped) > 100
    np.testing.assert_allclose(shaped, true, atol=2e-3)


def test_a_shaped_connect4_game_never_pays_a_move_more_than_the_unshaped_win():
    """The win is paid once (1), with or without shaping; no shaped move earns more than that."""
    env = s2e.make_env("connect4", "random", ConceptShapingReward.rules("connect4"), 1.0, seed=0)
    rng = np.random.default_rng(1)
    best, wins = -np.inf, 0
    for game in range(60):
        obs, _ = env.reset(seed=game)
        done = False
        while not done:
            legal = np.flatnonzero(obs[:42].reshape(6, 7)[0] + obs[42:].reshape(6, 7)[0] == 0)
            obs, r, terminated, truncated, info = env.step(int(rng.choice(legal)))
            best, done = max(best, r), terminated or truncated
            if done and info["true_reward"] > 0:
                wins += 1
                assert r == 1.0
    env.close()
    assert wins > 5 and best == 1.0


def test_board_layouts_and_bad_inputs():
    rules = ConceptShapingReward.rules("connect4")
    planes = np.stack([BLOCK == 1, BLOCK == 2]).astype(np.float32)[None]
    for obs in (BLOCK[None], BLOCK.reshape(1, -1), planes, planes.reshape(1, -1)):
        assert rules.score(obs, np.array([3]), obs, np.zeros(1))[0] == pytest.approx(0.5)
    with pytest.raises(RewardInputError, match="obs: expected Connect 4 boards of 42 cells"):
        rules.score(np.zeros((1, 10)), np.array([3]), np.zeros((1, 10)), np.zeros(1))
    with pytest.raises(RewardInputError, match="cells must be 0"):
        rules.score(np.full((1, 42), 3), np.array([3]), np.zeros((1, 42)), np.zeros(1))
    with pytest.raises(RewardInputError, match="actions: Lunar Lander actions"):
        ConceptShapingReward.rules("lunarlander").score(np.zeros((1, 8)), np.array([5]), np.zeros((1, 8)), np.zeros(1))


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """A Connect 4 embedding after brief training, saved and loaded back, with its held-out moves."""
    rows = build(S2EDatasetConfig(domain="connect4", episodes=100, seed=5))
    train = s2e.transition_arrays([r for r in rows if r["split"] == "train"], "connect4", mirror=True)
    test = s2e.transition_arrays([r for r in rows if r["split"] == "test"], "connect4")
    embedder, history = s2e.train_embedding(s2e.Config(name="t", embedding={"epochs": 4, "batch_size": 32}), "connect4", train, test)
    folder = ConceptShapingReward.save(embedder, tmp_path_factory.mktemp("s2e") / "reward")
    return {"in_memory": ConceptShapingReward("connect4", embedder), "folder": folder, "test": test, "train": train, "history": history}


def test_brief_training_retrieves_connect4_explanations_far_better_than_chance(learned):
    history, test = learned["history"], learned["test"]
    majority = (test["truth"] == np.bincount(learned["train"]["truth"]).argmax()).mean()
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["recall_at_1"] > max(5 / 20, majority + 0.1), (history[-1]["recall_at_1"], majority)


def test_learned_shaping_mostly_agrees_with_the_rules_and_survives_saving(learned):
    test = learned["test"]
    args = (test["obs"], test["actions"], test["next_obs"], np.zeros(len(test["obs"])))
    loaded = rewards.load(learned["folder"])
    assert isinstance(loaded, ConceptShapingReward) and loaded.source == "embedding"
    assert loaded.explain(*args) == learned["in_memory"].explain(*args)
    truth = ConceptShapingReward.rules("connect4").score(*args)
    agree = np.isclose(loaded.score(*args), truth).mean()
    values, counts = np.unique(truth, return_counts=True)
    constant = counts.max() / len(truth)  # the best constant shaping's agreement (in hindsight, on the test moves)
    assert agree > constant + 0.1, f"learned shaping equals the rule shaping on {agree:.2f} of held-out moves, a constant on {constant:.2f}"
    learned_scores = loaded.score(*args)
    good, bad = truth >= 0.5, truth == 0  # wins and blocks vs moves with no concept
    assert learned_scores[good].mean() > 0.3 > learned_scores[bad].mean(), (learned_scores[good].mean(), learned_scores[bad].mean())


def test_explain_route_and_remote_reward_use_the_real_server(learned, serve_reward):
    reward = rewards.load(learned["folder"])
    test = learned["test"]
    obs, act = test["obs"][:12], test["actions"][:12]
    with serve_reward(reward) as url:
        body = {"obs": obs.tolist(), "actions": act.tolist(), "next_obs": obs.tolist()}
        response = httpx.post(f"{url}/v1/explain", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["explanations"] == reward.explain(obs, act, obs)
        assert "explain" in httpx.get(f"{url}/v1/info").json()["capabilities"]
        bad = httpx.post(f"{url}/v1/explain", json={"obs": np.zeros((2, 5)).tolist(), "actions": [1, 2], "next_obs": np.zeros((2, 5)).tolist()})
        assert bad.status_code == 422 and "42 cells" in bad.json()["error"]["message"]
        remote = rewards.load(url)
        assert remote.explain(obs, act, obs, np.zeros(12)) == response.json()["explanations"]
        assert np.allclose(remote.score(obs, act, obs, np.zeros(12)), reward.score(obs, act, obs, np.zeros(12)))


def test_rules_reward_saves_without_weights(tmp_path):
    folder = ConceptShapingReward.save(None, tmp_path / "rules", domain="lunarlander")
    loaded = rewards.load(folder)
    assert loaded.source == "rules" and loaded.domain == "lunarlander" and not (folder / "model.safetensors").exists()
