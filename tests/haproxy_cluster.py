"""Runtime processes behind Debian's haproxy, and a client that delivers updates as Telegram does.

Used by ``test_failover_haproxy``. Everything listens on 127.0.0.1 only:

* :class:`RuntimeProcess`: one ``tenantry run`` process at a time on a fixed
  port, so it comes back at the same address after a restart, forked by a
  :class:`Forkserver` (``failover_runtime.py``); ``kill -9``
  (:meth:`~RuntimeProcess.kill`) or SIGTERM (:meth:`~RuntimeProcess.terminate`,
  uvicorn's graceful shutdown).
* :class:`LoadBalancer`: ``haproxy -db`` with the configuration of
  :func:`haproxy_config` (the one ``docs/ops.md``, "Behind a load balancer",
  describes) and its servers' states from the stats page.
* :class:`TelegramSender`: posts updates to ``/webhook/<tenant>`` with the
  secret token header and re-sends each one that got no 200 (connection
  error, timeout, 5xx) until it gets one, recording every answer.

The runtime processes live in ``_haproxy_cluster_runtime``, the client in
``_haproxy_cluster_sender``; this module re-exports both.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import time
from pathlib import Path

import httpx
from _haproxy_cluster_runtime import Forkserver, RuntimeProcess, _tail, runtime_env
from _haproxy_cluster_sender import Attempt, TelegramSender

__all__ = [
    "HAPROXY",
    "NO_RUNTIME_BODY",
    "Attempt",
    "Forkserver",
    "LoadBalancer",
    "RuntimeProcess",
    "TelegramSender",
    "haproxy_config",
    "runtime_env",
]

HAPROXY = Path("/usr/sbin/haproxy")
"""Debian's haproxy (``apt-get install haproxy``)."""

NO_RUNTIME_BODY = (
    b'{"type":"about:blank","title":"Service Unavailable","status":503,'
    b'"detail":"no runtime can take the request now; retry shortly","code":"lb.no_runtime"}'
)
"""The problem body haproxy answers when no server is up (``errorfile 503``)."""


def haproxy_config(
    port: int, stats_port: int, servers: list[RuntimeProcess], errors_dir: Path
) -> str:
    """An haproxy configuration: round robin over ``servers``, checked on ``/health``.

    * Health: ``GET /health`` every 200 ms; down after 2 failures, up after 2
      successes. ``/health`` answers 200 only when the runtime reaches
      PostgreSQL and Redis, and the port is bound only once its tenants started.
    * Retries: a connection refused or reset, a connection closed without an
      answer and an answer later than ``timeout server`` are retried (up to
      3 times, each on another server: ``option redispatch 1``). haproxy
      retries only a request it holds whole: ``option http-buffer-request``
      waits for the body before connecting (without it, a request whose body
      came in a second packet got 502 when its runtime was killed). Re-sending a
      webhook POST is safe because the runtime dedupes update ids; a retry
      that reaches a runtime while another still holds the update's claim is
      answered 503 + ``Retry-After`` by that runtime.
    * No server up: 503 with ``Retry-After: 1`` and a problem body
      (``errorfile 503``), as the runtime's own 503s.

    Args:
        port: the frontend's loopback port.
        stats_port: the stats page's loopback port (``/stats;csv``).
        servers: the runtimes.
        errors_dir: where the 503 error file is written.

    Returns:
        The configuration text.
    """
    no_runtime = errors_dir / "503.http"
    no_runtime.write_bytes(
        b"HTTP/1.1 503 Service Unavailable\r\n"
        b"Content-Type: application/problem+json\r\n"
        b"Retry-After: 1\r\n"
        b"Cache-Control: no-cache\r\n"
        b"Connection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(NO_RUNTIME_BODY), NO_RUNTIME_BODY)
    )
    server_lines = "\n".join(
        f"    server {server.name} 127.0.0.1:{server.port} check" for server in servers
    )
    return f"""\
global
    log stdout format raw local0 info
    maxconn 1000

defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 10s
    timeout server 5s
    timeout http-request 10s
    timeout check 1s
    option http-buffer-request
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    errorfile 503 {no_runtime}

frontend webhooks
    bind 127.0.0.1:{port}
    default_backend runtimes

frontend stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
    stats refresh 1s

backend runtimes
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    default-server inter 200ms fall 2 rise 2
{server_lines}
"""


class LoadBalancer:
    """``haproxy -f <config> -db`` in the foreground, its log in ``log_path``.

    Args:
        config_path: the configuration file (from :func:`haproxy_config`).
        port: the frontend port named in it.
        stats_port: the stats port named in it.
        log_path: file of haproxy's output (one line per request, ``option httplog``).
    """

    def __init__(self, config_path: Path, port: int, stats_port: int, log_path: Path):
        self.config_path = config_path
        self.url = f"http://127.0.0.1:{port}"
        self.stats_url = f"http://127.0.0.1:{stats_port}/stats;csv"
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Check the configuration (``haproxy -c``), then start haproxy."""
        check = await asyncio.create_subprocess_exec(
            str(HAPROXY), "-c", "-q", "-f", str(self.config_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await check.communicate()
        assert check.returncode == 0, f"haproxy refused the configuration:\n{output.decode()}"
        with self.log_path.open("ab") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                str(HAPROXY), "-f", str(self.config_path), "-db",
                stdout=log_file, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip

    async def server_states(self) -> dict[str, str]:
        """Each server's status as haproxy sees it: ``UP``, ``DOWN``, ``UP 1/2``..."""
        async with httpx.AsyncClient(timeout=2) as client:
            text = (await client.get(self.stats_url)).text
        rows = csv.DictReader(io.StringIO(text.removeprefix("# ")))
        return {
            row["svname"]: row["status"]
            for row in rows
            if row["pxname"] == "runtimes" and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    async def wait_state(self, server: str, state: str, timeout: float = 10) -> None:
        """Wait until haproxy reports ``server`` in ``state`` (``UP`` or ``DOWN``).

        Raises:
            AssertionError: not within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while states.get(server) != state:
            with contextlib.suppress(httpx.TransportError):  # haproxy still binding its ports
                states = await self.server_states()
                if states.get(server) == state:
                    return
            assert self.process is not None and self.process.returncode is None, (
                f"haproxy exited:\n{_tail(self.log_path)}"
            )
            assert time.monotonic() < deadline, f"{server} not {state} in {timeout} s: {states}"
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        """Stop haproxy."""
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self.process.wait()
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
