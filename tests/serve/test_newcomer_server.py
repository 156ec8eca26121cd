"""Issue 28, items 15 and 19, against the real server on 127.0.0.1: strict booleans, references a reward does not
use, an empty body, a request larger than the whole queue; and a reward trained on the plain template scored the
same through verl's chat-templated routes as through /v1/score."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
import torch

from rewardlab import backbones
from rewardlab.models.scalar_head import build_scalar_rm
from rewardlab.rewards import ScalarTextReward
from rewardlab.serve import ServeSettings
from tests.conftest import serving
from tests.serve.test_clients import verl_post, verl_render
from tests.serve.test_server import Server

SCORE = {"prompts": ["What is 3 + 4?"], "responses": ["7"]}


class InProcess:
    """A client of the real app run in this process (conftest ``serving``), with test_server's helpers."""

    def __init__(self, url: str):
        self.url = url

    post = Server.post
    metric = Server.metric


@pytest.fixture(scope="module")
def small_queue_server():
    """The server with --max-queue 4 on an untrained MiniLM reward (plain template, no references)."""
    torch.manual_seed(0)
    tokenizer = backbones.load_tokenizer(backbones.MINILM)
    reward = ScalarTextReward(build_scalar_rm(backbones.MINILM, tokenizer), tokenizer, max_length=32, template="plain", device="cpu")
    with serving(reward, ServeSettings(max_queue=4)) as url:
        yield InProcess(url)


@pytest.mark.parametrize("route, body, field", [
    pytest.param("/v1/score", {**SCORE, "normalize": "yes"}, "normalize", id="normalize-yes"),
    pytest.param("/v1/score", {**SCORE, "normalize": "false"}, "normalize", id="normalize-string-false"),
    pytest.param("/v1/score", {**SCORE, "normalize": 1}, "normalize", id="normalize-one"),
    pytest.param("/classify", {"input": ["What is 3 + 4?\n7"], "use_activation": "yes"}, "use_activation", id="use-activation-yes"),
    pytest.param("/classify", {"input": ["What is 3 + 4?\n7"], "activation": 0}, "activation", id="activation-zero"),
])
def test_booleans_are_strict(small_queue_server, route, body, field):
    response = small_queue_server.post(route, body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field and "must be true or false (a JSON boolean)" in error["message"]


def test_real_booleans_still_work(small_queue_server):
    assert small_queue_server.post("/v1/score", {**SCORE, "normalize": False}).status_code == 200
    out = small_queue_server.post("/classify", {"input": ["What is 3 + 4?\n7"], "use_activation": False})
    assert out.status_code == 200 and out.json()["data"][0]["probs"][0] == pytest.approx(
        small_queue_server.post("/v1/score", SCORE).json()["rewards"][0], abs=1e-4)


def test_references_to_a_reward_that_does_not_use_them_are_refused(small_queue_server):
    response = small_queue_server.post("/v1/score", {**SCORE, "references": ["Seven."]})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "references" and "does not use references" in error["message"]
    assert httpx.get(small_queue_server.url + "/v1/info").json()["uses_references"] is False


@pytest.mark.parametrize("route, needles, field", [
    pytest.param("/v1/score", ["field 'prompts' is required", "field 'responses' is required"], "prompts", id="score"),
    pytest.param("/get_reward", ["field 'query' is required"], "query", id="openrlhf"),
    pytest.param("/v1/embeddings", ["field 'input' is required"], "input", id="embeddings"),
    pytest.param("/classify", ["'input'", "'text'"], "input", id="classify"),
])
def test_an_empty_body_names_the_required_fields(small_queue_server, route, needles, field):
    response = httpx.post(small_queue_server.url + route)  # no body at all
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "the request body is empty" in error["message"] and error["field"] == field
    assert all(n in error["message"] for n in needles), error["message"]


def test_a_request_larger_than_the_whole_queue_gets_413(small_queue_server):
    six = {"prompts": ["What is 3 + 4?"] * 6, "responses": [str(n) for n in range(6)]}
    response = small_queue_server.post("/v1/score", six)
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["type"] == "payload_too_large"
    assert "the request has 6 items" in error["message"] and "--max-queue is 4" in error["message"] and "split" in error["message"]
    assert small_queue_server.post("/classify", {"input": ["x"] * 5}).status_code == 413  # every route that queues
    assert small_queue_server.metric('rewardlab_refused_requests_total{reason="too_large"}') == 2
    four = small_queue_server.post("/v1/score", {"prompts": six["prompts"][:4], "responses": six["responses"][:4]})
    assert four.status_code == 200 and len(four.json()["rewards"]) == 4


CHATS = [[{"role": "user", "content": "What is 12 + 7?"}, {"role": "assistant", "content": "12 + 7 = 19."}],
         [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is 3 * 4?"},
          {"role": "assistant", "content": "It is 11, I believe."}],
         [{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "9"},
          {"role": "user", "content": "That is not prime.\nTry again."}, {"role": "assistant", "content": "7"}]]


@pytest.fixture(scope="module")
def plain_smollm2():
    """An untrained reward on SmolLM2 that reads the plain template (as the quickstart trains it), served in-process."""
    torch.manual_seed(0)
    tokenizer = backbones.load_tokenizer(backbones.SMOLLM2)
    reward = ScalarTextReward(build_scalar_rm(backbones.SMOLLM2, tokenizer), tokenizer, max_length=96, template="plain", device="cpu")
    with serving(reward) as url:
        yield reward, url


def test_a_plain_template_reward_scores_verl_chat_templated_texts_as_v1_score(plain_smollm2):
    reward, url = plain_smollm2
    expected = httpx.post(url + "/v1/score", json={"prompts": [c[:-1] for c in CHATS], "responses": [c[-1:] for c in CHATS]}).json()
    assert expected["rewards"] == pytest.approx(reward.score([c[:-1] for c in CHATS], [c[-1:] for c in CHATS]), abs=1e-4)
    vllm, sglang = [], []
    for chat in CHATS:  # verl sends one chat-templated sample per request, its leading BOS stripped
        text = verl_render(reward.tokenizer, chat)
        assert "<|im_start|>" in text  # what verl sends is the chat template's rendering, which this reward never saw
        out = asyncio.run(verl_post(url, "classify", {"model": "rm", "input": text, "use_activation": False}))
        vllm.append(out["data"][-1]["probs"][-1])
        out = asyncio.run(verl_post(url, "v1/embeddings", {"model": "rm", "input": text}))
        sglang.append(out["data"][-1]["embedding"][-1])
    np.testing.assert_allclose(vllm, expected["rewards"], atol=1e-4)
    np.testing.assert_allclose(sglang, expected["rewards"], atol=1e-4)
    # the plain rendering itself, sent as text, is still read as it is
    plain = httpx.post(url + "/classify", json={"input": ["What is 12 + 7?\n12 + 7 = 19."], "use_activation": False}).json()
    assert plain["data"][0]["probs"][0] == pytest.approx(expected["rewards"][0], abs=1e-4)
    rendering = httpx.get(url + "/v1/info").json()["text_rendering"]
    assert rendering["template"] == "plain" and rendering["chat_template_texts"].startswith("recovered")
    assert rendering["warning"] is None


def test_an_unrecognised_chat_rendering_is_announced_at_start_and_in_info(capsys):
    torch.manual_seed(0)
    tokenizer = backbones.load_tokenizer(backbones.MINILM)
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"  # no role markers: not recoverable
    reward = ScalarTextReward(build_scalar_rm(backbones.MINILM, tokenizer), tokenizer, max_length=32, template="plain", device="cpu")
    with serving(reward) as url:
        info = httpx.get(url + "/v1/info").json()["text_rendering"]
    start = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(start) == 1 and "plain template" in start[0] and "cannot be turned back into messages" in start[0]
    assert info["expects"].endswith("(prompt\\nresponse)") and info["chat_template_texts"].startswith("scored as sent")
    assert info["warning"] and "/v1/score" in info["warning"]
