"""Connect 4 as a single-agent gymnasium environment against a fixed opponent (PettingZoo's ``connect_four_v3``
underneath). Used by the S2E learner's RL arms and by anyone who wants to put a Connect 4 reward into an agent."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from rewardlab.data.concepts import board_from_pettingzoo
from rewardlab.data.s2e_dataset import reasonable_column


class Connect4VsOpponent(gym.Env):
    """PettingZoo's ``connect_four_v3`` as a single-agent gymnasium environment against a fixed opponent.

    Observation: float32 (84,), the agent's pieces then the opponent's (6 x 7 planes, row 0 at the top).
    Action: a column, 0..6. Reward: +1 win, -1 loss, 0 otherwise; a move into a full column loses (-1, the
    episode ends, ``info["illegal"]``). Who moves first is drawn at each reset."""

    metadata = {"render_modes": []}

    def __init__(self, opponent: str = "random"):
        from pettingzoo.classic import connect_four_v3

        if opponent not in ("random", "lookahead"):
            raise ValueError(f"Connect 4 opponent: expected random or lookahead, found {opponent!r}")
        self.opponent = opponent
        self.game = connect_four_v3.env()
        self.observation_space = gym.spaces.Box(0.0, 1.0, (84,), np.float32)
        self.action_space = gym.spaces.Discrete(7)
        self.me = "player_0"

    def _observe(self) -> np.ndarray:
        planes = self.game.observe(self.me)["observation"]
        return np.concatenate([planes[..., 0].reshape(-1), planes[..., 1].reshape(-1)]).astype(np.float32)

    def _opponent_move(self) -> None:
        other = self.game.agent_selection
        board = board_from_pettingzoo(self.game.observe(other))
        legal = np.flatnonzero(self.game.observe(other)["action_mask"])
        col = reasonable_column(board, self.np_random, prefer=()) if self.opponent == "lookahead" else int(self.np_random.choice(legal))
        self.game.step(col)

    def _over(self) -> bool:
        return any(self.game.terminations.values()) or any(self.game.truncations.values())

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.game.reset(seed=int(self.np_random.integers(2**31)))
        self.me = "player_0" if self.np_random.random() < 0.5 else "player_1"
        if self.game.agent_selection != self.me:
            self._opponent_move()
        return self._observe(), {}

    def step(self, action):
        col = int(action)
        if not self.game.observe(self.me)["action_mask"][col]:
            return self._observe(), -1.0, True, False, {"illegal": True}
        self.game.step(col)
        if self._over():
            return self._observe(), float(self.game.rewards[self.me]), True, False, {}
        self._opponent_move()
        return self._observe(), float(self.game.rewards[self.me]), self._over(), False, {}
