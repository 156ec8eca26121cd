"""Every RL framework's reward client against a real `rewardlab serve` on 127.0.0.1, each with the request its
code sends and the parsing its code applies (verl's reward loop, POLAR's RewardModelClient for sglang, vllm and
lmdeploy), plus the server's normalisation, queue bound, deadline and disconnect handling."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import numpy as np
import psutil
import pytest
import requests
import torch

from rewardlab import backbones, rewards
from rewardlab.models.scalar_head import build_scalar_rm
from rewardlab.rewards import ScalarTextReward
from rewardlab.rewards.text import record_normalization, render
from tests.serve.test_server import Server, polar_client_string

CHATS = [[{"role": "user", "content": "What is 12 + 7?"}, {"role": "assistant", "content": "12 + 7 = 19."}],
         [{"role": "user", "content": "What is 3 * 4?"}, {"role": "assistant", "content": "It is 11, I believe."}],
         [{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "7"}]]


@pytest.fixture(scope="module")
def chat_folder(tmp_path_factory):
    """A scalar RM on the embedded SmolLM2 with its chat template (what verl renders with), statistics stored."""
    torch.manual_seed(0)
    name = "embedded:smollm2-135m-instruct"
    tokenizer = backbones.load_tokenizer(name)
    folder = ScalarTextReward.save(build_scalar_rm(name, tokenizer), tokenizer, tmp_path_factory.mktemp("chat") / "reward",
                                   max_length=96, template="chat")
    local = rewards.load(folder)
    record_normalization(folder, local.score([c[:1] for c in CHATS] * 2, [c[1:] for c in CHATS] + [[{"role": "assistant", "content": "no"}]] * 3))
    return folder


@pytest.fixture(scope="module")
def chat_server(chat_folder):
    server = Server(chat_folder)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def local_chat(chat_folder):
    return rewards.load(chat_folder)


def verl_render(tokenizer, chat) -> str:
    """verl's _preprocess_reward_inputs: the conversation rendered with the reward model's chat template, not tokenized,
    without a leading BOS (vLLM adds it back)."""
    text = tokenizer.apply_chat_template(chat, add_generation_prompt=False, tokenize=False)
    return text[len(tokenizer.bos_token):] if tokenizer.bos_token and text.startswith(tokenizer.bos_token) else text


async def verl_post(url: str, endpoint: str, payload: dict) -> dict:
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        async with session.post(f"{url}/{endpoint}", json=payload) as resp:
            resp.raise_for_status()
            return await resp.json()


def test_verl_reward_loop_vllm_and_sglang_get_the_models_scores(chat_server, local_chat):
    host = chat_server.url.removeprefix("http://")
    expected = local_chat.score([c[:1] for c in CHATS], [c[1:] for c in CHATS])
    got_vllm, got_sglang, got_old = [], [], []
    for chat in CHATS:  # verl sends one sample per request
        text = verl_render(local_chat.tokenizer, chat)
        out = asyncio.run(verl_post(f"http://{host}", "classify", {"model": "rm", "input": text, "use_activation": False}))
        got_vllm.append(out["data"][-1]["probs"][-1])
        out = asyncio.run(verl_post(f"http://{host}", "classify", {"model": "rm", "input": text, "activation": False}))
        got_old.append(out["data"][-1]["probs"][-1])  # verl before vLLM 0.11.2 names the flag "activation"
        out = asyncio.run(verl_post(f"http://{host}", "v1/embeddings", {"model": "rm", "input": text}))
        got_sglang.append(out["data"][-1]["embedding"][-1])
    np.testing.assert_allclose(got_vllm, expected, atol=1e-4)
    np.testing.assert_allclose(got_old, expected, atol=1e-4)
    np.testing.assert_allclose(got_sglang, expected, atol=1e-4)
    # vLLM's default (activation on) returns sigmoid(score), as vLLM's classify does for a one-label head
    sig = chat_server.post("/classify", {"input": [verl_render(local_chat.tokenizer, CHATS[0])]}).json()
    assert sig["data"][0]["probs"][0] == pytest.approx(1 / (1 + np.exp(-expected[0])), abs=1e-5)


def test_rendered_text_is_not_templated_again(local_chat):
    for chat in CHATS:
        text = render(local_chat.tokenizer, chat[:1], chat[1:], "chat")
        assert local_chat.score_texts([text]) == pytest.approx(local_chat.score([chat[:1]], [chat[1:]]), abs=1e-5)


def xtuner_sglang(address: str, data: list[str]) -> list[float]:
    res = requests.post(f"http://{address}/classify", json={"model": "internlm/POLAR-7B", "text": data})
    return [e["embedding"][0] for e in res.json()]


def xtuner_lmdeploy(address: str, data: list[str]) -> list[float]:
    res = requests.post(f"http://{address}/pooling", json={"input": data})
    return [e["data"] for e in res.json()["data"]]


def xtuner_vllm(address: str, data: list[str]) -> list[float]:
    res = requests.post(f"http://{address}/pooling", json={"input": data})
    return [e["data"][-1][0] for e in res.json()["data"]]


def test_polar_client_with_sglang_vllm_and_lmdeploy_server_types(chat_folder, chat_server, local_chat):
    prompt = "How many r's are in strawberry?"
    data = [polar_client_string(prompt, "3.", "There are three."), polar_client_string(prompt, "3.", "Two.")]
    expected = local_chat.score([prompt] * 2, ["There are three.", "Two."], ["3.", "3."])
    address = chat_server.url.removeprefix("http://")
    np.testing.assert_allclose(xtuner_sglang(address, data), expected, atol=1e-4)
    np.testing.assert_allclose(xtuner_vllm(address, data), expected, atol=1e-4)
    lmdeploy = Server(chat_folder, "--pooling-format", "lmdeploy")
    try:
        np.testing.assert_allclose(xtuner_lmdeploy(lmdeploy.url.removeprefix("http://"), data), expected, atol=1e-4)
    finally:
        lmdeploy.stop()
    mixed = chat_server.post("/classify", {"text": [data[0], "a rendered conversation"]})
    assert mixed.status_code == 422 and mixed.json()["error"]["field"] == "text[1]"
    both = chat_server.post("/classify", {"text": ["x"], "input": ["y"]})
    assert both.status_code == 422 and "exactly one" in both.json()["error"]["message"]


def test_normalisation_from_the_stored_statistics(chat_folder, local_chat):
    stats = json.loads((chat_folder / "reward.json").read_text())["normalization"]
    server = Server(chat_folder, "--normalize")
    try:
        info = httpx.get(server.url + "/v1/info").json()["normalization"]
        assert info["applied_by_default"] is True and info["mean"] == pytest.approx(stats["mean"])
        raw = local_chat.score([c[:1] for c in CHATS], [c[1:] for c in CHATS])
        body = {"prompts": [c[:1] for c in CHATS], "responses": [c[1:] for c in CHATS]}
        whitened = server.post("/v1/score", body).json()["rewards"]
        np.testing.assert_allclose(whitened, (np.asarray(raw) - stats["mean"]) / stats["std"], atol=1e-4)
        np.testing.assert_allclose(server.post("/v1/score", {**body, "normalize": False}).json()["rewards"], raw, atol=1e-4)
        remote = rewards.load(server.url)
        assert remote.normalization["std"] == pytest.approx(stats["std"])
    finally:
        server.stop()


@pytest.fixture(scope="module")
def slow_folder(tmp_path_factory):
    """MiniLM at 128 tokens: a request of many long texts keeps the 2 cores busy for a second or more."""
    torch.manual_seed(0)
    tokenizer = backbones.load_tokenizer(backbones.MINILM)
    return ScalarTextReward.save(build_scalar_rm(backbones.MINILM, tokenizer), tokenizer, tmp_path_factory.mktemp("slow") / "reward",
                                 max_length=128, template="plain")


LONG = ["word " * 150] * 256  # about 3 s of scoring on 2 idle cores


def wait_until(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_burst_far_beyond_capacity_gets_200_or_503_and_the_server_recovers(slow_folder):
    server = Server(slow_folder, "--max-queue", "32")
    try:
        proc = psutil.Process(server.proc.pid)
        server.post("/v1/score", {"prompts": ["warm"], "responses": ["up"]})
        rss_before = proc.memory_info().rss

        async def burst(n: int = 256) -> list[int]:
            limits = httpx.Limits(max_connections=n)
            async with httpx.AsyncClient(timeout=120, limits=limits) as client:
                async def one(i):
                    r = await client.post(server.url + "/v1/score", json={"prompts": [f"q{i}"], "responses": ["word " * 60]})
                    if r.status_code == 503:
                        assert r.headers["retry-after"] == "1" and r.json()["error"]["type"] == "overloaded"
                    return r.status_code
                return await asyncio.gather(*(one(i) for i in range(n)))

        statuses = asyncio.run(burst())
        assert set(statuses) == {200, 503}, set(statuses)
        refused = statuses.count(503)
        assert server.metric('rewardlab_refused_requests_total{reason="queue_full"}') == refused
        assert server.metric('rewardlab_requests_total{route="/v1/score",status="503"}') == refused
        assert proc.memory_info().rss - rss_before < 200 * 2**20
        wait_until(lambda: httpx.get(server.url + "/health").json()["pending"] == 0, "the queue to drain")
        after = server.post("/v1/score", {"prompts": ["What is 2 + 2?"], "responses": ["4"]})
        assert after.status_code == 200
        assert after.json()["rewards"] == pytest.approx(rewards.load(slow_folder).score(["What is 2 + 2?"], ["4"]), abs=1e-4)
    finally:
        server.stop()


async def _behind_a_long_request(server: Server, second: dict, client_timeout: float | None) -> tuple[int, object]:
    """Send a long request, wait until the server holds it, then a second one queued behind it."""
    async with httpx.AsyncClient(timeout=120) as client:
        first = asyncio.ensure_future(client.post(server.url + "/v1/score", json={"prompts": ["q"] * len(LONG), "responses": LONG}))
        while server.metric("rewardlab_queue_items") < len(LONG):
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(timeout=client_timeout) as other:
            try:
                status = (await other.post(server.url + "/v1/score", json=second)).status_code
            except httpx.TimeoutException:
                status = None
        return status, await first


def test_the_deadline_answers_504_and_queued_work_is_never_scored(slow_folder):
    server = Server(slow_folder, "--timeout-s", "1.0")
    try:
        before = server.metric("rewardlab_batch_items_sum")
        status, first = asyncio.run(_behind_a_long_request(server, {"prompts": ["q"], "responses": ["a"]}, None))
        assert status == 504 and first.status_code == 504 and first.json()["error"]["type"] == "timeout"
        wait_until(lambda: httpx.get(server.url + "/health").json()["pending"] == 0, "the long batch to finish")
        assert server.metric("rewardlab_batch_items_sum") - before == len(LONG)  # the second request never ran
        assert server.metric('rewardlab_refused_requests_total{reason="deadline"}') == 2
        assert server.metric('rewardlab_requests_total{route="/v1/score",status="504"}') == 2
        assert server.post("/v1/score", {"prompts": ["q"], "responses": ["a"]}).status_code == 200
    finally:
        server.stop()


def test_a_client_that_disconnects_cancels_its_queued_work(slow_folder):
    server = Server(slow_folder)
    try:
        before = server.metric("rewardlab_batch_items_sum")
        status, first = asyncio.run(_behind_a_long_request(server, {"prompts": ["q"] * 5, "responses": ["a"] * 5}, 0.2))
        assert status is None and first.status_code == 200  # the second client gave up; the first got its scores
        wait_until(lambda: server.metric('rewardlab_dropped_items_total{reason="disconnected"}') == 5, "the disconnect to be seen")
        wait_until(lambda: httpx.get(server.url + "/health").json()["pending"] == 0, "the queue to drain")
        assert server.metric("rewardlab_batch_items_sum") - before == len(LONG)  # the 5 items were never scored
    finally:
        server.stop()
