"""Free loopback ports, so that parallel test processes and other people's servers never collide, and the
stop of a server process a test started."""

from __future__ import annotations

import socket
import subprocess


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick for port 0 on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a server a test started: asked to end, then killed if it has not within ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
