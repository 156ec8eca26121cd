"""S2E concept shaping as a TransitionReward that can also explain itself.

Each transition's explanation is predicted by retrieval in the joint embedding (the nearest of the domain's finite
set of template explanations); the explanation maps back to a concept set, and the concepts give the shaping reward:

* Connect 4: one value per move, that of its highest-priority concept (win 1 > block 0.5 > three in a row 0.1 >
  centre 0.1, else 0), as S2E's code pays it;
* Lunar Lander: the environment's potential-based terms for the predicted concepts only (100 x the change of
  -distance, -speed and -|tilt|, 10 x the change of a leg's contact; negative when things get worse), and the fuel
  cost of the engine concepts. With the rule concepts this is gymnasium's own shaping.

With no embedder (``ConceptShapingReward.rules(domain)``) the concepts come from the rule-based extractors: the
"ground-truth concepts" arm of the S2E experiments, and exact explanations for people.

Inputs, batched on the first axis:

* Connect 4: ``obs`` is the board before the move from the mover's side, (N, 42) or (N, 6, 7) with 0 empty,
  1 mover, 2 opponent, or the 0/1 planes (N, 2, 6, 7) / (N, 84) of (mover's pieces, opponent's pieces); ``actions``
  the columns. ``next_obs`` and ``dones`` are not used: the concepts are those of the move, and the board after it
  follows from the board and the column (the next observation of a game also holds the opponent's reply). An illegal
  move (a full column) scores 0 and is explained as illegal.
* Lunar Lander: ``obs`` and ``next_obs`` are (N, 8) LunarLander-v3 observations, ``actions`` the discrete actions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.data.concepts import (
    ALL_CONCEPT_SETS,
    COLS,
    DOMAINS,
    ROWS,
    concept_mask,
    connect4_value,
    connect4_concepts,
    drop,
    explain,
    lunar_concepts_batch,
    lunar_potential_terms,
    concepts_from_mask,
)
from rewardlab.rewards.base import RewardInputError, check_transition_batch
from rewardlab.rewards.registry import read_reward_json, register, write_reward_json


def boards_from(obs: np.ndarray) -> np.ndarray:
    """Connect 4 observations in any accepted layout -> int8 boards (N, 6, 7) with 0 empty, 1 mover, 2 opponent."""
    obs = np.asarray(obs)
    n = obs.shape[0]
    flat = obs.reshape(n, -1)
    cells = ROWS * COLS
    if flat.shape[1] == cells:
        boards = np.rint(flat).astype(np.int8).reshape(n, ROWS, COLS)
        if not np.isin(boards, (0, 1, 2)).all() or not np.allclose(flat, np.rint(flat)):
            raise RewardInputError("obs: a Connect 4 board's cells must be 0 (empty), 1 (mover) or 2 (opponent)")
        return boards
    if flat.shape[1] == 2 * cells:
        planes = flat.reshape(n, 2, ROWS, COLS)
        if not np.isin(planes, (0, 1)).all():
            raise RewardInputError("obs: Connect 4 planes must hold 0 or 1")
        if (planes[:, 0] * planes[:, 1]).any():
            raise RewardInputError("obs: a Connect 4 cell holds pieces of both players")
        return (planes[:, 0] + 2 * planes[:, 1]).astype(np.int8)
    raise RewardInputError(f"obs: expected Connect 4 boards of {cells} cells (N, 6, 7) or planes of {2 * cells} "
                           f"(N, 2, 6, 7), found shape {obs.shape}")


@register("s2e_concepts")
class ConceptShapingReward:
    """Shaping reward and explanations from predicted (``embedder`` given) or rule-based (``None``) concepts."""

    modality = "transition"

    def __init__(self, domain: str, embedder=None, device: str = "cpu"):
        if domain not in DOMAINS:
            raise ValueError(f"s2e_concepts: domain must be one of {', '.join(DOMAINS)}, found {domain!r}")
        self.domain, self.device = domain, device
        self.concept_sets = ALL_CONCEPT_SETS[domain]
        self.explanations = [explain(s, domain) for s in self.concept_sets]
        self.source = "rules" if embedder is None else "embedding"
        self.embedder, self._texts = None, None
        if embedder is not None:
            import torch

            self.embedder = embedder.to(device).eval()
            with torch.inference_mode():
                self._texts = self.embedder.embed_texts(self.explanations)

    @classmethod
    def rules(cls, domain: str) -> ConceptShapingReward:
        """Ground-truth concepts from the rule-based extractors (no model)."""
        return cls(domain)

    @classmethod
    def from_folder(cls, folder: str | Path, device: str = "cpu", **_: Any) -> ConceptShapingReward:
        meta = read_reward_json(folder)
        if meta.get("source") == "rules":
            return cls(meta["domain"], device=device)
        from safetensors.torch import load_file

        from rewardlab.models.concept_embedder import ConceptEmbedder

        net = ConceptEmbedder(**meta["net"])
        net.load_state_dict(load_file(str(Path(folder) / "model.safetensors")))
        return cls(meta["domain"], net, device=device)

    @staticmethod
    def save(embedder, folder: str | Path, **meta: Any) -> Path:
        """Write an embedder (or, with ``embedder=None`` and ``domain=...`` in meta, the rule-based reward)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if embedder is None:
            write_reward_json(folder, "s2e_concepts", source="rules", **meta)
            return folder
        from safetensors.torch import save_file

        save_file({k: v.detach().contiguous() for k, v in embedder.state_dict().items()}, str(folder / "model.safetensors"))
        write_reward_json(folder, "s2e_concepts", source="embedding", domain=embedder.domain, net=embedder.spec(), **meta)
        return folder

    # --- inputs -----------------------------------------------------------------------------------------------

    def _connect4(self, obs, actions):
        """(boards before, columns, boards after, legal) of a Connect 4 batch; illegal moves keep the board."""
        boards = boards_from(obs)
        cols = np.asarray(actions).reshape(len(boards), -1)
        if cols.shape[1] != 1 or not np.allclose(cols, np.rint(cols)):
            raise RewardInputError(f"actions: expected one integer column per Connect 4 move, found shape {np.shape(actions)}")
        cols = np.rint(cols[:, 0]).astype(int)
        after, legal = boards.copy(), np.zeros(len(boards), bool)
        for i, (board, col) in enumerate(zip(boards, cols)):
            if 0 <= col < COLS and board[0, col] == 0:
                after[i], _ = drop(board, int(col))
                legal[i] = True
        return boards, cols, after, legal

    def _lunar(self, obs, actions, next_obs, dones):
        obs, actions, next_obs, _ = check_transition_batch(obs, actions, next_obs, dones)
        actions = actions.reshape(len(obs), -1)
        if obs.shape[1:] != (8,) or actions.shape[1] != 1:
            raise RewardInputError(f"Lunar Lander: expected obs (N, 8) and one discrete action per row, found {obs.shape} and {actions.shape}")
        acts = np.rint(actions[:, 0]).astype(int)
        if not np.isin(acts, (0, 1, 2, 3)).all():
            raise RewardInputError(f"actions: Lunar Lander actions are 0 (noop), 1 (left), 2 (main) or 3 (right), found {sorted(set(acts) - {0, 1, 2, 3})}")
        return obs, acts, next_obs

    def _retrieve(self, obs, actions, next_obs) -> list[tuple[str, ...]]:
        import torch

        with torch.inference_mode():
            t = lambda x: torch.as_tensor(np.asarray(x), device=self.device)  # noqa: E731
            states = self.embedder.embed_transitions(t(obs), t(actions), t(next_obs))
            nearest = torch.cdist(states, self._texts).argmin(dim=-1).cpu().numpy()
        return [self.concept_sets[i] for i in nearest]

    # --- the reward interface ---------------------------------------------------------------------------------

    def concepts(self, obs, actions, next_obs=None, dones=None) -> list[tuple[str, ...] | None]:
        """The concept set of each transition (predicted, or from the rules); None for an illegal Connect 4 move."""
        if self.domain == "connect4":
            boards, cols, after, legal = self._connect4(obs, actions)
            found: list = [None] * len(boards)
            idx = np.flatnonzero(legal)
            if idx.size:
                if self.embedder is None:
                    sets = [connect4_concepts(boards[i], int(cols[i])) for i in idx]
                else:
                    sets = self._retrieve(boards[idx], cols[idx], after[idx])
                for i, s in zip(idx, sets):
                    found[i] = s
            return found
        obs, acts, next_obs = self._lunar(obs, actions, next_obs if next_obs is not None else obs, dones if dones is not None else np.zeros(len(obs)))
        return self._lunar_concepts(obs, acts, next_obs)

    def _lunar_concepts(self, obs, acts, next_obs) -> list[tuple[str, ...]]:
        """Concept sets of an already-checked Lunar Lander batch."""
        if self.embedder is None:
            return [concepts_from_mask(m, "lunarlander") for m in lunar_concepts_batch(obs, acts, next_obs)]
        return self._retrieve(obs, acts, next_obs)

    def explain(self, obs, actions, next_obs=None, dones=None) -> list[str]:
        """One explanation per transition: the template sentences of its concepts."""
        return [explain(s, self.domain) if s is not None else "This move is illegal: the column is full."
                for s in self.concepts(obs, actions, next_obs, dones)]

    def score(self, obs, actions, next_obs, dones) -> np.ndarray:
        """The shaping reward of each transition from its (predicted) concepts."""
        if self.domain == "connect4":
            sets = self.concepts(obs, actions, next_obs, dones)
            return np.array([connect4_value(s) if s is not None else 0.0 for s in sets], dtype=np.float32)
        o, a, n = self._lunar(obs, actions, next_obs, dones)  # checked once, used for the concepts and the terms
        sets = self._lunar_concepts(o, a, n)
        masks = np.stack([concept_mask(s, "lunarlander") for s in sets]) if sets else np.zeros((0, 8), bool)
        return (lunar_potential_terms(o, n) * masks).sum(axis=1).astype(np.float32)


__all__ = ["ConceptShapingReward", "boards_from"]
