"""A reward behind a running ``rewardlab serve``, used through the same interface: ``rewards.load("http://host:port")``.

The server's 4xx answers become ``RewardInputError`` with the server's message, so a caller sees the same error
whether the reward is local or remote. ``ascore`` is the asynchronous form, for callers that overlap many
requests (RLHF reward functions); the server merges concurrent requests into batches.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from rewardlab.rewards.base import Chat, RewardInputError, check_text_batch

API_KEY_ENV = "REWARDLAB_API_KEY"


class RemoteRewardError(RuntimeError):
    """The server could not be reached, refused the key, or failed (not the caller's input)."""


class _Remote:
    def __init__(self, url: str, api_key: str | None = None, timeout: float = 120.0, info: dict | None = None):
        self.url = url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self.timeout = timeout
        self.info = info if info is not None else self._get("/v1/info")
        self.kind = self.info.get("kind")
        self.max_length = self.info.get("max_length")
        stats = self.info.get("normalization")  # the reward's stored statistics, as the server reports them
        self.normalization = {k: v for k, v in stats.items() if k != "applied_by_default"} if stats else None
        if "explain" in self.info.get("capabilities", []):
            self.explain = self._explain
        if "q_values" in self.info.get("capabilities", []):
            self.q_values = self._q_values

    @property
    def headers(self) -> dict[str, str]:
        return _headers(self.api_key)

    def _get(self, path: str) -> dict:
        return _request("GET", self.url + path, self.headers, self.timeout)

    def _post(self, path: str, body: dict) -> dict:
        return _request("POST", self.url + path, self.headers, self.timeout, body)

    def _explain(self, *args: Any) -> list[str]:
        return self._post("/v1/explain", self._body(*args))["explanations"]

    def _q_values(self, prompts, responses) -> list:
        import numpy as np

        prompts, responses, _ = check_text_batch(prompts, responses, None)
        body = {"prompts": prompts, "responses": responses}
        return [np.asarray(q, dtype=float) for q in self._post("/v1/q_values", body)["q_values"]]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, kind={self.kind!r})"


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _request(method: str, url: str, headers: dict, timeout: float, body: dict | None = None) -> dict:
    import httpx

    try:
        response = httpx.request(method, url, json=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise RemoteRewardError(f"{url}: cannot reach the reward server ({exc})") from None
    return _json_or_raise(url, response)


def _json_or_raise(url: str, response) -> dict:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code < 400:
        return body
    message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
    message = message or response.text[:500]
    if response.status_code in (400, 413, 422):
        raise RewardInputError(f"{url}: {message}")
    raise RemoteRewardError(f"{url}: HTTP {response.status_code}: {message}")


class RemoteTextReward(_Remote):
    modality = "text"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # None: a server too old to say; its references are sent and it decides
        self.uses_references = self.info.get("uses_references")

    def _body(self, prompts, responses, references=None) -> dict:
        """The /v1/score body. References go only to a reward that uses them: the server refuses them otherwise,
        and a local reward that does not use them ignores them, so the remote one does the same."""
        prompts, responses, references = check_text_batch(prompts, responses, references)
        body = {"prompts": prompts, "responses": responses}
        if references is not None and self.uses_references is not False:
            body["references"] = references
        return body

    def score(self, prompts: Sequence[Chat], responses: Sequence[Chat], references: Sequence[Chat] | None = None) -> list[float]:
        body = self._body(prompts, responses, references)
        if not body["prompts"]:
            return []
        return self._post("/v1/score", body)["rewards"]

    async def ascore(
        self, prompts: Sequence[Chat], responses: Sequence[Chat], references: Sequence[Chat] | None = None, client=None
    ) -> list[float]:
        """Like ``score``, without blocking the event loop. Pass an ``httpx.AsyncClient`` to reuse connections."""
        import httpx

        body = self._body(prompts, responses, references)
        if not body["prompts"]:
            return []
        own = client is None
        client = client or httpx.AsyncClient(timeout=self.timeout)
        try:
            response = await client.post(self.url + "/v1/score", json=body, headers=self.headers)
        except httpx.HTTPError as exc:
            raise RemoteRewardError(f"{self.url}: cannot reach the reward server ({exc})") from None
        finally:
            if own:
                await client.aclose()
        return _json_or_raise(self.url + "/v1/score", response)["rewards"]


class RemoteTransitionReward(_Remote):
    modality = "transition"

    def _body(self, obs, actions, next_obs, dones=None) -> dict:
        as_list = lambda a: np.asarray(a, dtype=np.float64).tolist()  # noqa: E731
        body = {"obs": as_list(obs), "actions": as_list(actions), "next_obs": as_list(next_obs)}
        if dones is not None:
            body["dones"] = as_list(dones)
        return body

    def score(self, obs, actions, next_obs, dones) -> np.ndarray:
        if not len(obs):
            return np.zeros(0, np.float32)
        return np.asarray(self._post("/v1/score_transitions", self._body(obs, actions, next_obs, dones))["rewards"], np.float32)


def connect(url: str, api_key: str | None = None, timeout: float = 120.0) -> RemoteTextReward | RemoteTransitionReward:
    """The remote reward at ``url``, as a text or a transition reward depending on what the server serves."""
    api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    info = _request("GET", url.rstrip("/") + "/v1/info", _headers(api_key), timeout)
    cls = RemoteTextReward if info.get("modality") == "text" else RemoteTransitionReward
    return cls(url, api_key=api_key, timeout=timeout, info=info)
