"""S2E's rule-based concepts on hand-made Connect 4 boards and Lunar Lander states, on the real environments, and the
templates and shaping values built on them."""

from __future__ import annotations

import numpy as np
import pytest

from rewardlab.data.concepts import (
    ALL_CONCEPT_SETS,
    CONCEPTS,
    DOMAINS,
    NO_CONCEPT_SENTENCE,
    board_from_pettingzoo,
    concept_mask,
    concepts_from_mask,
    concepts_of,
    connect4_concepts,
    drop,
    explain,
    has_four,
    legal_columns,
    lunar_concepts,
    lunar_concepts_batch,
    shaping_reward,
)


def board(*rows: str) -> np.ndarray:
    """A board from text, top row first ('.' empty, 'X' the player to move, 'O' the opponent); missing rows are empty."""
    rows = ("." * 7,) * (6 - len(rows)) + rows
    return np.array([[{".": 0, "X": 1, "O": 2}[ch] for ch in row] for row in rows], dtype=np.int8)


# ---------------------------------------------------------------- Connect 4


def test_drop_lands_on_the_lowest_empty_cell_and_copies():
    b = board("...O...", "...X...")
    after, row = drop(b, 3, 1)
    assert row == 3 and after[3, 3] == 1 and b[3, 3] == 0  # the input is untouched
    after, row = drop(b, 0, 2)
    assert row == 5 and after[5, 0] == 2
    assert legal_columns(b) == list(range(7))


@pytest.mark.parametrize(
    "rows, col",
    [
        (("...O...", ".XXX.OO"), 4),  # horizontal, right end
        (("...O...", ".XXX.OO"), 0),  # horizontal, left end
        (("X......", "X.....O", "X....OO"), 0),  # vertical
        (("..XO...", ".XOO...", "XOOX..."), 3),  # diagonal / : (5,0) (4,1) (3,2) + the landing cell (2,3)
        (("OX.....", "XOX....", "OXOX..O"), 0),  # diagonal \ : the landing cell (2,0) + (3,1) (4,2) (5,3)
    ],
)
def test_winning_moves(rows, col):
    b = board(*rows)
    after, _ = drop(b, col, 1)
    assert not has_four(b, 1) and has_four(after, 1)
    concepts = connect4_concepts(b, col)
    assert concepts == (("center", "win") if col == 3 else ("win",))  # a four reports no threes


def test_blocking_an_opponents_three():
    assert connect4_concepts(board("......O", "......O", "X.X...O"), 6) == ("block_win",)  # vertical O O O
    assert connect4_concepts(board("X......", "OOO.X.."), 3) == ("block_win", "center")  # horizontal O O O _
    assert connect4_concepts(board(".X.....", ".OO.O.X"), 3) == ("block_win", "center")  # split O O _ O
    # O O O _ one row up: the fourth cell (4, 3) is not playable yet, and playing under it blocks nothing ...
    b = board("OOO....", "XXO.X..")
    assert connect4_concepts(b, 3) == ("center",)
    # ... it hands the opponent the win instead (concepts from the opponent's side: player=2)
    after, _ = drop(b, 3, 1)
    assert connect4_concepts(after, 3, player=2) == ("center", "win")


def test_open_three_versus_blocked_three():
    assert connect4_concepts(board("....XX."), 6) == ("three_in_row",)  # _ X X X: can still become four
    assert connect4_concepts(board(".X.X..."), 2) == ("three_in_row",)  # _ X X X _ made in the middle
    assert connect4_concepts(board("X..X..."), 1) == ("three_in_row",)  # split three X X _ X is open too
    assert connect4_concepts(board("...OXX."), 6) == ("blocked_three",)  # O X X X | edge
    assert connect4_concepts(board("OX.XO.."), 2) == ("blocked_three",)  # O X X X O
    assert connect4_concepts(board("X.XO..."), 1) == ("blocked_three",)  # edge | X X X O
    # vertical: three at the top of a column with an O under them cannot grow; with room above it can
    assert connect4_concepts(board(".......", "......X", "......X", "......O", "......O", "......X"), 6) == ("blocked_three",)
    assert connect4_concepts(board("......X", "......X", "......O"), 6) == ("three_in_row",)


def test_centre_column_and_no_concept():
    empty = board()
    assert connect4_concepts(empty, 3) == ("center",)
    assert connect4_concepts(empty, 0) == ()
    assert connect4_concepts(board("X.....O"), 5) == ()


def test_a_move_can_have_several_concepts():
    # blocks O O O _ and makes X X X _ at once, in the centre column
    assert connect4_concepts(board("OOO.XX."), 3) == ("block_win", "center", "three_in_row")
    # lands on (3, 0): an open vertical three (room above) and a horizontal three closed by the edge and an O
    assert connect4_concepts(board(".XXO...", "XOOX...", "XOXO..O"), 0) == ("blocked_three", "three_in_row")
    # the winning cell is also the opponent's winning cell
    assert connect4_concepts(board("XXX.OOO"), 3) == ("block_win", "center", "win")


def test_illegal_columns_raise_a_clear_error():
    full = board("X......", "O......", "X......", "O......", "X......", "O......")
    assert legal_columns(full) == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="column 0 is full"):
        connect4_concepts(full, 0)
    with pytest.raises(ValueError, match="expected a column in 0..6, found 7"):
        drop(full, 7, 1)
    with pytest.raises(ValueError, match="found -1"):
        drop(full, -1, 1)
    with pytest.raises(ValueError, match=r"expected shape \(6, 7\)"):
        connect4_concepts(np.zeros((7, 6)), 0)
    with pytest.raises(ValueError, match="cell \\(0, 0\\) is 3"):
        legal_columns(np.full((6, 7), 3))


def test_pettingzoo_adapter_on_a_real_game():
    from pettingzoo.classic import connect_four_v3

    env = connect_four_v3.env()
    env.reset(seed=0)
    for col in (3, 3, 4, 4, 2):  # player_0: 3, 4, 2 on the bottom row; player_1: 3, 4 on top of them
        env.step(col)
    assert env.agent_selection == "player_1"
    obs, _, terminated, truncated, _ = env.last()
    assert not (terminated or truncated)
    b = board_from_pettingzoo(obs)
    assert np.array_equal(b, board("...XX..", "..OOO.."))  # player_1 moves, so its pieces are 1
    assert np.array_equal(board_from_pettingzoo(env.observe("player_0")), board("...OO..", "..XXX.."))
    assert np.array_equal(np.asarray(obs["action_mask"]).nonzero()[0], legal_columns(b))

    # player_0 threatens both ends; player_1 blocks column 1, and our drop() predicts the env's next board
    assert connect4_concepts(b, 1) == ("block_win",) and connect4_concepts(b, 5) == ("block_win",)
    expected, _ = drop(b, 1, 1)
    env.step(1)
    swapped = np.where(expected == 0, 0, 3 - expected)  # the same board seen by player_0
    b0 = board_from_pettingzoo(env.last()[0])
    assert np.array_equal(b0, swapped)
    # player_0 wins at column 5: our concept says win and the env pays +1
    assert "win" in connect4_concepts(b0, 5)
    env.step(5)
    assert env.rewards["player_0"] == 1 and env.terminations["player_0"]
    env.close()


def test_random_play_only_produces_listed_concept_sets():
    rng = np.random.default_rng(0)
    allowed = set(ALL_CONCEPT_SETS["connect4"])
    seen = set()
    for _ in range(60):
        b = board()
        player = 1
        while legal_columns(b) and not has_four(b, 1) and not has_four(b, 2):
            col = int(rng.choice(legal_columns(b)))
            seen.add(connect4_concepts(b, col, player))
            b, _ = drop(b, col, player)
            player = 3 - player
    assert seen <= allowed
    assert len(seen) >= 8  # random play meets many of the combinations


# ---------------------------------------------------------------- Lunar Lander


def lander(x=0.5, y=1.0, vx=0.0, vy=-0.5, angle=0.2, w=0.0, left=0.0, right=0.0) -> np.ndarray:
    return np.array([x, y, vx, vy, angle, w, left, right], dtype=np.float32)


ALWAYS = ("closer_to_pad", "less_tilt", "slower")  # in flight the distance, speed and tilt terms always apply


@pytest.mark.parametrize(
    "next_kwargs, action, expected",
    [
        ({"x": 0.49, "y": 0.98}, 0, ALWAYS),
        ({"x": 0.6, "y": 1.1, "vy": -0.7, "angle": 0.3}, 0, ALWAYS),  # worse on every count: the terms still apply
        ({"left": 1.0}, 0, (*ALWAYS, "left_leg")),
        ({"right": 1.0}, 0, (*ALWAYS, "right_leg")),
        ({}, 2, (*ALWAYS, "main_engine")),
        ({}, 1, (*ALWAYS, "side_engine")),
        ({}, 3, (*ALWAYS, "side_engine")),
    ],
)
def test_lunar_concepts_say_which_shaping_terms_apply(next_kwargs, action, expected):
    assert lunar_concepts(lander(), action, lander(**next_kwargs)) == tuple(sorted(expected))


def test_lunar_leg_concept_holds_on_touchdown_and_on_lift_off():
    assert "left_leg" in lunar_concepts(lander(), 0, lander(left=1.0))
    assert "left_leg" in lunar_concepts(lander(left=1.0), 0, lander())  # the lift-off is paid too (-10)
    assert "left_leg" not in lunar_concepts(lander(), 0, lander())
    centred = dict(x=0.0, y=0.0, vx=0.0, vy=0.0, angle=0.0)
    assert lunar_concepts(lander(**centred), 0, lander(**centred)) == ()  # no term is non-zero


def test_lunar_landed_needs_both_legs_and_no_speed():
    still = dict(x=0.05, y=0.0, vx=0.0, vy=0.0, angle=0.0)
    resting = lunar_concepts(lander(**still, left=1, right=1), 0, lander(**still, left=1, right=1))
    assert resting == ("closer_to_pad", "landed", "left_leg", "right_leg")
    assert "landed" not in lunar_concepts(lander(**still), 0, lander(**still, left=1))
    moving = lunar_concepts(lander(vy=-0.5), 0, lander(x=0.05, y=0.0, vy=-0.3, angle=0.0, left=1, right=1))
    assert moving == ("closer_to_pad", "left_leg", "less_tilt", "right_leg", "slower")


def test_lunar_batch_matches_single_transitions():
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(50, 8))
    obs[:, 6:] = rng.integers(0, 2, size=(50, 2))
    next_obs = obs + rng.normal(scale=0.05, size=obs.shape)
    next_obs[:, 6:] = rng.integers(0, 2, size=(50, 2))
    actions = rng.integers(0, 4, size=50)
    mask = lunar_concepts_batch(obs, actions, next_obs)
    assert mask.shape == (50, 8) and mask.dtype == bool
    for i in range(50):
        assert concepts_from_mask(mask[i], "lunarlander") == lunar_concepts(obs[i], int(actions[i]), next_obs[i])
    with pytest.raises(ValueError, match="expected 0 \\(noop\\)"):
        lunar_concepts(obs[0], 4, next_obs[0])
    with pytest.raises(ValueError, match=r"expected shape \(n, 8\)"):
        lunar_concepts_batch(obs[:, :6], actions, next_obs)


def test_real_lunar_lander_step_and_landing():
    import gymnasium as gym
    from gymnasium.envs.box2d.lunar_lander import heuristic

    env = gym.make("LunarLander-v3")
    obs, _ = env.reset(seed=0)
    next_obs, *_ = env.step(2)
    concepts = lunar_concepts(obs, 2, next_obs)
    assert "main_engine" in concepts and "side_engine" not in concepts

    # the environment's own heuristic pilot lands (seed 1): both legs touch down and the lander comes to rest
    obs, _ = env.reset(seed=1)
    seen, done = set(), False
    while not done:
        action = heuristic(env.unwrapped, obs)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        seen.update(lunar_concepts(obs, action, next_obs))
        obs, done = next_obs, terminated or truncated
    env.close()
    assert terminated and reward == 100  # a safe landing
    assert {"landed", "left_leg", "right_leg", "closer_to_pad", "slower", "main_engine", "side_engine"} <= seen


# ---------------------------------------------------------------- templates and shaping


@pytest.mark.parametrize("domain", DOMAINS)
def test_explanations_round_trip(domain):
    sets = ALL_CONCEPT_SETS[domain]
    assert len(sets) == {"connect4": 20, "lunarlander": 120}[domain]
    explanations = [explain(s, domain) for s in sets]
    assert len(set(explanations)) == len(sets)  # one template per concept set
    for s, text in zip(sets, explanations):
        assert concepts_of(text, domain) == s
        assert concepts_from_mask(concept_mask(s, domain), domain) == s
    assert explain((), domain) == NO_CONCEPT_SENTENCE[domain]
    assert concepts_of("  " + NO_CONCEPT_SENTENCE[domain].upper(), domain) == ()
    every = tuple(reversed(CONCEPTS[domain]))
    assert explain(every, domain) == explain(sorted(every), domain)  # order of the input does not matter


def test_explain_wording_and_errors():
    text = explain(("center", "win"), "connect4")
    assert text == "This move connects four pieces in a row and wins the game. This move takes the centre column, which lies in the most lines of four."
    assert concepts_of(text, "connect4") == ("center", "win")
    with pytest.raises(ValueError, match="not one of the template sentences"):
        concepts_of("This move is brilliant.", "connect4")
    with pytest.raises(ValueError, match=r"unknown \['fly'\]"):
        explain(("fly",), "lunarlander")
    with pytest.raises(ValueError, match="expected one of connect4, lunarlander"):
        explain((), "chess")


def test_connect4_pays_one_value_per_move_by_priority():
    win = connect4_concepts(board("OO.....", ".XXX..O"), 4)
    block = connect4_concepts(board("......O", "......O", "X.X...O"), 6)
    plain = connect4_concepts(board("X.....O"), 5)
    assert shaping_reward(win, "connect4") == 1.0
    assert shaping_reward(block, "connect4") == 0.5
    assert plain == () and shaping_reward(plain, "connect4") == 0.0
    assert shaping_reward(connect4_concepts(board("...OXX."), 6), "connect4") <= 0.0  # a blocked three is worth nothing
    # a winning move in the centre column is worth the win, not the win plus the centre
    centre_win = connect4_concepts(board("...X...", "...X...", "...X..."), 3)
    assert set(centre_win) == {"center", "win"} and shaping_reward(centre_win, "connect4") == 1.0
    assert shaping_reward(("block_win", "center", "three_in_row"), "connect4") == 0.5
    assert shaping_reward(("center", "three_in_row"), "connect4") == pytest.approx(0.1)


def test_lunar_shaping_is_the_potential_difference_of_the_terms_that_apply():
    good_obs, good_next = lander(), lander(x=0.45, y=0.9, vy=-0.4, angle=0.1)
    good = lunar_concepts(good_obs, 0, good_next)
    assert shaping_reward(good, "lunarlander", good_obs, good_next) > 0
    bad_obs, bad_next = lander(), lander(x=0.55, y=1.05, vy=-0.6, angle=0.3)
    bad = lunar_concepts(bad_obs, 2, bad_next)
    assert shaping_reward(bad, "lunarlander", bad_obs, bad_next) < -0.3  # getting worse costs, on top of the fuel
    with pytest.raises(ValueError, match="give obs and next_obs"):
        shaping_reward(good, "lunarlander")


def test_parse_board_reads_the_typed_layouts_and_names_what_is_wrong():
    from rewardlab.data.concepts import parse_board

    board = parse_board("......./......./......./......./.x...../ox....o")
    assert board[5].tolist() == [2, 1, 0, 0, 0, 0, 2] and board[4, 1] == 1 and board[:4].sum() == 0
    assert (parse_board("0" * 35 + "0120000") == parse_board("......./......./......./......./......./.xo....")).all()
    with pytest.raises(ValueError, match="found 41 cells"):
        parse_board("." * 41)
    with pytest.raises(ValueError, match=r"unknown cell characters \['z'\]"):
        parse_board("z" + "." * 41)
    with pytest.raises(ValueError, match="floats above an empty cell"):
        parse_board("x" + "." * 41)
