"""S2E's rule-based concepts: extractors for Connect 4 moves and Lunar Lander transitions, their explanation templates,
and the shaping value of each concept.

State2Explanation (S2E) explains a (state, action) with a sentence built from a finite set of templates, one per concept
set. The same concepts give a shaping reward. These rules are the ground truth that the dataset builder labels with,
that the joint embedding model learns to retrieve, and that the "ground-truth concepts" shaping arm uses.

Domains are named ``"connect4"`` (PettingZoo ``connect_four_v3``) and ``"lunarlander"`` (gymnasium ``LunarLander-v3``).
Only numpy is imported here; pettingzoo and gymnasium are needed only by the callers that build the environments.

Conventions:

- A concept set is a tuple of concept names sorted alphabetically; the empty tuple means "no concept".
- An explanation lists its sentences in the domain's canonical order, ``CONCEPTS[domain]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from itertools import combinations

import numpy as np

DOMAINS = ("connect4", "lunarlander")

# --------------------------------------------------------------------------------------------------------------------
# Connect 4
# --------------------------------------------------------------------------------------------------------------------

ROWS, COLS = 6, 7
EMPTY, ME, OPPONENT = 0, 1, 2
CENTER_COLUMN = COLS // 2

#: Canonical order of the Connect 4 concepts (the order of the sentences in an explanation).
#:
#: - ``win``: after the move the mover has four in a row (horizontal, vertical or diagonal) through the new piece.
#: - ``block_win``: the landing cell is the one empty cell of a line of four that holds three opponent pieces, so the
#:   opponent would have won by playing this column now. (Occupying that cell is the only way to block a
#:   three-in-line, so "blocks an opponent's three" and "blocks an immediate win" are the same test.)
#: - ``three_in_row``: the move makes an *open three*: some line of four cells through the new piece holds three of the
#:   mover's pieces and one empty cell, so it can still become four. The empty cell may be anywhere in the line
#:   (``XXX_``, ``XX_X``, ...) and need not be playable yet (a diagonal's fourth cell may float above empty cells).
#: - ``blocked_three``: the new piece is part of a run of exactly three consecutive mover's pieces along some direction,
#:   and both cells just beyond the run are off the board or hold opponent pieces, so that three can never become four.
#: - ``center``: the move is in the centre column (column 3), which lies in the most lines of four.
#:
#: A winning move ends the game and any four contains threes, so ``three_in_row`` and ``blocked_three`` are not reported
#: together with ``win``. All other concepts are tested independently: one move can have several.
CONNECT4_CONCEPTS = ("win", "block_win", "three_in_row", "blocked_three", "center")

_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))  # horizontal, vertical, two diagonals (row 0 is the top row)


def _all_lines() -> np.ndarray:
    """Every line of four cells on the board as (n_lines, 4, 2) (row, col) pairs: 24 + 21 + 12 + 12 = 69 lines."""
    lines = []
    for dr, dc in _DIRECTIONS:
        for r in range(ROWS):
            for c in range(COLS):
                cells = [(r + k * dr, c + k * dc) for k in range(4)]
                if all(0 <= rr < ROWS and 0 <= cc < COLS for rr, cc in cells):
                    lines.append(cells)
    return np.asarray(lines, dtype=np.int64)


_LINES = _all_lines()
_LINES_THROUGH = {
    (r, c): np.flatnonzero(((_LINES[:, :, 0] == r) & (_LINES[:, :, 1] == c)).any(axis=1)) for r in range(ROWS) for c in range(COLS)
}


def _check_board(board: np.ndarray) -> np.ndarray:
    board = np.asarray(board)
    if board.shape != (ROWS, COLS):
        raise ValueError(f"Connect 4 board: expected shape ({ROWS}, {COLS}) (rows, columns), found {board.shape}")
    bad = ~np.isin(board, (EMPTY, ME, OPPONENT))
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise ValueError(f"Connect 4 board: cell ({r}, {c}) is {board[r, c].item()!r}; expected 0 (empty), 1 or 2")
    return board.astype(np.int8, copy=False)


def _check_player(player: int) -> int:
    if player not in (ME, OPPONENT):
        raise ValueError(f"Connect 4 player: expected 1 or 2, found {player!r}")
    return int(player)


def board_from_pettingzoo(observation: Mapping | np.ndarray) -> np.ndarray:
    """PettingZoo ``connect_four_v3`` observation -> int8 (6, 7) board: 0 empty, 1 the agent to move, 2 its opponent.

    ``observation`` is the dict that ``env.last()`` / ``env.observe(agent)`` returns, or its ``"observation"`` array of
    shape (6, 7, 2), where channel 0 holds the observed agent's pieces and channel 1 the opponent's. Row 0 is the top
    row and pieces fall towards row 5, exactly as in PettingZoo. Observing the agent whose turn it is therefore gives a
    board in which player 1 is the player to move, the perspective that ``connect4_concepts`` expects.
    """
    planes = observation["observation"] if isinstance(observation, Mapping) else observation
    planes = np.asarray(planes)
    if planes.shape != (ROWS, COLS, 2):
        raise ValueError(f"connect_four_v3 observation: expected shape ({ROWS}, {COLS}, 2), found {planes.shape}")
    if (planes[..., 0].astype(bool) & planes[..., 1].astype(bool)).any():
        raise ValueError("connect_four_v3 observation: a cell holds pieces of both players")
    board = np.zeros((ROWS, COLS), dtype=np.int8)
    board[planes[..., 0] != 0] = ME
    board[planes[..., 1] != 0] = OPPONENT
    return board


_BOARD_CELLS = {".": EMPTY, "0": EMPTY, "x": ME, "1": ME, "o": OPPONENT, "2": OPPONENT}


def parse_board(text: str) -> np.ndarray:
    """A Connect 4 board typed by a person -> int8 (6, 7): six rows of seven cells, top row first, rows separated by
    ``/``, newlines or spaces (or 42 cells in one run); ``.`` or ``0`` empty, ``x`` or ``1`` the player to move,
    ``o`` or ``2`` the opponent. Example: ``......./......./......./......./......./...xo..`` has one piece of each
    player in the bottom row."""
    cells = [ch for ch in str(text).lower() if not ch.isspace() and ch not in "/|,"]
    if len(cells) != ROWS * COLS:
        raise ValueError(f"Connect 4 board: expected {ROWS} rows of {COLS} cells ({ROWS * COLS} in all), found {len(cells)} cells in {text!r}")
    bad = sorted({ch for ch in cells if ch not in _BOARD_CELLS})
    if bad:
        raise ValueError(f"Connect 4 board: unknown cell characters {bad}; use . (empty), x (to move), o (opponent)")
    board = np.array([_BOARD_CELLS[ch] for ch in cells], dtype=np.int8).reshape(ROWS, COLS)
    floating = [(r, c) for r in range(ROWS - 1) for c in range(COLS) if board[r, c] != EMPTY and board[r + 1, c] == EMPTY]
    if floating:
        r, c = floating[0]
        raise ValueError(f"Connect 4 board: the piece at row {r}, column {c} floats above an empty cell (row 0 is the top)")
    return board


def check_position(board: np.ndarray) -> np.ndarray:
    """Refuse a board that no game reaches with player 1 to move: the opponent (2) has as many pieces as the mover
    (1) or one more, and nobody has four in a row yet (the game would be over). Returns the board."""
    board = _check_board(board)
    mine, theirs = int((board == ME).sum()), int((board == OPPONENT).sum())
    if theirs - mine not in (0, 1):
        raise ValueError(f"Connect 4 board: {mine} pieces of the player to move (x) and {theirs} of the opponent (o) "
                         "cannot occur with x to move; o has as many pieces as x, or one more")
    for player, mark in ((ME, "x"), (OPPONENT, "o")):
        if has_four(board, player):
            raise ValueError(f"Connect 4 board: {mark} already has four in a row, so the game is over")
    return board


def legal_columns(board: np.ndarray) -> list[int]:
    """The columns that still have an empty cell (their top cell, row 0, is empty)."""
    board = _check_board(board)
    return [c for c in range(COLS) if board[0, c] == EMPTY]


def drop(board: np.ndarray, col: int, player: int = ME) -> tuple[np.ndarray, int]:
    """Drop ``player``'s piece into column ``col``: returns (a new board, the row it landed in). The input is unchanged.

    Raises ValueError for a column outside 0..6 or a full column.
    """
    board = _check_board(board)
    player = _check_player(player)
    if isinstance(col, bool) or not isinstance(col, (int, np.integer)) or not 0 <= col < COLS:
        raise ValueError(f"Connect 4 move: expected a column in 0..{COLS - 1}, found {col!r}")
    col = int(col)
    empty_rows = np.flatnonzero(board[:, col] == EMPTY)
    if empty_rows.size == 0:
        raise ValueError(f"Connect 4 move: column {col} is full (legal columns: {legal_columns(board)})")
    row = int(empty_rows[-1])  # the lowest empty cell: the largest row index
    new_board = board.copy()
    new_board[row, col] = player
    return new_board, row


def has_four(board: np.ndarray, player: int) -> bool:
    """Whether ``player`` has four in a row anywhere on the board."""
    board = _check_board(board)
    values = board[_LINES[:, :, 0], _LINES[:, :, 1]]
    return bool((values == _check_player(player)).all(axis=1).any())


def _run_is_blocked_three(board: np.ndarray, row: int, col: int, dr: int, dc: int, player: int) -> bool:
    """Whether (row, col) is in a run of exactly three ``player`` pieces along (dr, dc) with both ends closed."""
    ends = []
    length = 1
    for sign in (1, -1):
        r, c = row + sign * dr, col + sign * dc
        while 0 <= r < ROWS and 0 <= c < COLS and board[r, c] == player:
            length += 1
            r, c = r + sign * dr, c + sign * dc
        ends.append((r, c))
    if length != 3:
        return False
    return all(not (0 <= r < ROWS and 0 <= c < COLS) or board[r, c] == 3 - player for r, c in ends)


def connect4_concepts(board: np.ndarray, col: int, player: int = ME) -> tuple[str, ...]:
    """The concepts of ``player`` playing column ``col`` on ``board`` (the board before the move), sorted by name.

    See ``CONNECT4_CONCEPTS`` for the exact definitions. Raises ValueError for an illegal column.
    """
    after, row = drop(board, col, player)
    before = after.copy()
    before[row, col] = EMPTY
    opponent = 3 - player
    lines = _LINES[_LINES_THROUGH[(row, col)]]
    before_values = before[lines[:, :, 0], lines[:, :, 1]]
    after_values = after[lines[:, :, 0], lines[:, :, 1]]

    found = set()
    if (after_values == player).all(axis=1).any():
        found.add("win")
    if ((before_values == opponent).sum(axis=1) == 3).any():  # the fourth cell of such a line is the landing cell
        found.add("block_win")
    if "win" not in found:
        if (((after_values == player).sum(axis=1) == 3) & ((after_values == EMPTY).sum(axis=1) == 1)).any():
            found.add("three_in_row")
        if any(_run_is_blocked_three(after, row, col, dr, dc, player) for dr, dc in _DIRECTIONS):
            found.add("blocked_three")
    if col == CENTER_COLUMN:
        found.add("center")
    return tuple(sorted(found))


# --------------------------------------------------------------------------------------------------------------------
# Lunar Lander
# --------------------------------------------------------------------------------------------------------------------

#: LunarLander-v3 observation layout and discrete actions.
LUNAR_OBS_DIM = 8
X, Y, VX, VY, ANGLE, ANGULAR_VELOCITY, LEFT_LEG, RIGHT_LEG = range(LUNAR_OBS_DIM)
NOOP, LEFT_ENGINE, MAIN_ENGINE, RIGHT_ENGINE = range(4)

#: A leg touches the ground when its contact flag (0 or 1 in the observation) is above this.
LEG_CONTACT = 0.5
#: "landed": both legs touch the ground and the speed |(vx, vy)| is below this (observation units; 0.05 is about
#: 0.25 m/s horizontally, 0.4 m/s vertically). A lander resting on the ground reads ~1e-4. (The paper's code reads
#: the Box2D body's ``awake`` flag, which the observation does not carry; this is the observable stand-in.)
LANDED_SPEED = 0.05

#: Canonical order of the Lunar Lander concepts of a transition (obs, action, next_obs).
#:
#: As in S2E's code (``muzero/games/lunarlander.py``, ``conceptsFromState``), a concept says that one of the
#: environment's shaping terms *applies* to the transition, not that it improved: the shaping then pays that term's
#: potential difference, negative when things get worse. With the rule concepts this is exactly gymnasium's shaping.
#:
#: - ``main_engine``: action 2. ``side_engine``: action 1 or 3 (left or right orientation engine): the fuel terms.
#: - ``closer_to_pad``: the distance term applies: |(x, y)| is non-zero in ``obs`` or ``next_obs`` (the paper's
#:   "encourages position to lander").
#: - ``slower``: the speed term applies: |(vx, vy)| is non-zero in ``obs`` or ``next_obs`` ("encourages slower
#:   velocity").
#: - ``less_tilt``: the tilt term applies: the angle is non-zero in ``obs`` or ``next_obs`` ("decrease of tilt").
#: - ``left_leg`` / ``right_leg``: that leg touches the ground in ``obs`` or ``next_obs``, so a touchdown (+10) and
#:   the lift-off that follows it (-10) are both paid and net to zero.
#: - ``landed``: both legs touch the ground in ``next_obs`` and its speed is below ``LANDED_SPEED``.
#:
#: The paper gates the potential per state (the concepts of the state that ends a step gate that state's
#: potential); rewardlab gates the potential *difference* per transition, so that a TransitionReward scores each
#: transition on its own (batched, served, replayed). With correct concepts the two are the same number.
LUNAR_CONCEPTS = ("main_engine", "side_engine", "closer_to_pad", "slower", "less_tilt", "left_leg", "right_leg", "landed")


def _as_lunar_batch(obs: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(obs, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != LUNAR_OBS_DIM:
        raise ValueError(f"Lunar Lander {name}: expected shape (n, {LUNAR_OBS_DIM}), found {array.shape}")
    return array


def lunar_concepts_batch(obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    """Concept indicators for a batch of transitions: bool (n, 8), columns in ``LUNAR_CONCEPTS`` order.

    ``obs`` and ``next_obs`` are (n, 8) LunarLander-v3 observations and ``actions`` (n,) discrete actions in 0..3.
    """
    obs = _as_lunar_batch(obs, "obs")
    next_obs = _as_lunar_batch(next_obs, "next_obs")
    actions = np.asarray(actions).reshape(-1)
    if not (obs.shape[0] == next_obs.shape[0] == actions.shape[0]):
        raise ValueError(
            f"Lunar Lander batch: obs, actions and next_obs must have the same length, found "
            f"{obs.shape[0]}, {actions.shape[0]} and {next_obs.shape[0]}"
        )
    if actions.size and (not np.all(np.isin(actions, (NOOP, LEFT_ENGINE, MAIN_ENGINE, RIGHT_ENGINE)))):
        bad = actions[~np.isin(actions, (NOOP, LEFT_ENGINE, MAIN_ENGINE, RIGHT_ENGINE))][0]
        raise ValueError(f"Lunar Lander action: expected 0 (noop), 1 (left), 2 (main) or 3 (right), found {bad!r}")
    dist, next_dist = np.hypot(obs[:, X], obs[:, Y]), np.hypot(next_obs[:, X], next_obs[:, Y])
    speed, next_speed = np.hypot(obs[:, VX], obs[:, VY]), np.hypot(next_obs[:, VX], next_obs[:, VY])
    touches = lambda o, leg: o[:, leg] > LEG_CONTACT  # noqa: E731
    left, right = touches(next_obs, LEFT_LEG), touches(next_obs, RIGHT_LEG)
    columns = {
        "main_engine": actions == MAIN_ENGINE,
        "side_engine": (actions == LEFT_ENGINE) | (actions == RIGHT_ENGINE),
        "closer_to_pad": (dist != 0) | (next_dist != 0),
        "slower": (speed != 0) | (next_speed != 0),
        "less_tilt": (obs[:, ANGLE] != 0) | (next_obs[:, ANGLE] != 0),
        "left_leg": touches(obs, LEFT_LEG) | left,
        "right_leg": touches(obs, RIGHT_LEG) | right,
        "landed": left & right & (next_speed < LANDED_SPEED),
    }
    return np.stack([columns[name] for name in LUNAR_CONCEPTS], axis=1)


def lunar_concepts(obs: np.ndarray, action: int, next_obs: np.ndarray) -> tuple[str, ...]:
    """The concepts of one Lunar Lander transition, sorted by name. See ``LUNAR_CONCEPTS`` for the definitions."""
    mask = lunar_concepts_batch(np.reshape(obs, (1, -1)), np.reshape(action, (1,)), np.reshape(next_obs, (1, -1)))
    return concepts_from_mask(mask[0], "lunarlander")


# --------------------------------------------------------------------------------------------------------------------
# Both domains: concept sets, templates, shaping
# --------------------------------------------------------------------------------------------------------------------

CONCEPTS: dict[str, tuple[str, ...]] = {"connect4": CONNECT4_CONCEPTS, "lunarlander": LUNAR_CONCEPTS}

#: One sentence per concept (our own wording), and the sentence for the empty concept set.
TEMPLATES: dict[str, dict[str, str]] = {
    "connect4": {
        "win": "This move connects four pieces in a row and wins the game.",
        "block_win": "This move blocks the opponent from completing four in a row.",
        "three_in_row": "This move makes three in a row with the fourth cell still free.",
        "blocked_three": "This move makes three in a row that is closed off at both ends and can never become four.",
        "center": "This move takes the centre column, which lies in the most lines of four.",
    },
    "lunarlander": {
        "main_engine": "The lander fires its main engine.",
        "side_engine": "The lander fires a side engine to turn.",
        "closer_to_pad": "Getting closer to the landing pad is rewarded and moving away costs.",
        "slower": "Slowing down is rewarded and speeding up costs.",
        "less_tilt": "Straightening up is rewarded and tilting costs.",
        "left_leg": "The left leg's contact with the ground counts.",
        "right_leg": "The right leg's contact with the ground counts.",
        "landed": "The lander has come to rest on both legs.",
    },
}
NO_CONCEPT_SENTENCE: dict[str, str] = {
    "connect4": "This move has no notable effect.",
    "lunarlander": "This action has no notable effect.",
}


def _check_domain(domain: str) -> str:
    if domain not in CONCEPTS:
        raise ValueError(f"S2E domain: expected one of {', '.join(DOMAINS)}, found {domain!r}")
    return domain


def _normalise(concepts: Iterable[str], domain: str) -> tuple[str, ...]:
    if isinstance(concepts, str):
        concepts = (concepts,)
    concepts = set(concepts)
    unknown = sorted(concepts - set(CONCEPTS[_check_domain(domain)]))
    if unknown:
        raise ValueError(f"{domain} concepts: unknown {unknown}; expected some of {list(CONCEPTS[domain])}")
    return tuple(sorted(concepts))


def _possible_sets(domain: str) -> list[tuple[str, ...]]:
    names = CONCEPTS[domain]
    sets = []
    for k in range(len(names) + 1):
        for combo in combinations(names, k):
            s = set(combo)
            if domain == "connect4" and "win" in s and s & {"three_in_row", "blocked_three"}:
                continue  # a winning move reports no threes
            if domain == "lunarlander":
                if {"main_engine", "side_engine"} <= s:
                    continue  # one action fires at most one kind of engine
                if "landed" in s and not {"left_leg", "right_leg"} <= s:
                    continue  # landed needs both legs down
            sets.append(tuple(sorted(s)))
    return sets


#: Every concept set the extractors can return, per domain (20 for Connect 4, 120 for Lunar Lander), ordered by size
#: then canonical order. Their explanations are the finite set of templates that S2E retrieves from.
ALL_CONCEPT_SETS: dict[str, list[tuple[str, ...]]] = {domain: _possible_sets(domain) for domain in DOMAINS}


def concept_mask(concepts: Iterable[str], domain: str) -> np.ndarray:
    """Multi-hot bool vector of a concept set, in ``CONCEPTS[domain]`` order."""
    present = set(_normalise(concepts, domain))
    return np.array([name in present for name in CONCEPTS[domain]], dtype=bool)


def concepts_from_mask(mask: np.ndarray, domain: str) -> tuple[str, ...]:
    """The sorted concept set of a multi-hot vector in ``CONCEPTS[domain]`` order."""
    names = CONCEPTS[_check_domain(domain)]
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    if mask.shape[0] != len(names):
        raise ValueError(f"{domain} concept mask: expected {len(names)} entries ({list(names)}), found {mask.shape[0]}")
    return tuple(sorted(name for name, on in zip(names, mask) if on))


def explain(concepts: Iterable[str], domain: str) -> str:
    """The explanation of a concept set: its sentences in canonical order, joined by spaces; a fixed one if empty."""
    present = set(_normalise(concepts, domain))
    if not present:
        return NO_CONCEPT_SENTENCE[domain]
    return " ".join(TEMPLATES[domain][name] for name in CONCEPTS[domain] if name in present)


_SENTENCE_END = re.compile(r"(?<=\.)\s+")


def concepts_of(explanation: str, domain: str) -> tuple[str, ...]:
    """The sorted concept set that an explanation (one of the templates, or any join of template sentences) states.

    Raises ValueError naming the first sentence that is not a template of ``domain``.
    """
    _check_domain(domain)
    by_sentence = {sentence.lower(): name for name, sentence in TEMPLATES[domain].items()}
    text = " ".join(str(explanation).split())
    if text.lower() == NO_CONCEPT_SENTENCE[domain].lower():
        return ()
    found = set()
    for sentence in _SENTENCE_END.split(text):
        name = by_sentence.get(sentence.lower())
        if name is None:
            raise ValueError(f"{domain} explanation: {sentence!r} is not one of the template sentences of this domain")
        found.add(name)
    return tuple(sorted(found))


#: Connect 4 shaping values, as in S2E's code (``muzero/games/connect4.py``, ``getRewards``): ONE value per move, the
#: value of its highest-priority concept (win 1 > block 0.5 > three in a row 0.1 > centre 0.1), 0 for anything else.
#: Values are not summed: a winning move in the centre column is worth 1, not 1.1. A blocked three is worth 0 (a
#: wasted threat, not a mistake). (The paper's explanation classes also let a blocked three outrank a block; here a
#: block keeps its 0.5, the priority order the paper's text states.)
CONNECT4_PRIORITY: tuple[tuple[str, float], ...] = (("win", 1.0), ("block_win", 0.5), ("three_in_row", 0.1), ("center", 0.1))
CONNECT4_CONCEPT_VALUES: dict[str, float] = dict(CONNECT4_PRIORITY) | {"blocked_three": 0.0}


def connect4_value(concepts: Iterable[str]) -> float:
    """The S2E shaping value of a Connect 4 move: that of its highest-priority concept (see ``CONNECT4_PRIORITY``)."""
    present = set(_normalise(concepts, "connect4"))
    return next((value for name, value in CONNECT4_PRIORITY if name in present), 0.0)


#: Lunar Lander potential weights, the coefficients of the environment's own shaping: for each concept of a
#: transition, weight * (phi(next_obs) - phi(obs)) with phi = -distance, -speed, -|angle| or the leg's contact flag,
#: and a fixed fuel cost for the engine concepts. ``landed`` has no potential term (the environment itself pays +100
#: when the lander comes to rest).
LUNAR_POTENTIAL_WEIGHTS: dict[str, float] = {
    "closer_to_pad": 100.0,
    "slower": 100.0,
    "less_tilt": 100.0,
    "left_leg": 10.0,
    "right_leg": 10.0,
    "main_engine": -0.3,  # fuel cost per step of the main engine, as in the environment
    "side_engine": -0.03,  # fuel cost per step of a side engine
    "landed": 0.0,
}


def lunar_potential_terms(obs: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    """Per-concept potential shaping terms of a batch of transitions: float (n, 8), columns in ``LUNAR_CONCEPTS`` order.

    Column c is ``LUNAR_POTENTIAL_WEIGHTS[c] * (phi_c(next_obs) - phi_c(obs))``, or the fuel cost for the engines.
    """
    obs = _as_lunar_batch(obs, "obs")
    next_obs = _as_lunar_batch(next_obs, "next_obs")
    w = LUNAR_POTENTIAL_WEIGHTS
    dist, next_dist = np.hypot(obs[:, X], obs[:, Y]), np.hypot(next_obs[:, X], next_obs[:, Y])
    speed, next_speed = np.hypot(obs[:, VX], obs[:, VY]), np.hypot(next_obs[:, VX], next_obs[:, VY])
    ones = np.ones(obs.shape[0])
    columns = {
        "main_engine": w["main_engine"] * ones,
        "side_engine": w["side_engine"] * ones,
        "closer_to_pad": w["closer_to_pad"] * (dist - next_dist),
        "slower": w["slower"] * (speed - next_speed),
        "less_tilt": w["less_tilt"] * (np.abs(obs[:, ANGLE]) - np.abs(next_obs[:, ANGLE])),
        "left_leg": w["left_leg"] * (next_obs[:, LEFT_LEG] - obs[:, LEFT_LEG]),
        "right_leg": w["right_leg"] * (next_obs[:, RIGHT_LEG] - obs[:, RIGHT_LEG]),
        "landed": w["landed"] * ones,
    }
    return np.stack([columns[name] for name in LUNAR_CONCEPTS], axis=1)


def shaping_reward(
    concepts: Iterable[str], domain: str, obs: np.ndarray | None = None, next_obs: np.ndarray | None = None
) -> float:
    """The S2E shaping reward of a concept set.

    Connect 4: ``connect4_value`` (one value per move, by priority). Lunar Lander: the sum of the potential terms of
    ``lunar_potential_terms`` for the given concepts, so ``obs`` and ``next_obs`` are required (a potential
    difference has no state-free value).
    """
    present = _normalise(concepts, domain)
    if domain == "connect4":
        return connect4_value(present)
    if obs is None or next_obs is None:
        raise ValueError("lunarlander shaping: give obs and next_obs (the shaping is a potential difference between them)")
    terms = lunar_potential_terms(np.reshape(obs, (1, -1)), np.reshape(next_obs, (1, -1)))[0]
    return float(np.sum(terms * concept_mask(present, domain)))


__all__ = [
    "ALL_CONCEPT_SETS",
    "CENTER_COLUMN",
    "CONCEPTS",
    "CONNECT4_CONCEPTS",
    "CONNECT4_CONCEPT_VALUES",
    "CONNECT4_PRIORITY",
    "DOMAINS",
    "LANDED_SPEED",
    "LEG_CONTACT",
    "LUNAR_CONCEPTS",
    "LUNAR_POTENTIAL_WEIGHTS",
    "NO_CONCEPT_SENTENCE",
    "TEMPLATES",
    "board_from_pettingzoo",
    "concept_mask",
    "concepts_from_mask",
    "concepts_of",
    "check_position",
    "connect4_value",
    "connect4_concepts",
    "drop",
    "explain",
    "has_four",
    "legal_columns",
    "lunar_concepts",
    "lunar_concepts_batch",
    "lunar_potential_terms",
    "parse_board",
    "shaping_reward",
]
