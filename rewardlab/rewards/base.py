"""The shared reward interface: two protocols, the Chat type, and the errors a caller can cause."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, Union, runtime_checkable

import numpy as np

Message = dict[str, str]
Chat = Union[str, list[Message]]
"""A plain string, or a list of ``{"role", "content"}`` messages: the two forms TRL datasets use."""


class RewardInputError(ValueError):
    """Input a caller got wrong (mismatched lengths, a malformed chat, NaN in transitions)."""


@runtime_checkable
class TextReward(Protocol):
    """Scores responses to prompts. Higher is better."""

    def score(
        self, prompts: Sequence[Chat], responses: Sequence[Chat], references: Sequence[Chat] | None = None
    ) -> list[float]: ...


@runtime_checkable
class TransitionReward(Protocol):
    """Scores environment transitions, batched like gymnasium vector envs (first axis is the batch)."""

    def score(self, obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray, dones: np.ndarray) -> np.ndarray: ...


def modality(reward) -> str:
    """``"text"`` or ``"transition"``. Both protocols have a ``score`` method, so ``isinstance`` cannot tell them
    apart: a reward says so with a ``modality`` attribute, else the name of ``score``'s first argument decides."""
    declared = getattr(reward, "modality", None)
    if declared in ("text", "transition"):
        return declared
    import inspect

    params = list(inspect.signature(reward.score).parameters)
    if params[:1] == ["prompts"]:
        return "text"
    if params[:1] == ["obs"]:
        return "transition"
    raise TypeError(f"{type(reward).__name__}: cannot tell whether it scores text or transitions; set modality = 'text' or 'transition'")


def chat_to_messages(chat: Chat, role: str, field: str = "chat") -> list[Message]:
    """Normalise a Chat to a message list; a bare string becomes one message with ``role``."""
    if isinstance(chat, str):
        return [{"role": role, "content": chat}]
    if isinstance(chat, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in chat):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in chat]
    raise RewardInputError(f"{field}: expected a string or a list of {{role, content}} messages, found {type(chat).__name__}")


def is_one_chat(value) -> bool:
    """Whether ``value`` is one Chat rather than a batch of them: a string, or a non-empty list whose items are all
    message dicts (with a ``"role"``). A batch is a list of strings or of message lists, so the two never collide."""
    if isinstance(value, str):
        return True
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(m, dict) and "role" in m for m in value)


def _batch(value, field: str) -> list:
    if isinstance(value, dict):
        raise RewardInputError(f"{field}: found one message dict; wrap it in a list: a chat is a list of {{role, content}} "
                               "messages, and a batch is a list of chats")
    if isinstance(value, (bytes, bytearray)):
        raise RewardInputError(f"{field}: expected a string, a chat or a list of them, found bytes")
    try:
        return list(value)
    except TypeError:
        raise RewardInputError(f"{field}: expected a list of chats (strings or lists of {{role, content}} messages), "
                               f"found {type(value).__name__}") from None


def _kind(value) -> str:
    return "a single string" if isinstance(value, str) else "a single chat (a list of messages)"


def check_text_batch(
    prompts: Sequence[Chat] | Chat, responses: Sequence[Chat] | Chat, references: Sequence[Chat] | Chat | None
) -> tuple[list[Chat], list[Chat], list[Chat] | None]:
    """The batch as lists, or a RewardInputError that names the field when it is malformed.

    Every text reward's ``score`` goes through here, so each accepts one item as well as a batch:
    ``score("What is 3 + 4?", "7")`` is ``score(["What is 3 + 4?"], ["7"])`` (a list of one float). One item is a
    string or a message list (``is_one_chat``); mixing one item with a batch is refused rather than guessed at."""
    given = {k: v for k, v in (("prompts", prompts), ("responses", responses), ("references", references)) if v is not None}
    single = {k: is_one_chat(v) for k, v in given.items()}
    if any(single.values()):
        if not all(single.values()):
            one = next(k for k, v in single.items() if v)
            many = next(k for k, v in single.items() if not v)
            raise RewardInputError(f"{one} is {_kind(given[one])} but {many} is a list of {len(_batch(given[many], many))}: "
                                   "pass lists of the same length (one item each), or a single string or chat for each")
        as_chat = lambda chat: chat if isinstance(chat, str) else list(chat)  # noqa: E731 - a tuple of messages too
        return [as_chat(prompts)], [as_chat(responses)], None if references is None else [as_chat(references)]
    prompts, responses = _batch(prompts, "prompts"), _batch(responses, "responses")
    references = None if references is None else _batch(references, "references")
    if len(prompts) != len(responses):
        raise RewardInputError(f"prompts and responses differ in length: {len(prompts)} prompts, {len(responses)} responses")
    if references is not None and len(references) != len(responses):
        raise RewardInputError(f"references and responses differ in length: {len(references)} references, {len(responses)} responses")
    return prompts, responses, references


def check_transition_batch(obs, actions, next_obs, dones) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coerce to float arrays with a shared batch axis, rejecting NaN/inf; errors name the field."""
    arrays = {}
    for name, value in (("obs", obs), ("actions", actions), ("next_obs", next_obs), ("dones", dones)):
        try:
            arr = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise RewardInputError(f"{name}: expected a numeric array ({exc})") from None
        if arr.ndim == 0:
            raise RewardInputError(f"{name}: expected a batch (first axis), found a scalar")
        if not np.all(np.isfinite(arr)):
            raise RewardInputError(f"{name}: contains NaN or inf")
        arrays[name] = arr
    sizes = {k: v.shape[0] for k, v in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise RewardInputError(f"batch sizes differ: {sizes}")
    if arrays["obs"].shape != arrays["next_obs"].shape:
        raise RewardInputError(f"obs and next_obs shapes differ: {arrays['obs'].shape} vs {arrays['next_obs'].shape}")
    return arrays["obs"], arrays["actions"], arrays["next_obs"], arrays["dones"]
