"""The FastAPI application: routes over one Reward, micro-batched, with auth, a body limit and Prometheus metrics.

``create_app(reward, settings)`` takes any object that follows the reward interface, so the same app serves a
folder, an MLflow model, or a reward built in a test. Routes call ``score`` through the micro-batcher; nothing
here knows which learner trained the reward.
"""

from __future__ import annotations

import hmac
import json
import math
import sys
import time
import uuid
from collections.abc import Hashable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

import rewardlab
from rewardlab.rewards.base import RewardInputError, modality
from rewardlab.rewards.remote import API_KEY_ENV
from rewardlab.rewards.text import whiten
from rewardlab.serve.batching import ClientGone, DeadlineExceeded, MicroBatcher, QueueFull, TooLarge
from rewardlab.serve.schemas import (POLAR_SEP, ClassifyRequest, EmbeddingsRequest, FieldError, GetRewardRequest, PoolingRequest,
                                     ScoreRequest, TransitionRequest, split_polar)

__all__ = ["API_KEY_ENV", "ServeSettings", "create_app"]
disable_created_metrics()  # no *_created samples: they double the output and dashboards rarely use them
DOCS_ASSETS = "/docs-assets"


def _mount_docs(app: FastAPI) -> None:
    """Swagger UI at /docs with its JavaScript and CSS from the swagger-ui-bundle package, so the page works
    offline; the schema is /openapi.json."""
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="rewardlab reward server",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png")


ROUTES = ("/v1/score", "/v1/score_transitions", "/v1/explain", "/v1/q_values", "/get_reward", "/pooling", "/classify", "/v1/embeddings",
          "/v1/info", "/health", "/metrics")
POOLING_FORMATS = ("vllm", "lmdeploy")


@dataclass
class ServeSettings:
    """What ``rewardlab serve`` exposes as flags."""

    max_batch_size: int = 64
    """Most items (texts or transitions) scored in one forward pass; requests are never split."""
    max_wait_ms: float = 0.0
    """How long a batch that is not full waits for more requests. 0: take what is queued and go; requests that arrive
    while the model is busy form the next batch, so batches grow with load without adding latency at low load."""
    max_body_bytes: int = 8 * 1024 * 1024
    """Larger request bodies get 413 before they are parsed."""
    api_key: str | None = None
    """When set, every route except /health needs ``Authorization: Bearer <key>``."""
    model_uri: str = ""
    max_queue: int | None = None
    """Most items waiting or being scored; beyond it requests get 503 with ``Retry-After`` (None: unbounded). A request
    with more items than this could never fit: it gets 413."""
    timeout_s: float | None = None
    """Per-request deadline: a request not answered by then gets 504 and its queued work is dropped."""
    normalize: bool = False
    """Whiten text rewards with the mean and standard deviation stored at training time (a request may override)."""
    pooling_format: str = "vllm"
    """The response shape of ``/pooling``: ``vllm`` (``data[i]["data"] == [[score]]``) or ``lmdeploy`` (``== score``)."""
    retry_after_s: int = 1
    """The ``Retry-After`` seconds a 503 carries."""
    max_batch_tokens: int | None = 8192
    """Token budget of one forward pass of a text reward (rows x padded length), rows sorted by length; None: rows
    only (``max_batch_size``)."""
    compile: bool = False
    """Serve a text reward through ``torch.compile`` (warmed up at start)."""


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None, kind: str = "invalid_request", headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.field, self.kind, self.headers = status, message, field, kind, headers


def error_body(status: int, message: str, field: str | None = None, kind: str = "invalid_request", errors=None) -> dict:
    body: dict[str, Any] = {"type": kind, "message": message, "field": field, "status": status}
    if errors:
        body["errors"] = errors
    return {"error": body}


def _loc_to_field(loc: tuple) -> str:
    parts = [p for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


_FRIENDLY = {
    "missing": "required field is missing",
    "too_short": "must not be empty",
    "extra_forbidden": "unknown field",
    "finite_number": "must be a finite number (NaN and inf are rejected)",
}


def _message(err: dict, field: str) -> str:
    kind = err.get("type", "")
    if kind == "model_attributes_type" and not field:
        return "the body must be a JSON object (send Content-Type: application/json)"
    if kind == "bool_type":
        return f"must be true or false (a JSON boolean), found {json.dumps(err.get('input'), default=str)}"
    return _FRIENDLY.get(kind, str(err.get("msg", "")).removeprefix("Value error, "))


def _empty_body_error(model: type[BaseModel] | None) -> dict:
    """The error of a request without a body, naming what it lacks: the route's request model's own errors on ``{}``
    (``field 'prompts' is required; ...``)."""
    lacks = []
    try:
        if model is not None:
            model.model_validate({})
    except ValidationError as exc:
        for err in exc.errors():
            ctx_error = (err.get("ctx") or {}).get("error")
            if isinstance(ctx_error, FieldError):
                lacks.append({"field": ctx_error.field, "message": str(ctx_error)})
                continue
            field = _loc_to_field(tuple(err.get("loc", ())))
            message = f"field '{field}' is required" if err.get("type") == "missing" else f"{field}: {_message(err, field)}"
            lacks.append({"field": field or None, "message": message})
    return {"field": lacks[0]["field"] if lacks else None,
            "message": "the request body is empty: send a JSON object (Content-Type: application/json)"
            + "".join(f"; {e['message']}" for e in lacks)}


def _validation_errors(
    exc: RequestValidationError, model: type[BaseModel] | None = None
) -> tuple[int, str, str | None, list[dict]]:
    """(status, message, first field, every error) of a request that failed validation against ``model`` (the
    route's request body, to say which fields an empty body lacks)."""
    errors = []
    status = 422
    for err in exc.errors():
        ctx_error = (err.get("ctx") or {}).get("error")
        if err.get("type") == "json_invalid":
            status = 400
            where = (err.get("ctx") or {}).get("error", "") or err.get("msg")
            pos = [p for p in err.get("loc", ()) if isinstance(p, int)]
            at = f" at character {pos[0]}" if pos else ""
            errors.append({"field": None, "message": f"malformed JSON{at}: {where}"})
            continue
        if isinstance(ctx_error, FieldError):
            errors.append({"field": ctx_error.field, "message": str(ctx_error)})
            continue
        field = _loc_to_field(tuple(err.get("loc", ())))
        if err.get("type") == "missing" and not field:  # no body at all
            errors.append(_empty_body_error(model))
            continue
        message = _message(err, field)
        errors.append({"field": field or None, "message": f"{field}: {message}" if field else message})
    first = errors[0] if errors else {"field": None, "message": "invalid request"}
    return status, "; ".join(e["message"] for e in errors[:5]), first["field"], errors


class Metrics:
    """Prometheus collectors in their own registry (several apps can live in one process, as in tests)."""

    def __init__(self, batcher_pending, kind: str, uri: str, queued_items=lambda: 0):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("rewardlab_requests", "HTTP requests by route and status code", ["route", "status"], registry=r)
        self.latency = Histogram(
            "rewardlab_request_duration_seconds", "Request latency by route", ["route"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
        )
        sizes = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
        self.batch_items = Histogram("rewardlab_batch_items", "Items scored per forward pass", registry=r, buckets=sizes)
        self.batch_requests = Histogram("rewardlab_batch_requests", "Requests merged per forward pass", registry=r, buckets=sizes)
        self.items = Counter("rewardlab_items_scored", "Items scored, by route", ["route"], registry=r)
        self.truncated = Counter("rewardlab_truncated", "Texts cut to the model's maximum length", registry=r)
        self.refused = Counter("rewardlab_refused_requests", "Requests not scored: queue_full (503), too_large (413: more "
                               "items than --max-queue), deadline (504), disconnected (the client left)", ["reason"], registry=r)
        self.dropped = Counter("rewardlab_dropped_items", "Items whose queued work was dropped, by reason", ["reason"], registry=r)
        Gauge("rewardlab_queue_items", "Items waiting for or in a forward pass", registry=r).set_function(queued_items)
        Gauge("rewardlab_queue_pending", "Requests waiting for or in a forward pass", registry=r).set_function(batcher_pending)
        Gauge("rewardlab_model_info", "The served reward", ["kind", "uri"], registry=r).labels(kind, uri).set(1)

    def on_batch(self, items: int, requests: int) -> None:
        self.batch_items.observe(items)
        self.batch_requests.observe(requests)


class Guard:
    """Pure ASGI middleware: request metrics, the bearer-key check, and the body-size limit (413)."""

    def __init__(self, app, settings: ServeSettings, metrics: Metrics):
        self.app, self.settings, self.metrics = app, settings, metrics
        self.expected = f"Bearer {settings.api_key}".encode() if settings.api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        route = path if path in ROUTES else "other"
        status = [500]

        async def send_and_record(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        start = time.perf_counter()
        try:
            headers = dict(scope.get("headers") or [])
            if self.expected and path != "/health" and not hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
                given = headers.get(b"authorization")
                got = ("no Authorization header" if given is None else
                       "a key without the 'Bearer ' prefix" if not given.startswith(b"Bearer ") else "a wrong key")
                await _send_json(send_and_record, 401, error_body(
                    401, f"this server needs 'Authorization: Bearer <key>' (found {got})", "Authorization", "unauthorized"
                ), extra=[(b"www-authenticate", b"Bearer")])
                return
            if scope["method"] in ("POST", "PUT", "PATCH"):
                limit = self.settings.max_body_bytes
                declared = headers.get(b"content-length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    await _send_json(send_and_record, 413, _too_large(int(declared), limit))
                    return
                chunks, total = [], 0
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk = message.get("body", b"")
                    total += len(chunk)
                    if total > limit:
                        await _send_json(send_and_record, 413, _too_large(total, limit))
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
                body = b"".join(chunks)
                replayed = False

                async def replay():
                    nonlocal replayed
                    if not replayed:
                        replayed = True
                        return {"type": "http.request", "body": body, "more_body": False}
                    return await receive()

                await self.app(scope, replay, send_and_record)
            else:
                await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.requests.labels(route, str(status[0])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


def _too_large(size: int, limit: int) -> dict:
    return error_body(413, f"request body is {size} bytes, over this server's limit of {limit} bytes "
                      "(split the batch, or start the server with a larger --max-body-mb)", "body", "payload_too_large")


async def _send_json(send, status: int, body: dict, extra: list | None = None) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())] + (extra or [])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class ServeConfigError(ValueError):
    """A server option the reward cannot honour (e.g. --normalize for a reward without stored statistics)."""


def normalization_of(reward) -> dict | None:
    stats = getattr(reward, "normalization", None)
    return dict(stats) if isinstance(stats, dict) and "mean" in stats and "std" in stats else None


def create_app(reward, settings: ServeSettings | None = None) -> FastAPI:
    settings = settings or ServeSettings()
    kind = getattr(reward, "kind", type(reward).__name__)
    mode = modality(reward)
    can_explain = callable(getattr(reward, "explain", None))
    has_q = callable(getattr(reward, "q_values", None))
    can_read_text = callable(getattr(reward, "score_texts", None))
    uses_refs = getattr(reward, "uses_references", False)  # None: a remote reward whose server does not say
    rendering = reward.rendering() if mode == "text" and callable(getattr(reward, "rendering", None)) else None
    stats = normalization_of(reward)
    if mode == "text" and hasattr(reward, "batch_size"):  # one micro-batch is one pass, bounded by the token budget
        reward.batch_size = max(reward.batch_size, settings.max_batch_size)
        reward.max_batch_tokens = settings.max_batch_tokens
    if settings.normalize and stats is None:
        raise ServeConfigError(f"--normalize: this reward ({kind}) has no stored statistics (reward.json 'normalization'); "
                               "rewards trained by rewardlab's text learners have them, retrain or serve without --normalize")
    if settings.pooling_format not in POOLING_FORMATS:
        raise ServeConfigError(f"--pooling-format {settings.pooling_format!r}: expected one of {', '.join(POOLING_FORMATS)}")
    if rendering and rendering.get("warning"):
        print(f"warning: {rendering['warning']}", file=sys.stderr, flush=True)

    def score_text(key: Hashable, payloads: list[tuple]) -> list[tuple[list[float], list[bool]]]:
        if key == "raw":  # whole conversations already rendered by the client
            texts = [t for pl in payloads for t in pl[0]]
            scores = [float(s) for s in reward.score_texts(texts)]
        else:
            prompts = [p for pl in payloads for p in pl[0]]
            responses = [r for pl in payloads for r in pl[1]]
            references = [x for pl in payloads for x in pl[2]] if key == "refs" else None
            scores = [float(s) for s in reward.score(prompts, responses, references)]
        cut = list(getattr(reward, "last_truncated", None) or [])
        cut = cut if len(cut) == len(scores) else [False] * len(scores)
        out, i = [], 0
        for pl in payloads:
            n = len(pl[0])
            out.append((scores[i : i + n], cut[i : i + n]))
            i += n
        return out

    def score_transitions(key: Hashable, payloads: list[tuple]) -> list[list[float]]:
        merged = [np.concatenate([pl[k] for pl in payloads]) for k in range(4)]
        scores = np.asarray(reward.score(*merged), dtype=np.float64).reshape(-1)
        out, i = [], 0
        for pl in payloads:
            n = len(pl[0])
            out.append(scores[i : i + n].tolist())
            i += n
        return out

    batcher = MicroBatcher(score_text if mode == "text" else score_transitions, settings.max_batch_size, settings.max_wait_ms,
                           max_queue=settings.max_queue)
    metrics = Metrics(lambda: batcher.pending, kind, settings.model_uri, lambda: batcher.queued_items)
    batcher.on_batch = metrics.on_batch
    batcher.on_drop = lambda items, why: metrics.dropped.labels(why).inc(items)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()  # uvicorn has already let in-flight requests finish

    app = FastAPI(
        title="rewardlab reward server",
        version=rewardlab.__version__,
        description=f"Serves `{settings.model_uri or kind}` ({mode} reward). Errors are JSON: "
        '`{"error": {"type", "message", "field", "status"}}`.',
        lifespan=lifespan,
        docs_url=None,  # served below from local assets: FastAPI's default page loads them from a CDN (blank offline)
        redoc_url=None,
    )
    _mount_docs(app)
    app.state.reward, app.state.settings, app.state.metrics, app.state.batcher = reward, settings, metrics, batcher

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        body_field = getattr(request.scope.get("route"), "body_field", None)
        model = getattr(getattr(body_field, "field_info", None), "annotation", None)
        status, message, field, errors = _validation_errors(exc, model if isinstance(model, type) else None)
        return JSONResponse(error_body(status, message, field, errors=errors), status_code=status)

    @app.exception_handler(RewardInputError)
    async def _bad_input(request: Request, exc: RewardInputError):  # input the reward itself refuses (e.g. a missing reference)
        return JSONResponse(error_body(422, str(exc)), status_code=422)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return JSONResponse(error_body(exc.status, exc.message, exc.field, exc.kind), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}; routes: {', '.join(ROUTES)} (docs at /docs)"
        return JSONResponse(error_body(exc.status_code, message, kind="not_found" if exc.status_code == 404 else "http_error"),
                            status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        return JSONResponse(error_body(500, f"{type(exc).__name__}: {exc}", kind="internal_error"), status_code=500)

    def need(wanted: str, route: str) -> None:
        if mode != wanted:
            other = "/v1/score_transitions" if mode == "transition" else "/v1/score"
            raise ApiError(404, f"{route} needs a {wanted} reward; this server serves a {mode} reward ({kind}): use {other}",
                           kind="not_supported")

    async def submit(request: Request, key: Hashable, payload: Any, size: int):
        """Through the batcher, under the server's queue bound and deadline; a client that disconnects while its
        job waits cancels it."""
        async def gone():
            while (await request.receive())["type"] != "http.disconnect":
                pass
        try:
            return await batcher.submit(key, payload, size, timeout=settings.timeout_s, gone=gone())
        except TooLarge as exc:
            metrics.refused.labels("too_large").inc()
            raise ApiError(413, str(exc), kind="payload_too_large") from None
        except QueueFull as exc:
            metrics.refused.labels("queue_full").inc()
            raise ApiError(503, f"server busy: {exc}; retry after {settings.retry_after_s} s", kind="overloaded",
                           headers={"Retry-After": str(settings.retry_after_s)}) from None
        except DeadlineExceeded as exc:
            metrics.refused.labels("deadline").inc()
            raise ApiError(504, f"{exc}; the request's work was dropped", kind="timeout") from None
        except ClientGone:
            metrics.refused.labels("disconnected").inc()
            raise ApiError(499, "client disconnected", kind="client_closed") from None

    def no_stray_references(references) -> None:
        """References sent to a reward that does not use them are refused, as an unknown field is, not ignored."""
        if references is not None and uses_refs is False:
            raise ApiError(422, f"references: this reward ({kind}) does not use references; remove the field (references "
                           "are for rewards that score an answer against a reference answer, such as POLAR)", "references")

    def _normalized(scores: list[float], wanted: bool | None) -> list[float]:
        if wanted is None:
            wanted = settings.normalize
        if not wanted:
            return scores
        if stats is None:
            raise ApiError(422, f"normalize: this reward ({kind}) has no stored statistics to normalise with", "normalize")
        return whiten(scores, stats)

    async def run_text(request: Request, route: str, prompts, responses, references, normalize: bool | None = None) -> tuple[list[float], list[int]]:
        need("text", route)
        key = "refs" if references is not None else "plain"
        scores, cut = await submit(request, key, (prompts, responses, references or []), len(prompts))
        return _finish(route, scores, cut, normalize)

    def _finish(route: str, scores: list[float], cut: list[bool], normalize: bool | None) -> tuple[list[float], list[int]]:
        truncated = [i for i, c in enumerate(cut) if c]
        if truncated:
            metrics.truncated.inc(len(truncated))
        metrics.items.labels(route).inc(len(scores))
        return _normalized(scores, normalize), truncated

    async def run_encoded(request: Request, route: str, texts: list[str], field: str) -> tuple[list[float], list[int]]:
        """Texts as inference engines receive them: POLAR's ``<|reward|>`` strings are split into (prompt,
        reference, candidate); any other text is a whole conversation already rendered with the model's template
        and is scored as it is. One request holds one kind."""
        need("text", route)
        polar = [POLAR_SEP in t for t in texts]
        if any(polar) and not all(polar):
            first = polar.index(not polar[0])
            raise ApiError(422, f"{field}[{first}]: mixes POLAR's '{POLAR_SEP}' strings and rendered conversations in one request",
                           f"{field}[{first}]")
        if all(polar):
            try:
                triples = [split_polar(t, f"{field}[{i}]") for i, t in enumerate(texts)]
            except FieldError as exc:
                raise ApiError(422, str(exc), exc.field) from None
            return await run_text(request, route, [t[0] for t in triples], [t[1] for t in triples], [t[2] for t in triples])
        if not can_read_text:
            needs = (f"it scores each answer against a reference: send POLAR's '{POLAR_SEP}' format"
                     if getattr(reward, "uses_references", False) else "send prompts and responses to /v1/score")
            raise ApiError(422, f"{field}: this reward ({kind}) cannot score pre-rendered text; {needs}", field)
        scores, cut = await submit(request, "raw", (texts,), len(texts))
        return _finish(route, scores, cut, None)

    @app.get("/health", summary="Liveness: 200 once the model is loaded (no auth)")
    async def health():
        return {"status": "ok", "pending": batcher.pending}

    @app.get("/v1/info", summary="What is served: kind, modality, capabilities, limits")
    async def info():
        return {
            "model": settings.model_uri,
            "kind": kind,
            "modality": mode,
            "capabilities": ["score"] + (["explain"] if can_explain else []) + (["q_values"] if has_q else []),
            "max_length": getattr(reward, "max_length", None),
            "uses_references": uses_refs if mode == "text" else None,
            "text_rendering": rendering,
            "normalization": None if stats is None else {**stats, "applied_by_default": settings.normalize},
            "settings": {k: v for k, v in asdict(settings).items() if k != "api_key"},
            "rewardlab_version": rewardlab.__version__,
        }

    @app.post("/v1/score", summary="Score (prompt, response[, reference]) triples")
    async def score(req: ScoreRequest, request: Request):
        """`{"prompts": [...], "responses": [...], "references": [...]?}` -> `{"rewards": [...], "truncated": [i, ...]}`.

        Each chat is a string or a list of `{role, content}` messages. `truncated` lists the items cut to the
        model's maximum length (from the left, as in training). `references` only for a reward that uses them
        (POLAR; `/v1/info` says): any other answers 422."""
        no_stray_references(req.references)
        scores, truncated = await run_text(request, "/v1/score", req.prompts, req.responses, req.references, req.normalize)
        return JSONResponse({"rewards": scores, "truncated": truncated})

    @app.post("/v1/score_transitions", summary="Score environment transitions")
    async def score_transitions_route(req: TransitionRequest, request: Request):
        """`{"obs": [[...]], "actions": [...], "next_obs": [[...]], "dones": [...]?}` -> `{"rewards": [...]}`."""
        need("transition", "/v1/score_transitions")
        obs, actions, next_obs, dones = req.arrays()
        key = (obs.shape[1:], actions.shape[1:])
        rewards = await submit(request, key, (obs, actions, next_obs, dones), len(obs))
        metrics.items.labels("/v1/score_transitions").inc(len(rewards))
        return JSONResponse({"rewards": rewards})

    @app.post("/v1/explain", summary="Explanation sentences, for rewards that can explain")
    async def explain(request: Request):
        """Same body as `/v1/score_transitions` (or `/v1/score` for a text reward) -> `{"explanations": [...]}`.
        Rewards without an `explain` capability answer 404."""
        if not can_explain:
            raise ApiError(404, f"this reward ({kind}) cannot explain its scores; /v1/explain needs a reward with an "
                           "explain capability (S2E rewards have one)", kind="not_supported")
        model = ScoreRequest if mode == "text" else TransitionRequest
        raw = await request.body()
        if not raw.strip():
            empty = _empty_body_error(model)
            raise ApiError(422, empty["message"], empty["field"])
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, f"malformed JSON: {exc}") from None
        try:
            req = model.model_validate(payload)
        except Exception as exc:  # pydantic.ValidationError
            raise RequestValidationError(getattr(exc, "errors", lambda: [])()) from None
        if mode == "text":
            no_stray_references(req.references)
        args = (req.prompts, req.responses, req.references) if mode == "text" else req.arrays()
        texts = await batcher.run_alone(reward.explain, *args)
        return {"explanations": [str(t) for t in texts]}

    @app.post("/v1/q_values", summary="Per-token Q-values, for goal-conditioned rewards")
    async def q_values(req: ScoreRequest):
        """`{"prompts": [...], "responses": [...]}` -> `{"q_values": [[...], ...]}`: one list per response, one float
        per response token (cosine to the goal state). Rewards without a `q_values` capability answer 404."""
        if not has_q:
            raise ApiError(404, f"this reward ({kind}) has no Q-values; /v1/q_values needs a goal-conditioned reward "
                           "(recipes/goal_rm.yaml)", kind="not_supported")
        no_stray_references(req.references)
        values = await batcher.run_alone(reward.q_values, req.prompts, req.responses)
        metrics.items.labels("/v1/q_values").inc(len(values))
        return {"q_values": [[float(x) for x in q] for q in values]}

    @app.post("/get_reward", summary="OpenRLHF remote reward API")
    async def get_reward(req: GetRewardRequest, request: Request):
        """`{"query": [prompt+response, ...], "prompts": [...]?, "labels": [...]?}` -> `{"rewards", "scores"}`.

        The prompt prefix is removed from each query to get the response; labels are passed as references."""
        prompts, responses, references = req.split()
        scores, truncated = await run_text(request, "/get_reward", prompts, responses, references)
        return JSONResponse({"rewards": scores, "scores": scores, "truncated": truncated})

    @app.post("/pooling", summary="vLLM's or lmdeploy's pooling API, as POLAR's reward client sends it")
    async def pooling(req: PoolingRequest, request: Request):
        """`{"input": ["prompt\\nreference<|reward|>prompt\\ncandidate[UNUSED_TOKEN_130]", ...]}` (or rendered
        conversations) -> `{"data": [{"index": i, "object": "pooling", "data": [[score]]}]}`: the client reads
        `data[i]["data"][-1][0]` (server_type="vllm"). With `--pooling-format lmdeploy`, `data[i]["data"]` is the
        score itself (server_type="lmdeploy")."""
        texts = [req.input] if isinstance(req.input, str) else req.input
        if not texts:
            raise ApiError(422, "input: expected a non-empty list of strings", "input")
        scores, truncated = await run_encoded(request, "/pooling", texts, "input")
        shape = (lambda s: [[s]]) if settings.pooling_format == "vllm" else (lambda s: s)
        return JSONResponse({
            "object": "list",
            "model": req.model or settings.model_uri,
            "data": [{"index": i, "object": "pooling", "data": shape(s)} for i, s in enumerate(scores)],
            "truncated": truncated,
        })

    @app.post("/classify", summary="vLLM's or SGLang's classify API (verl's reward loop; POLAR's client with sglang)")
    async def classify(req: ClassifyRequest, request: Request):
        """vLLM: `{"model", "input": str | [str], "use_activation": false}` -> `{"data": [{"index", "label", "probs":
        [score], "num_classes": 1}]}` (verl reads `data[-1]["probs"][-1]`; with activation on, as vLLM's default,
        probs hold sigmoid(score)). SGLang: `{"model", "text": [str]}` -> `[{"index", "embedding": [score]}]` (POLAR's
        client reads `e["embedding"][0]`). A text is a whole conversation rendered with the model's own chat
        template, scored as it is, or a POLAR `<|reward|>` string."""
        field = "input" if req.input is not None else "text"
        scores, truncated = await run_encoded(request, "/classify", req.texts(), field)
        if req.text is not None:
            rows = [{"index": i, "embedding": [s], "meta_info": {"truncated": i in truncated}} for i, s in enumerate(scores)]
            return JSONResponse(rows if not isinstance(req.text, str) else rows[0])
        activation = req.use_activation if req.use_activation is not None else (req.activation if req.activation is not None else True)
        probs = [1 / (1 + math.exp(-s)) if activation else s for s in scores]
        return JSONResponse({"id": f"classify-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()),
                             "model": req.model or settings.model_uri,
                             "data": [{"index": i, "label": "LABEL_0", "probs": [p], "num_classes": 1} for i, p in enumerate(probs)],
                             "truncated": truncated})

    @app.post("/v1/embeddings", summary="SGLang's embeddings API for reward models (verl's reward loop with sglang)")
    async def embeddings(req: EmbeddingsRequest, request: Request):
        """`{"model", "input": str | [str]}` -> `{"data": [{"object": "embedding", "index", "embedding": [score]}]}`;
        verl reads `data[-1]["embedding"][-1]`. Texts as for /classify."""
        scores, truncated = await run_encoded(request, "/v1/embeddings", req.texts(), "input")
        return JSONResponse({"object": "list", "model": req.model or settings.model_uri,
                             "data": [{"object": "embedding", "index": i, "embedding": [s]} for i, s in enumerate(scores)],
                             "truncated": truncated})

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(Guard, settings=settings, metrics=metrics)
    return app
