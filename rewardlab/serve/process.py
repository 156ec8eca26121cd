"""Start and stop a server process from a script (tests, benchmarks): a free port, readiness, and a clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict | None = None) -> subprocess.Popen:
    """Start ``cmd`` in its own process group, so that ``stop`` reaches every worker it forks.

    Its output goes to a temporary file (``output(proc)`` reads it), not a pipe: a server that logs every request
    would block once an unread pipe's buffer filled up.
    """
    log = tempfile.NamedTemporaryFile(prefix="rewardlab-server-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log_path = log.name
    log.close()
    return proc


def output(proc: subprocess.Popen, tail: int | None = None) -> str:
    """What the process has printed so far (stdout and stderr)."""
    with open(proc.log_path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    return text[-tail:] if tail else text


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> str:
    """Poll ``url`` until it answers 200; return the body. Raises with the process output if it dies first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except (OSError, urllib.error.URLError):
            if proc.poll() is not None:
                out = output(proc, tail=3000)
                raise RuntimeError(f"server exited with {proc.returncode} before {url} answered:\n{out}") from None
            time.sleep(0.3)
    stop(proc)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
    """Send ``sig`` to the process group, wait, then kill whatever outlived it. Returns the main process's exit code."""
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    code = proc.poll()
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # workers that outlived the parent
    except ProcessLookupError:
        pass
    proc.wait(timeout=timeout)
    return code
