"""Load a reward and run the app under uvicorn, with a graceful shutdown."""

from __future__ import annotations

import sys

from rewardlab.serve.app import ROUTES, ServeConfigError, ServeSettings, create_app

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(
    model_uri: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: ServeSettings | None = None,
    device: str | None = None,
    access_log: bool = True,
    graceful_timeout_s: float = 30.0,
    log_level: str = "info",
) -> None:
    """Blocks until SIGINT/SIGTERM. On shutdown uvicorn stops accepting connections and waits (up to
    ``graceful_timeout_s``) for in-flight requests, which the micro-batcher still answers, before exiting."""
    import uvicorn

    from rewardlab import rewards

    settings = settings or ServeSettings()
    settings.model_uri = str(model_uri)
    kwargs = {"device": device} if device else {}
    print(f"loading {model_uri} ...", file=sys.stderr, flush=True)
    reward = rewards.load(model_uri, **kwargs)
    if settings.compile:
        from rewardlab.rewards.text import compile_for_serving

        if not hasattr(reward, "model") or rewards.modality(reward) != "text":
            raise ServeConfigError(f"--compile: applies to text rewards with a transformers model; this is a {type(reward).__name__}")
        print(f"compiling the model (torch.compile) ... {compile_for_serving(reward):.0f} s", file=sys.stderr, flush=True)
    app = create_app(reward, settings)
    if host not in LOOPBACK and not settings.api_key:
        print(f"warning: listening on {host} without --api-key: anyone who can reach this port can use the model",
              file=sys.stderr, flush=True)
    auth = "Bearer key required (except /health)" if settings.api_key else "no auth"
    print(
        f"serving {model_uri} ({getattr(reward, 'kind', type(reward).__name__)}, {rewards.modality(reward)}) on "
        f"http://{host}:{port}  [{auth}; batch <= {settings.max_batch_size} items / {settings.max_batch_tokens} tokens, "
        f"wait <= {settings.max_wait_ms} ms, queue <= {settings.max_queue or 'unbounded'} items, deadline {settings.timeout_s or 'none'} s"
        f"{', normalized' if settings.normalize else ''}]\n"
        f"routes: {', '.join(ROUTES)}; API docs at http://{host}:{port}/docs",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=access_log, timeout_graceful_shutdown=graceful_timeout_s
    )
    uvicorn.Server(config).run()
