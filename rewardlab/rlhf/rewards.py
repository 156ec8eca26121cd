"""Rewards as TRL reward functions (GRPO, RLOO): any TextReward, SPO win rates, and a verifiable math check.

TRL calls a reward function as ``f(prompts=..., completions=..., completion_ids=..., **columns)`` and expects one
float per completion, in order; the dataset's other columns arrive as keyword lists of the same length. Prompts and
completions are strings, or message lists for conversational data; a TextReward takes both forms.

* ``reward_function(source)``: a TextReward from a folder, an MLflow URI or a running ``rewardlab serve`` URL (or an
  object). A remote one becomes an ``async`` function, which TRL awaits on its event loop alongside other async
  rewards, so the HTTP calls overlap generation bookkeeping instead of blocking it.
* ``win_rate_reward(source, group_size)`` / ``WinRateReward``: SPO (Swamy et al., "A Minimaximalist Approach to RLHF"). Each completion's reward is its win
  rate against the other completions of the same prompt, reward_i = mean over j != i of P(i > j).
* ``correctness_reward``: 1 when the last number a completion states equals the dataset's ``answer`` column.
* ``OracleWinRate``: SPO against a noisy preference oracle instead of a reward model: each pair of completions in a
  group is compared once by a simulated annotator who prefers the correct one, but answers the other way with
  probability ``flip_rate`` (and flips a fair coin between two equally correct ones). SPO's claim is robustness to
  such noisy, non-Bradley-Terry preferences; benchmarks/rlhf.py's ``spo_oracle`` arm measures it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from rewardlab.rewards.base import Chat, RewardInputError


def _load(source):
    from rewardlab import rewards

    reward = rewards.load(source) if isinstance(source, (str,)) or hasattr(source, "__fspath__") else source
    if rewards.modality(reward) != "text":
        raise TypeError(f"{source}: a {type(reward).__name__} scores transitions; RLHF needs a text reward")
    return reward


def _asynchronous(reward) -> bool:
    """A remote reward (``rewardlab serve``) has ``ascore``: its TRL function should be awaited, not block."""
    return callable(getattr(reward, "ascore", None))


def last_batch(prompts: Sequence[Chat], completions: Sequence[Chat], rewards: list[float]) -> dict[str, list]:
    """What a reward function keeps of its last call, for the completion tables."""
    return {"prompts": list(prompts), "completions": list(completions), "rewards": rewards}


def _references(kwargs: dict, column: str | None, n: int, name: str) -> list | None:
    if column is None:
        return None
    if column not in kwargs:
        present = sorted(k for k in kwargs if k not in ("trainer_state", "log_extra", "log_metric", "completion_ids", "environments"))
        raise RewardInputError(f"reward '{name}' needs references from the dataset column '{column}', which the batch does "
                               f"not have (columns: {present})")
    refs = list(kwargs[column])
    if len(refs) != n:
        raise RewardInputError(f"reward '{name}': column '{column}' has {len(refs)} values for {n} completions")
    return refs


class TextRewardFunction:
    """A local TextReward as a TRL reward function. ``reference_column`` names the dataset column that holds the
    references (POLAR); ``name`` is what TRL logs its curve under (``rewards/<name>/mean``)."""

    def __init__(self, reward, name: str = "reward", reference_column: str | None = None, normalize: bool = False):
        self.reward, self.__name__, self.reference_column = reward, name, reference_column
        self.stats = None
        if normalize:
            stats = getattr(reward, "normalization", None)
            if not stats:
                raise RewardInputError(f"reward '{name}': normalize needs the reward's stored statistics (reward.json "
                                       "'normalization', written by rewardlab's text learners); this reward has none")
            self.stats = stats
        self.last: dict[str, list] = {}

    def _whiten(self, scores: list[float]) -> list[float]:
        """(score - mean) / std with the statistics measured at training time, when ``normalize`` was asked for."""
        from rewardlab.rewards.text import whiten

        return scores if self.stats is None else whiten(scores, self.stats)

    def __call__(self, prompts: Sequence[Chat], completions: Sequence[Chat], **kwargs: Any) -> list[float]:
        refs = _references(kwargs, self.reference_column, len(completions), self.__name__)
        scores = self._whiten([float(s) for s in self.reward.score(list(prompts), list(completions), refs)])
        self.last = last_batch(prompts, completions, scores)
        return scores


class AsyncTextRewardFunction(TextRewardFunction):
    """A remote TextReward (``rewardlab serve``) as an asynchronous TRL reward function."""

    async def __call__(self, prompts: Sequence[Chat], completions: Sequence[Chat], **kwargs: Any) -> list[float]:
        refs = _references(kwargs, self.reference_column, len(completions), self.__name__)
        scores = self._whiten([float(s) for s in await self.reward.ascore(list(prompts), list(completions), refs)])
        self.last = last_batch(prompts, completions, scores)
        return scores


def reward_function(source, name: str | None = None, reference_column: str | None = None, normalize: bool = False) -> TextRewardFunction:
    """A TRL reward function for a TextReward named by a folder, an MLflow URI, an ``http://`` URL, or given as an
    object. Remote rewards get the asynchronous form. ``normalize``: whiten the scores with the reward's stored
    statistics (its mean and std on held-out answers at training time)."""
    reward = _load(source)
    cls = AsyncTextRewardFunction if _asynchronous(reward) else TextRewardFunction
    return cls(reward, name or _default_name(source), reference_column, normalize)


def _default_name(source) -> str:
    """The curve name of a reward: the registered name of ``models:/NAME/...``, else the last part of the path."""
    text = str(source) if isinstance(source, str) or hasattr(source, "__fspath__") else type(source).__name__
    if text.startswith("models:/"):
        return text[len("models:/"):].split("/")[0].split("@")[0]
    return text.rstrip("/").split("/")[-1].split("@")[0] or "reward"


def _key(chat: Chat) -> str:
    return chat if isinstance(chat, str) else json.dumps(chat, sort_keys=True)


def groups_of(prompts: Sequence[Chat], group_size: int) -> list[range]:
    """The index ranges of the groups: ``group_size`` consecutive completions of one prompt, as GRPO and RLOO lay
    them out. Raises RewardInputError when the batch is not made of whole groups."""
    n = len(prompts)
    if group_size < 2:
        raise RewardInputError(f"SPO: a group needs at least 2 completions to compare, found group_size={group_size}")
    if n % group_size:
        raise RewardInputError(f"SPO: {n} completions are not whole groups of {group_size}; every call must hold complete "
                               "groups (with several processes, make each process's generation batch a multiple of "
                               "num_generations)")
    out = []
    for start in range(0, n, group_size):
        keys = {_key(p) for p in prompts[start : start + group_size]}
        if len(keys) != 1:
            raise RewardInputError(f"SPO: completions {start}..{start + group_size - 1} answer {len(keys)} different prompts; "
                                   f"a group must be the {group_size} completions of one prompt, consecutive")
        out.append(range(start, start + group_size))
    return out


def win_rates(preference: list[list[float]]) -> list[float]:
    """reward_i = mean over j != i of P(i > j), from the matrix P (diagonal ignored)."""
    n = len(preference)
    return [sum(preference[i][j] for j in range(n) if j != i) / (n - 1) for i in range(n)]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


class WinRateReward:
    """SPO's win-rate reward over each group of ``group_size`` completions of one prompt.

    ``preference="bradley_terry"``: P(i > j) = sigmoid(r_i - r_j) from one score per completion (any TextReward).
    ``preference="polar"``: P(i > j) = sigmoid(R(i | ref j) - R(j | ref i)), where R(c | ref) is a POLAR reward of
    completion c with the other completion as its reference; it costs n(n - 1) scores a group. Measured
    (benchmarks/spo_polar_preference.py, a fine-tuned POLAR RM, 120 math questions x 6 samples): these win rates
    rank right answers above wrong ones (AUROC 0.70) and are not a similarity score (correlation 0.05 with TF-IDF
    similarity to the group), but choose a group's best answer no better than "shortest" (0.333 vs 0.342), while
    the same RM against a verified reference reaches AUROC 0.995. Use it only where no reference exists. Both are symmetric,
    P(i > j) + P(j > i) = 1, so the rewards of a group always sum to n / 2. A call scores the whole batch at once
    (one ``score`` call), so the reward model sees one batch, not one per group. ``win_rate_reward`` picks the
    asynchronous form for a remote reward.
    """

    def __init__(self, reward, group_size: int, preference: str = "bradley_terry", name: str = "spo_win_rate", temperature: float = 1.0):
        if preference not in ("bradley_terry", "polar"):
            raise ValueError(f"SPO preference: expected bradley_terry or polar, found {preference!r}")
        self.reward, self.group_size, self.preference, self.__name__, self.temperature = _load(reward), group_size, preference, name, temperature
        self.last: dict[str, list] = {}

    def _requests(self, prompts: Sequence[Chat], completions: Sequence[Chat]):
        """The groups, and the (prompts, responses, references) to score for all of them in one call."""
        if len(prompts) != len(completions):
            raise RewardInputError(f"SPO: {len(prompts)} prompts for {len(completions)} completions")
        groups = groups_of(prompts, self.group_size)
        if self.preference == "bradley_terry":
            return groups, (list(prompts), list(completions), None)
        pairs = [(i, j) for g in groups for i in g for j in g if i != j]  # R(i | ref j), group by group
        return groups, ([prompts[i] for i, _ in pairs], [completions[i] for i, _ in pairs], [completions[j] for _, j in pairs])

    def _rates(self, groups: list[range], scores: Sequence[float]) -> list[float]:
        scores, out, k = [float(s) for s in scores], [], 0
        sig = lambda x: _sigmoid(x / self.temperature)  # noqa: E731
        for g in groups:
            n = len(g)
            if self.preference == "bradley_terry":
                r = scores[g.start : g.stop]
                p = [[sig(r[i] - r[j]) for j in range(n)] for i in range(n)]
            else:
                pairs = [(i, j) for i in range(n) for j in range(n) if i != j]  # _requests' order within a group
                given = dict(zip(pairs, scores[k : k + len(pairs)]))  # given[(i, j)] = R(i | ref j)
                k += len(pairs)
                p = [[sig(given[(i, j)] - given[(j, i)]) if i != j else 0.5 for j in range(n)] for i in range(n)]
            out.extend(win_rates(p))
        return out

    def __call__(self, prompts: Sequence[Chat], completions: Sequence[Chat], **kwargs: Any) -> list[float]:
        groups, request = self._requests(prompts, completions)
        out = self._rates(groups, self.reward.score(*request))
        self.last = last_batch(prompts, completions, out)
        return out


class AsyncWinRateReward(WinRateReward):
    """SPO win rates from a remote reward (``rewardlab serve``), as an asynchronous TRL reward function."""

    async def __call__(self, prompts: Sequence[Chat], completions: Sequence[Chat], **kwargs: Any) -> list[float]:
        groups, request = self._requests(prompts, completions)
        out = self._rates(groups, await self.reward.ascore(*request))
        self.last = last_batch(prompts, completions, out)
        return out


def win_rate_reward(source, group_size: int, preference: str = "bradley_terry", name: str = "spo_win_rate",
                    temperature: float = 1.0) -> WinRateReward:
    """SPO win rates from a TextReward named by a folder, an MLflow URI or an ``http://`` URL (or an object); a
    remote reward gets the asynchronous form."""
    reward = _load(source)
    cls = AsyncWinRateReward if _asynchronous(reward) else WinRateReward
    return cls(reward, group_size, preference, name, temperature)


class OracleWinRate:
    """SPO's win rate from a noisy correctness oracle: reward_i = mean over j != i of o_ij, where o_ij in {0, 1} is
    one sampled comparison (o_ji = 1 - o_ij): the correct completion wins with probability 1 - ``flip_rate``, and a
    tie in correctness is a fair coin. Comparisons are drawn from a generator seeded once, so a run is reproducible.
    Needs the dataset's ``answer`` column, like ``correctness_reward``."""

    def __init__(self, group_size: int, flip_rate: float, seed: int = 0, name: str = "spo_oracle"):
        import random

        if not 0 <= flip_rate <= 0.5:
            raise ValueError(f"flip_rate must be in [0, 0.5] (0.5 is a coin flip), found {flip_rate}")
        self.group_size, self.flip_rate, self.__name__ = group_size, flip_rate, name
        self.rng = random.Random(seed)
        self.comparisons = self.flipped = 0
        self.last: dict[str, list] = {}

    def __call__(self, prompts: Sequence[Chat], completions: Sequence[Chat], answer: Sequence[float] | None = None, **kwargs: Any) -> list[float]:
        correct = correctness_reward(prompts, completions, answer)
        out = [0.0] * len(completions)
        for g in groups_of(prompts, self.group_size):
            wins = {i: 0.0 for i in g}
            for a in g:
                for b in g:
                    if b <= a:
                        continue
                    if correct[a] == correct[b]:
                        a_wins = self.rng.random() < 0.5
                    else:
                        flip = self.rng.random() < self.flip_rate
                        self.comparisons, self.flipped = self.comparisons + 1, self.flipped + flip
                        a_wins = (correct[a] > correct[b]) != flip
                    wins[a if a_wins else b] += 1.0
            for i in g:
                out[i] = wins[i] / (len(g) - 1)
        self.last = last_batch(prompts, completions, out)
        return out


def completion_text(completion: Chat) -> str:
    """The text of a completion: the string, or the content of its last message."""
    return completion if isinstance(completion, str) else (completion[-1]["content"] if completion else "")


def correctness_reward(prompts: Sequence[Chat], completions: Sequence[Chat], answer: Sequence[float] | None = None, **_: Any) -> list[float]:
    """1.0 when the last number a completion states equals the dataset's ``answer``, else 0.0 (a verifiable reward)."""
    from rewardlab.data.math_answers import stated_number

    if answer is None:
        raise RewardInputError("correctness reward: the dataset needs an 'answer' column with the true result")
    return [float(stated_number(completion_text(c)) == float(a)) for c, a in zip(completions, answer)]


correctness_reward.__name__ = "correctness"

__all__ = ["AsyncTextRewardFunction", "AsyncWinRateReward", "OracleWinRate", "TextRewardFunction", "WinRateReward", "correctness_reward", "groups_of",
           "reward_function", "win_rate_reward", "win_rates"]
