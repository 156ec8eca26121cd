"""S2E's joint embedding of (state, action) and concept explanations (State2Explanation, Das et al., NeurIPS 2023).

Two encoders map into one space of ``dim`` dimensions:

* the state-action encoder: a small CNN over the board before and after a Connect 4 move, or an MLP over a Lunar
  Lander transition (previous state, next state, their difference and the one-hot action), inputs standardised with
  statistics kept as buffers;
* the explanation encoder: word embeddings feeding an LSTM, over a vocabulary built from the domain's template
  sentences (every explanation is a join of those sentences, so the vocabulary is closed).

Training pulls a transition towards its own explanation and pushes it away from others with S2E's loss
(||s - e|| - y)^2, y = 0 for the matching explanation and y = ``margin`` for a mismatched one. An explanation is
predicted by retrieval: the nearest of the domain's finite set of explanations.
"""

from __future__ import annotations

import re

import torch
from torch import nn
from torch.nn import functional as F

CONNECT4_SHAPE = (6, 7)
LUNAR_OBS_DIM, LUNAR_ACTIONS = 8, 4
PAD, UNK = 0, 1
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words and punctuation marks."""
    return _WORD.findall(text.lower())


def build_vocab(texts: list[str]) -> list[str]:
    """``<pad>``, ``<unk>``, then every token of ``texts`` in order of first appearance."""
    vocab = ["<pad>", "<unk>"]
    for text in texts:
        for token in tokenize(text):
            if token not in vocab:
                vocab.append(token)
    return vocab


class ExplanationEncoder(nn.Module):
    """Word embeddings -> one-layer LSTM -> the last hidden state -> a linear map into the joint space."""

    def __init__(self, vocab: list[str], dim: int, word_dim: int = 32, hidden: int = 64):
        super().__init__()
        self.vocab, self.word_dim, self.hidden = list(vocab), word_dim, hidden
        self.index = {token: i for i, token in enumerate(self.vocab)}
        self.embed = nn.Embedding(len(self.vocab), word_dim, padding_idx=PAD)
        self.lstm = nn.LSTM(word_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, dim)

    def token_ids(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(padded ids (n, longest), lengths (n,)) for a list of texts."""
        ids = [[self.index.get(t, UNK) for t in tokenize(text)] or [UNK] for text in texts]
        lengths = torch.tensor([len(x) for x in ids])
        padded = torch.full((len(ids), int(lengths.max())), PAD, dtype=torch.long)
        for i, row in enumerate(ids):
            padded[i, : len(row)] = torch.tensor(row)
        return padded, lengths

    def forward(self, texts: list[str]) -> torch.Tensor:
        ids, lengths = self.token_ids(texts)
        ids = ids.to(self.embed.weight.device)
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.out(h[-1])


class BoardEncoder(nn.Module):
    """Connect 4: planes (mover's pieces, opponent's pieces) before and after the move, and the new piece, through
    three 3x3 convolutions (a 7x7 receptive field, enough to see any line of four) and two linear layers."""

    def __init__(self, dim: int, channels: int = 32, hidden: int = 256):
        super().__init__()
        self.channels, self.hidden = channels, hidden
        rows, cols = CONNECT4_SHAPE
        self.conv = nn.Sequential(
            nn.Conv2d(5, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(2 * channels, 2 * channels, 3, padding=1), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * channels * rows * cols, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    @staticmethod
    def planes(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        """Boards (n, 6, 7) with 0 empty, 1 mover, 2 opponent -> float planes (n, 5, 6, 7)."""
        b, a = before.long(), after.long()
        return torch.stack([b == 1, b == 2, a == 1, a == 2, (a == 1) & (b != 1)], dim=1).float()

    def forward(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(self.planes(before, after)))


class TransitionEncoder(nn.Module):
    """Lunar Lander: [s, s', s' - s] standardised, plus the one-hot action, through an MLP."""

    def __init__(self, dim: int, hidden: int = 128):
        super().__init__()
        self.hidden = hidden
        n = 3 * LUNAR_OBS_DIM
        self.register_buffer("in_mean", torch.zeros(n))
        self.register_buffer("in_std", torch.ones(n))
        self.net = nn.Sequential(nn.Linear(n + LUNAR_ACTIONS, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    @staticmethod
    def raw(obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        return torch.cat([obs.float(), next_obs.float(), (next_obs - obs).float()], dim=-1)

    def set_normalisation(self, obs: torch.Tensor, next_obs: torch.Tensor) -> None:
        raw = self.raw(obs, next_obs)
        self.in_mean.copy_(raw.mean(0))
        self.in_std.copy_(raw.std(0).clamp_min(1e-6))

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        x = (self.raw(obs, next_obs) - self.in_mean) / self.in_std
        return self.net(torch.cat([x, F.one_hot(actions.long().reshape(-1), LUNAR_ACTIONS).float()], dim=-1))


class ConceptEmbedder(nn.Module):
    """The joint embedding: ``embed_transitions`` for (state, action, next state), ``embed_texts`` for explanations.

    Connect 4 transitions are (board before, board after) pairs; Lunar Lander ones (obs, action, next_obs).
    """

    def __init__(self, domain: str, vocab: list[str], dim: int = 32, hidden: int = 128, word_dim: int = 32, text_hidden: int = 64):
        super().__init__()
        if domain not in ("connect4", "lunarlander"):
            raise ValueError(f"ConceptEmbedder: domain must be connect4 or lunarlander, found {domain!r}")
        self.domain, self.dim, self.hidden, self.word_dim, self.text_hidden = domain, dim, hidden, word_dim, text_hidden
        self.state = BoardEncoder(dim, hidden=2 * hidden) if domain == "connect4" else TransitionEncoder(dim, hidden)
        self.text = ExplanationEncoder(vocab, dim, word_dim, text_hidden)

    def spec(self) -> dict:
        """Constructor arguments, stored in reward.json so the module is rebuilt without pickling."""
        return {"domain": self.domain, "vocab": self.text.vocab, "dim": self.dim, "hidden": self.hidden,
                "word_dim": self.word_dim, "text_hidden": self.text_hidden}

    def embed_transitions(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        if self.domain == "connect4":
            return self.state(obs.reshape(-1, *CONNECT4_SHAPE), next_obs.reshape(-1, *CONNECT4_SHAPE))
        return self.state(obs, actions, next_obs)

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        return self.text(texts)


def s2e_loss(states: torch.Tensor, texts: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor,
             margin: float = 1.0) -> tuple[torch.Tensor, dict]:
    """S2E's embedding loss: mean over pairs of (||s - e|| - y)^2, y = 0 for the matching explanation, ``margin``
    for the mismatched ones.

    ``states`` (B, d) are transition embeddings, ``texts`` (T, d) the embeddings of the candidate explanations,
    ``positive`` (B,) the index of each transition's explanation and ``negatives`` (B, K) indices of mismatched ones.
    Positive and negative terms are averaged separately and summed, so K does not reweigh the two.
    """
    pos = (states - texts[positive]).norm(dim=-1)
    neg = (states.unsqueeze(1) - texts[negatives]).norm(dim=-1)
    pos_loss, neg_loss = pos.pow(2).mean(), (neg - margin).pow(2).mean()
    stats = {"pos_distance": pos.mean(), "neg_distance": neg.mean(), "pos_loss": pos_loss, "neg_loss": neg_loss}
    return pos_loss + neg_loss, {k: v.item() for k, v in stats.items()}


def rank_candidates(states: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    """Candidate indices sorted from nearest to farthest, per transition: (B, T)."""
    return torch.cdist(states, texts).argsort(dim=-1)


def recall_at(ranking: torch.Tensor, truth: torch.Tensor, ks=(1, 2, 3)) -> dict[int, float]:
    """Recall@k: the fraction of transitions whose true explanation is among their k nearest candidates."""
    hits = ranking == truth.reshape(-1, 1)
    return {k: float(hits[:, :k].any(dim=1).float().mean()) for k in ks}


__all__ = ["BoardEncoder", "ConceptEmbedder", "ExplanationEncoder", "TransitionEncoder", "build_vocab", "rank_candidates",
           "recall_at", "s2e_loss", "tokenize"]
