"""Start and stop a server process from a script (tests, benchmarks): a free port, readiness, and a clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict | None = None, log=None) -> subprocess.Popen:
    """Start ``cmd`` in its own process group, so that ``stop`` reaches every worker it forks."""
    return subprocess.Popen(
        cmd, env={**os.environ, **(env or {})}, stdout=log or subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> str:
    """Poll ``url`` until it answers 200; return the body. Raises with the process output if it dies first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except (OSError, urllib.error.URLError):
            if proc.poll() is not None:
                out = proc.stdout.read().decode(errors="replace")[-3000:] if proc.stdout else ""
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
