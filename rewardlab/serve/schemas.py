"""Request bodies. Every check names the field it rejects, down to the list index (``obs[3][1]``). Booleans are
strict (``StrictBool``): ``"yes"``, ``"false"`` or ``1`` is refused, not read as true."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, StrictBool, model_validator

POLAR_SEP = "<|reward|>"
POLAR_END = "[UNUSED_TOKEN_130]"


class FieldError(ValueError):
    """A request error that knows which field it is about (raised inside validators)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _check_chat(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
    ):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    found = type(value).__name__ if not isinstance(value, list) else "a list that is not {role, content} messages"
    raise ValueError(f"expected a string or a non-empty list of {{role, content}} messages, found {found}")


ChatField = Annotated[Any, AfterValidator(_check_chat)]


def _same_length(fields: dict[str, list | None]) -> None:
    present = {k: len(v) for k, v in fields.items() if v is not None}
    if len(set(present.values())) > 1:
        first = next(iter(present))
        odd = next(k for k, n in present.items() if n != present[first])
        counts = ", ".join(f"{n} {k}" for k, n in present.items())
        raise FieldError(odd, f"lists must have the same length, found {counts}")


class ScoreRequest(BaseModel):
    """``POST /v1/score`` (and ``/v1/explain`` for text rewards)."""

    model_config = ConfigDict(extra="forbid")
    prompts: list[ChatField] = Field(min_length=1)
    responses: list[ChatField] = Field(min_length=1)
    references: list[ChatField] | None = Field(default=None, min_length=1)
    normalize: StrictBool | None = None  # whiten with the reward's stored statistics (default: the server's --normalize)

    @model_validator(mode="after")
    def _lengths(self) -> ScoreRequest:
        _same_length({"prompts": self.prompts, "responses": self.responses, "references": self.references})
        return self


def _first_bad_path(value: Any, prefix: str) -> str:
    """Where the first non-number sits in a nested list, for the error message."""
    if isinstance(value, list):
        for i, v in enumerate(value):
            path = _first_bad_path(v, f"{prefix}[{i}]")
            if path:
                return path
        return ""
    return "" if isinstance(value, (int, float)) else f"{prefix} (found {type(value).__name__})"


def to_array(name: str, value: Any) -> np.ndarray:
    """A numeric float32 array with the batch on the first axis, or a FieldError saying what is wrong where."""
    if not isinstance(value, list) or not value:
        raise FieldError(name, "expected a non-empty list (one entry per transition)")
    try:
        raw = np.asarray(value)
    except ValueError:
        raise FieldError(name, "rows have different lengths; every entry must have the same shape") from None
    if raw.dtype.kind not in "biuf":
        bad = _first_bad_path(value, name)
        if bad:
            raise FieldError(name, f"expected numbers; the first entry that is not a number is {bad}")
        raise FieldError(name, "rows have different lengths; every entry must have the same shape")
    arr = raw.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        index = "".join(f"[{i}]" for i in np.argwhere(~np.isfinite(arr))[0])
        raise FieldError(name, f"{name}{index} is NaN or inf; transitions must be finite")
    return arr


class TransitionRequest(BaseModel):
    """``POST /v1/score_transitions`` and ``/v1/explain``: arrays with one entry per transition."""

    model_config = ConfigDict(extra="forbid")
    obs: list[Any]
    actions: list[Any]
    next_obs: list[Any]
    dones: list[Any] | None = None
    _arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] = PrivateAttr()

    @model_validator(mode="after")
    def _arrays_ok(self) -> TransitionRequest:
        obs, actions, next_obs = (to_array(k, getattr(self, k)) for k in ("obs", "actions", "next_obs"))
        dones = to_array("dones", self.dones) if self.dones is not None else np.zeros(len(obs), np.float32)
        _same_length({"obs": self.obs, "actions": self.actions, "next_obs": self.next_obs, "dones": self.dones})
        if obs.shape != next_obs.shape:
            raise FieldError("next_obs", f"shape {next_obs.shape} differs from obs shape {obs.shape}")
        if dones.ndim != 1:
            raise FieldError("dones", f"expected one flag per transition, found shape {dones.shape}")
        self._arrays = (obs, actions, next_obs, dones)
        return self

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self._arrays


class GetRewardRequest(BaseModel):
    """OpenRLHF's remote reward API: ``query`` is prompt + response as one text; ``labels`` become references."""

    model_config = ConfigDict(extra="ignore")
    query: list[str] = Field(min_length=1)
    prompts: list[str] | None = None
    labels: list[Any] | None = None

    @model_validator(mode="after")
    def _lengths(self) -> GetRewardRequest:
        _same_length({"query": self.query, "prompts": self.prompts, "labels": self.labels})
        return self

    def split(self) -> tuple[list[str], list[str], list[str] | None]:
        """(prompts, responses, references). The response is the query minus its prompt prefix when it has one."""
        prompts = self.prompts or [""] * len(self.query)
        responses = [q[len(p) :] if p and q.startswith(p) else q for q, p in zip(self.query, prompts)]
        prompts = [p if p and q.startswith(p) else "" for q, p in zip(self.query, prompts)]
        labels = None
        if self.labels is not None and any(lab not in (None, "") for lab in self.labels):
            labels = ["" if lab is None else str(lab) for lab in self.labels]
        return prompts, responses, labels


class PoolingRequest(BaseModel):
    """The vLLM-style pooling request that POLAR's reward client sends: one encoded string per candidate."""

    model_config = ConfigDict(extra="ignore")
    input: list[str] | str
    model: str | None = None

    def split(self) -> tuple[list[str], list[str], list[str]]:
        """(prompts, candidates, references) from ``prompt\\nreference<|reward|>prompt\\ncandidate[UNUSED_TOKEN_130]``."""
        texts = [self.input] if isinstance(self.input, str) else self.input
        if not texts:
            raise FieldError("input", "expected a non-empty list of strings")
        triples = [split_polar(text, f"input[{i}]") for i, text in enumerate(texts)]
        return [t[0] for t in triples], [t[1] for t in triples], [t[2] for t in triples]


def split_polar(text: str, field: str) -> tuple[str, str, str]:
    """(prompt, candidate, reference) of one string in POLAR's client format.

    The prompt is the longest common prefix of the two sides, cut back to its last newline (the client's separator
    between prompt and answer); without a newline (the client's "pretrain" wrapper) it is the whole common prefix.
    """
    if text.count(POLAR_SEP) != 1:
        raise FieldError(field, f"expected exactly one '{POLAR_SEP}' between the reference side and the candidate side, "
                         f"found {text.count(POLAR_SEP)}")
    left, right = text.split(POLAR_SEP)
    right = right.removesuffix(POLAR_END)
    n = 0
    while n < min(len(left), len(right)) and left[n] == right[n]:
        n += 1
    cut = left.rfind("\n", 0, n)
    if cut >= 0:
        return left[:cut], right[cut + 1 :], left[cut + 1 :]
    return left[:n], right[n:], left[n:]


class ClassifyRequest(BaseModel):
    """``POST /classify`` in either engine's shape: vLLM's ``{"model", "input", "use_activation"}`` (verl's reward
    loop; older verl sends ``activation``) or SGLang's ``{"model", "text"}`` (POLAR's client, server_type="sglang")."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    input: list[str] | str | None = None
    text: list[str] | str | None = None
    use_activation: StrictBool | None = None
    activation: StrictBool | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ClassifyRequest:
        if (self.input is None) == (self.text is None):
            raise FieldError("input", "send the texts as 'input' (vLLM's classify API) or as 'text' (SGLang's), exactly one")
        texts = self.texts()
        if not texts:
            raise FieldError("input" if self.input is not None else "text", "expected a non-empty list of strings")
        return self

    def texts(self) -> list[str]:
        value = self.input if self.input is not None else self.text
        return [value] if isinstance(value, str) else list(value)


class EmbeddingsRequest(BaseModel):
    """``POST /v1/embeddings`` as SGLang serves reward models and verl's reward loop calls it: ``{"model", "input"}``."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    input: list[str] | str = Field(min_length=1)

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)
