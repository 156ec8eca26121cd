"""`rewardlab serve` as users run it: a real server process on 127.0.0.1 and a free port, real HTTP requests.

Scores are checked against the same reward loaded in this process, so batching, splitting and the compatibility
routes must return each caller its own numbers.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import httpx
import numpy as np
import pytest
import torch

from rewardlab import backbones, rewards, tracking
from rewardlab.models.mlp import TransitionMLP
from rewardlab.models.scalar_head import build_scalar_rm
from rewardlab.rewards import MLPTransitionReward, RewardInputError, ScalarTextReward
from rewardlab.serve import process

PROMPTS = ["What is 12 + 7?", "What is 3 * 4?", [{"role": "user", "content": "What is 10 - 6?"}]]
RESPONSES = ["12 + 7 = 19", "3 * 4 = 11", [{"role": "assistant", "content": "10 - 6 = 4"}]]
LONG = "The answer is " + "very " * 200 + "clearly 19."


@pytest.fixture(scope="module")
def text_folder(tmp_path_factory):
    """A scalar RM on the embedded MiniLM (untrained head: these tests are about serving, not quality)."""
    torch.manual_seed(0)
    tokenizer = backbones.load_tokenizer(backbones.MINILM)
    model = build_scalar_rm(backbones.MINILM, tokenizer)
    return ScalarTextReward.save(model, tokenizer, tmp_path_factory.mktemp("text") / "reward", max_length=48, template="plain")


@pytest.fixture(scope="module")
def local_text(text_folder):
    return rewards.load(text_folder)


@pytest.fixture(scope="module")
def transition_model(tmp_path_factory):
    """An MLP transition reward, logged and registered in a SQLite MLflow store: served by models:/ URI."""
    root = tmp_path_factory.mktemp("transition")
    torch.manual_seed(0)
    folder = MLPTransitionReward.save(TransitionMLP(3, 1, (16,)), root / "reward")
    uri = f"sqlite:///{root}/mlflow.db"
    with tracking.start_run(tracking.TrackingConfig(uri=uri), "serve-test") as run:
        model_uri = run.log_reward_model(folder, "serve-test-transition")
    return {"folder": folder, "model_uri": model_uri, "tracking_uri": uri}


class Server:
    def __init__(self, model: str, *args: str, env: dict | None = None):
        self.port = process.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "rewardlab.cli", "serve", str(model), "--port", str(self.port), "--no-access-log", *args]
        self.proc = process.start(cmd, env=env)
        process.wait_ready(self.url + "/health", self.proc)

    def post(self, path: str, body=None, content: bytes | None = None, headers: dict | None = None) -> httpx.Response:
        if content is not None:
            return httpx.post(self.url + path, content=content, headers={"content-type": "application/json", **(headers or {})})
        return httpx.post(self.url + path, json=body, headers=headers, timeout=60)

    def metric(self, name: str, headers: dict | None = None) -> float:
        text = httpx.get(self.url + "/metrics", headers=headers).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def stop(self, timeout: float = 30.0) -> str:
        """SIGTERM, as a process manager sends it; returns the server's log. uvicorn re-raises the signal after
        its graceful shutdown, so the exit status is -SIGTERM either way: the log says whether it was graceful."""
        process.stop(self.proc, timeout=timeout)
        return process.output(self.proc)


@pytest.fixture(scope="module")
def text_server(text_folder):
    server = Server(text_folder, "--max-wait-ms", "50")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def transition_server(transition_model):
    server = Server(transition_model["model_uri"], env={"MLFLOW_TRACKING_URI": transition_model["tracking_uri"]})
    yield server
    server.stop()


def transitions(n: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)), rng.uniform(-2, 2, size=(n, 1)), rng.normal(size=(n, 3)), np.zeros(n)


def test_score_returns_the_models_rewards_for_strings_and_message_lists(text_server, local_text):
    response = text_server.post("/v1/score", {"prompts": PROMPTS, "responses": RESPONSES})
    assert response.status_code == 200, response.text
    body = response.json()
    np.testing.assert_allclose(body["rewards"], local_text.score(PROMPTS, RESPONSES), atol=1e-4)
    assert body["truncated"] == []
    # references sent to a reward that does not use them are refused, naming the field (issue 28, item 15)
    with_refs = text_server.post("/v1/score", {"prompts": PROMPTS, "responses": RESPONSES, "references": ["19", "12", "4"]})
    assert with_refs.status_code == 422 and with_refs.json()["error"]["field"] == "references"


def test_long_texts_are_cut_as_in_training_and_reported(text_server, local_text):
    response = text_server.post("/v1/score", {"prompts": ["What is 12 + 7?", "What is 12 + 7?"], "responses": ["19", LONG]})
    assert response.status_code == 200
    body = response.json()
    assert body["truncated"] == [1]
    np.testing.assert_allclose(body["rewards"], local_text.score(["What is 12 + 7?"] * 2, ["19", LONG]), atol=1e-4)
    assert local_text.last_truncated == [False, True]
    assert text_server.metric("rewardlab_truncated_total") >= 1


BAD_TEXT = [
    pytest.param(b'{"prompts": ["a", ', 400, "malformed JSON", id="malformed-json"),
    pytest.param({"prompts": "What is 2+2?", "responses": ["4"]}, 422, "prompts", id="string-not-list"),
    pytest.param({"prompts": ["a", "b"], "responses": ["4", 4]}, 422, "responses[1]", id="wrong-item-type"),
    pytest.param({"prompts": [{"role": "user"}], "responses": ["4"]}, 422, "prompts[0]", id="message-without-content"),
    pytest.param({"prompts": ["a", "b"], "responses": ["4"]}, 422, "responses", id="different-lengths"),
    pytest.param({"prompts": ["a"], "responses": ["4"], "references": ["x", "y"]}, 422, "references", id="references-length"),
    pytest.param({"prompts": [], "responses": []}, 422, "must not be empty", id="empty-lists"),
    pytest.param({"prompts": ["a"]}, 422, "responses: required field is missing", id="missing-field"),
    pytest.param({"prompts": ["a"], "response": ["4"]}, 422, "response: unknown field", id="typo-field"),
    pytest.param(["a", "b"], 422, "JSON object", id="not-an-object"),
]


@pytest.mark.parametrize("body, status, needle", BAD_TEXT)
def test_bad_text_input_gets_a_4xx_that_names_the_field(text_server, body, status, needle):
    response = text_server.post("/v1/score", content=body) if isinstance(body, bytes) else text_server.post("/v1/score", body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert needle in error["message"] and error["status"] == status


BAD_TRANSITIONS = [
    pytest.param(b'{"obs": [[0, 1, NaN]], "actions": [[0]], "next_obs": [[0, 1, 2]]}', "obs[0][2] is NaN or inf", id="nan"),
    pytest.param(b'{"obs": [[0, 1, 2]], "actions": [[Infinity]], "next_obs": [[0, 1, 2]]}', "actions[0][0] is NaN or inf", id="inf"),
    pytest.param({"obs": [[0, 1, 2], [0, 1]], "actions": [[0], [0]], "next_obs": [[0, 1, 2]] * 2}, "obs: rows have different", id="ragged"),
    pytest.param({"obs": [[0, "x", 2]], "actions": [[0]], "next_obs": [[0, 1, 2]]}, "obs[0][1] (found str)", id="string-in-array"),
    pytest.param({"obs": [[0, 1, 2]] * 2, "actions": [[0]], "next_obs": [[0, 1, 2]] * 2}, "actions: lists must have the same length", id="lengths"),
    pytest.param({"obs": [], "actions": [], "next_obs": []}, "obs: expected a non-empty list", id="empty"),
    pytest.param({"obs": [[0, 1, 2, 3]], "actions": [[0]], "next_obs": [[0, 1, 2, 3]]}, "expected shapes (N, 3)", id="wrong-obs-dim"),
]


@pytest.mark.parametrize("body, needle", BAD_TRANSITIONS)
def test_bad_transitions_get_a_422_that_names_the_field(transition_server, body, needle):
    path = "/v1/score_transitions"
    response = transition_server.post(path, content=body) if isinstance(body, bytes) else transition_server.post(path, body)
    assert response.status_code == 422, response.text
    assert needle in response.json()["error"]["message"]


def test_transitions_served_from_the_registry_match_the_folder(transition_server, transition_model):
    obs, act, nxt, dones = transitions()
    body = {"obs": obs.tolist(), "actions": act.tolist(), "next_obs": nxt.tolist(), "dones": dones.tolist()}
    response = transition_server.post("/v1/score_transitions", body)
    assert response.status_code == 200, response.text
    expected = rewards.load(transition_model["folder"]).score(obs, act, nxt, dones)
    np.testing.assert_allclose(response.json()["rewards"], expected, atol=1e-5)
    info = httpx.get(transition_server.url + "/v1/info").json()
    assert info["modality"] == "transition" and info["model"] == transition_model["model_uri"]
    # a text route on a transition reward: 404 that says which route to use
    wrong = transition_server.post("/v1/score", {"prompts": ["a"], "responses": ["b"]})
    assert wrong.status_code == 404 and "/v1/score_transitions" in wrong.json()["error"]["message"]


def test_mlflow_models_serve_still_serves_the_same_registered_model(transition_model, transition_server):
    """The pyfunc path (`mlflow models serve`) and the fast path give the same rewards."""
    port = process.free_port()
    proc = process.start(
        ["mlflow", "models", "serve", "-m", transition_model["model_uri"], "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        env={"MLFLOW_TRACKING_URI": transition_model["tracking_uri"]},
    )
    try:
        process.wait_ready(f"http://127.0.0.1:{port}/ping", proc)
        obs, act, nxt, dones = transitions(4, seed=1)
        records = [{"obs": o.tolist(), "actions": a.tolist(), "next_obs": n.tolist(), "dones": 0.0} for o, a, n in zip(obs, act, nxt)]
        from_mlflow = httpx.post(f"http://127.0.0.1:{port}/invocations", json={"dataframe_records": records}, timeout=60)
        assert from_mlflow.status_code == 200, from_mlflow.text
        body = {"obs": obs.tolist(), "actions": act.tolist(), "next_obs": nxt.tolist()}
        ours = transition_server.post("/v1/score_transitions", body).json()["rewards"]
        np.testing.assert_allclose(from_mlflow.json()["predictions"], ours, atol=1e-5)
    finally:
        process.stop(proc)


def test_openrlhf_get_reward_strips_the_prompt_and_scores_the_response(text_server, local_text):
    prompts = ["<|user|>What is 12 + 7?\n<|assistant|>", "<|user|>What is 3 * 4?\n<|assistant|>"]
    answers = ["19", "12"]
    body = {"query": [p + a for p, a in zip(prompts, answers)], "prompts": prompts, "labels": ["", ""]}
    response = text_server.post("/get_reward", body)
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["rewards"] == out["scores"] and len(out["rewards"]) == 2
    np.testing.assert_allclose(out["rewards"], local_text.score(prompts, answers), atol=1e-4)
    bad = text_server.post("/get_reward", {"query": ["a", "b"], "prompts": ["a"]})
    assert bad.status_code == 422 and "prompts" in bad.json()["error"]["message"]


def polar_client_string(prompt: str, reference: str, candidate: str) -> str:
    """What POLAR's RewardModelClient sends for its default ("sft") wrapper."""
    return f"{prompt}\n{reference}<|reward|>{prompt}\n{candidate}[UNUSED_TOKEN_130]"


def test_pooling_accepts_the_polar_client_format(text_server, local_text):
    prompt = "How many r's are in strawberry?\nAnswer briefly."
    texts = [polar_client_string(prompt, "3.", "There are three."), polar_client_string(prompt, "3.", "Two.")]
    response = text_server.post("/pooling", {"input": texts, "model": "polar"})
    assert response.status_code == 200, response.text
    scores = [item["data"][-1][0] for item in response.json()["data"]]  # exactly how the client reads them
    np.testing.assert_allclose(scores, local_text.score([prompt] * 2, ["There are three.", "Two."], ["3.", "3."]), atol=1e-4)
    bad = text_server.post("/pooling", {"input": [texts[0], "no separator here"]})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "input[1]" and "<|reward|>" in bad.json()["error"]["message"]


def test_q_values_is_404_for_a_reward_without_them(text_server):
    response = text_server.post("/v1/q_values", {"prompts": ["a"], "responses": ["b"]})
    assert response.status_code == 404 and "has no Q-values" in response.json()["error"]["message"]


def test_explain_is_404_for_a_reward_that_cannot_explain(text_server):
    response = text_server.post("/v1/explain", {"prompts": ["a"], "responses": ["b"]})
    assert response.status_code == 404
    assert "cannot explain" in response.json()["error"]["message"]


def test_concurrent_requests_are_batched_and_each_gets_its_own_scores(text_server, local_text):
    before_batches = text_server.metric("rewardlab_batch_requests_count")
    before_requests = text_server.metric("rewardlab_batch_requests_sum")
    answers = [f"12 + 7 = {n}" for n in range(12, 28)]

    async def fire():
        async with httpx.AsyncClient(timeout=60) as client:
            calls = [client.post(text_server.url + "/v1/score", json={"prompts": ["What is 12 + 7?"], "responses": [a]}) for a in answers]
            return await asyncio.gather(*calls)

    responses = asyncio.run(fire())
    assert all(r.status_code == 200 for r in responses)
    got = [r.json()["rewards"][0] for r in responses]
    np.testing.assert_allclose(got, local_text.score(["What is 12 + 7?"] * len(answers), answers), atol=1e-4)
    batches = text_server.metric("rewardlab_batch_requests_count") - before_batches
    merged = text_server.metric("rewardlab_batch_requests_sum") - before_requests
    assert merged == len(answers) and batches < len(answers)  # fewer forward passes than requests
    metrics = httpx.get(text_server.url + "/metrics").text
    assert 'rewardlab_requests_total{route="/v1/score",status="200"}' in metrics
    assert "rewardlab_request_duration_seconds_bucket" in metrics and "rewardlab_batch_items_bucket" in metrics


def test_api_key_guards_every_route_but_health_and_limits_body_size(text_folder):
    server = Server(text_folder, "--max-body-mb", "0.001", env={"REWARDLAB_API_KEY": "s3cret"})
    try:
        assert httpx.get(server.url + "/health").status_code == 200
        body = {"prompts": ["What is 12 + 7?"], "responses": ["19"]}
        missing = server.post("/v1/score", body)
        assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["error"]["message"]
        wrong = server.post("/v1/score", body, headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401 and "(found a wrong key)" in wrong.json()["error"]["message"]
        bare = server.post("/v1/score", body, headers={"Authorization": "s3cret"})
        assert bare.status_code == 401 and "found a key without the 'Bearer ' prefix" in bare.json()["error"]["message"]
        assert httpx.get(server.url + "/docs").status_code == 401 and httpx.get(server.url + "/openapi.json").status_code == 401
        assert httpx.get(server.url + "/metrics").status_code == 401
        for path in ("/get_reward", "/pooling", "/v1/info"):
            assert httpx.request("POST" if path != "/v1/info" else "GET", server.url + path, json={}).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        ok = server.post("/v1/score", body, headers=good)
        assert ok.status_code == 200 and len(ok.json()["rewards"]) == 1
        big = {"prompts": ["What is 12 + 7?"] * 100, "responses": ["19"] * 100}  # about 2.4 KB
        too_large = server.post("/v1/score", big, headers=good)
        assert too_large.status_code == 413 and "over this server's limit" in too_large.json()["error"]["message"]
        # the remote reward (rewards.load on a URL) passes the key and turns 4xx into RewardInputError
        remote = rewards.load(server.url, api_key="s3cret")
        assert rewards.modality(remote) == "text"
        assert remote.score(["What is 12 + 7?"], ["19"]) == pytest.approx(ok.json()["rewards"], abs=1e-6)
        with pytest.raises(RewardInputError, match="over this server's limit"):
            remote.score(big["prompts"], big["responses"])
        assert server.metric('rewardlab_requests_total{route="/v1/score",status="500"', headers=good) == 0
    finally:
        assert "Application shutdown complete" in server.stop()


def test_remote_reward_matches_local_and_runs_async(text_server, local_text):
    remote = rewards.load(text_server.url)
    assert isinstance(remote, rewards.TextReward) and rewards.modality(remote) == "text"
    np.testing.assert_allclose(remote.score(PROMPTS, RESPONSES), local_text.score(PROMPTS, RESPONSES), atol=1e-4)

    async def both():
        return await asyncio.gather(remote.ascore(PROMPTS[:1], RESPONSES[:1]), remote.ascore(PROMPTS[1:], RESPONSES[1:]))

    first, rest = asyncio.run(both())
    np.testing.assert_allclose(first + rest, local_text.score(PROMPTS, RESPONSES), atol=1e-4)
    with pytest.raises(RewardInputError, match="responses"):
        remote.score(["a", "b"], ["c"])  # caught before sending
    with pytest.raises(RewardInputError, match=r"responses\[0\]"):
        remote.score(["a"], [7])  # caught by the server


def test_shutdown_lets_in_flight_requests_finish(text_folder):
    server = Server(text_folder, "--graceful-timeout", "300")  # the in-flight request may take a while on a busy CI box
    many = {"prompts": ["What is 12 + 7?"] * 600, "responses": [LONG] * 600}  # a few seconds of work
    result = {}

    def call():
        result["response"] = httpx.post(server.url + "/v1/score", json=many, timeout=120)

    thread = threading.Thread(target=call)
    thread.start()
    # Poll the server's own gauge until the request is queued or being scored; never reaching it fails the test
    # (the poll only waits, it decides nothing).
    deadline = time.time() + 60
    while server.metric("rewardlab_queue_pending") < 1:
        assert time.time() < deadline, "the request never reached the server's queue"
        assert thread.is_alive(), f"the request finished before it could be caught in flight: {result}"
        time.sleep(0.05)
    assert "response" not in result  # still in flight when the signal arrives
    log = server.stop(timeout=120)
    thread.join(timeout=120)
    assert result["response"].status_code == 200
    assert len(result["response"].json()["rewards"]) == 600
    assert "Waiting for connections to close" in log and "Application shutdown complete" in log
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/health")


def test_docs_page_loads_its_assets_from_the_server_itself(text_server):
    """Offline, a CDN-hosted Swagger UI is a blank page: /docs must reference assets this server serves."""
    page = httpx.get(text_server.url + "/docs")
    assert page.status_code == 200 and "cdn" not in page.text.lower()
    assert '/docs-assets/swagger-ui-bundle.js' in page.text and '/openapi.json' in page.text
    script = httpx.get(text_server.url + "/docs-assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000 and "SwaggerUIBundle" in script.text
    assert httpx.get(text_server.url + "/docs-assets/swagger-ui.css").status_code == 200
    assert "/v1/score" in httpx.get(text_server.url + "/openapi.json").json()["paths"]
