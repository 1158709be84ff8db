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
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HAPROXY = Path("/usr/sbin/haproxy")
"""Debian's haproxy (``apt-get install haproxy``)."""

TESTS = Path(__file__).parent
ROOT = TESTS.parent

NO_RUNTIME_BODY = (
    b'{"type":"about:blank","title":"Service Unavailable","status":503,'
    b'"detail":"no runtime can take the request now; retry shortly","code":"lb.no_runtime"}'
)
"""The problem body haproxy answers when no server is up (``errorfile 503``)."""


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Forkserver:
    """``tests/failover_runtime.py``: imports the runtime once and forks ``tenantry run`` processes.

    Args:
        log_path: the forkserver's own error output.
    """

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Start it; it answers once its imports are done."""
        with self.log_path.open("ab") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, str(TESTS / "failover_runtime.py"), cwd=str(ROOT),
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log_file,
            )  # fmt: skip

    async def ask(self, command: str) -> str:
        """Send one command line, return its answer line."""
        assert self.process is not None and self.process.stdin and self.process.stdout
        async with self._lock:
            self.process.stdin.write(command.encode() + b"\n")
            await self.process.stdin.drain()
            answer = (await self.process.stdout.readline()).decode().strip()
        assert answer and not answer.startswith("error"), (
            f"forkserver: {answer or 'exited'}\n{_tail(self.log_path)}"
        )
        return answer

    async def close(self) -> None:
        """Stop it (its children are the runtimes' to stop)."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


class RuntimeProcess:
    """One ``tenantry run`` process at a time on ``port``, forked by a :class:`Forkserver`.

    The port is the same at every start, so haproxy finds it again after a
    restart; its output is appended to ``log_path``.

    Args:
        forkserver: forks the processes.
        name: the runtime's name (``TENANTRY_RUNTIME_NAME``) and haproxy server name.
        port: the loopback port it listens on.
        env: its ``TENANTRY_*`` settings.
        log_path: file its log lines are appended to.
    """

    def __init__(
        self, forkserver: Forkserver, name: str, port: int, env: dict[str, str], log_path: Path
    ):
        self.forkserver = forkserver
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**env, "TENANTRY_RUNTIME_NAME": name}
        self.log_path = log_path
        self.pid: int | None = None

    async def start(self) -> None:
        """Fork ``tenantry run``; it binds its port once the lifespan start-up is done."""
        assert self.pid is None or await self.exit_status() is not None, "still running"
        env = json.dumps(self.env, separators=(",", ":"))
        self.pid = int(await self.forkserver.ask(f"run {self.port} {self.log_path} {env}"))

    async def exit_status(self) -> int | None:
        """None while it runs, else its exit status (``-15``: it ended on SIGTERM)."""
        assert self.pid is not None
        answer = await self.forkserver.ask(f"status {self.pid}")
        return None if answer == "running" else int(answer)

    async def wait_exit(self, timeout: float = 20) -> int:
        """Wait for the process to end; returns its exit status."""
        deadline = time.monotonic() + timeout
        while (status := await self.exit_status()) is None:
            assert time.monotonic() < deadline, f"{self.name} still running after {timeout} s"
            await asyncio.sleep(0.02)
        return status

    async def wait_serving(self, tenant_id: str, timeout: float = 60) -> None:
        """Poll its ``/health`` until it answers 200 with ``tenant_id`` running.

        Raises:
            AssertionError: the process exited, or was not serving within ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as client:
            while True:
                assert await self.exit_status() is None, (
                    f"runtime {self.name} exited:\n{_tail(self.log_path)}"
                )
                assert time.monotonic() < deadline, (
                    f"runtime {self.name} not serving in {timeout} s:\n{_tail(self.log_path)}"
                )
                states: dict[str, str] = {}
                with contextlib.suppress(httpx.TransportError, ValueError):
                    response = await client.get("/health")
                    states = {t["id"]: t["state"] for t in response.json()["tenants"]}
                    if response.status_code == 200 and states.get(tenant_id) == "running":
                        return
                assert states.get(tenant_id) != "failed", (
                    f"runtime {self.name}: tenant {tenant_id} failed:\n{_tail(self.log_path)}"
                )
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """``kill -9``: no shutdown at all, in-flight requests die with the process."""
        assert self.pid is not None
        os.kill(self.pid, signal.SIGKILL)
        assert await self.wait_exit() == -signal.SIGKILL

    async def terminate(self, timeout: float = 20) -> None:
        """SIGTERM (uvicorn's graceful shutdown) and wait for the exit.

        uvicorn stops listening, finishes the requests in progress, runs the
        lifespan shutdown (the runtime drains its tenants) and then raises the
        signal again, so a graceful exit is status ``-SIGTERM``.

        Raises:
            AssertionError: it exited otherwise, or its lifespan shutdown did not complete.
        """
        assert self.pid is not None
        logged_before = self.log_path.stat().st_size
        os.kill(self.pid, signal.SIGTERM)
        status = await self.wait_exit(timeout)
        with self.log_path.open("rb") as log_file:
            log_file.seek(logged_before)
            log = log_file.read().decode(errors="replace")
        assert status in (0, -signal.SIGTERM) and "Application shutdown complete." in log, (
            f"runtime {self.name} did not shut down gracefully (status {status}):\n"
            f"{_tail(self.log_path)}"
        )

    async def close(self) -> None:
        """Kill the process if it still runs (test teardown)."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


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


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt of an update.

    Attributes:
        update_id: the update.
        status: the HTTP status, None when no answer came (``error`` says why).
        error: the httpx exception's class name for a connection error or timeout.
        retry_after: the ``Retry-After`` header of the answer, if any.
        code: the problem body's ``code`` of an error answer (``webhook.retry_later``
            from a runtime, ``lb.no_runtime`` from haproxy), if any.
    """

    update_id: int
    status: int | None
    error: str | None = None
    retry_after: str | None = None
    code: str | None = None


@dataclass
class TelegramSender:
    """Delivers updates to one tenant's webhook the way Telegram does.

    A new update every ``1 / rate`` seconds, each with its own update id and
    user; at most ``connections`` requests at once (Bot API: setWebhook
    ``max_connections``, default 40). An update is re-sent
    ``resend_delay`` seconds after every attempt that got no 200, until one
    does. :attr:`outstanding` holds the update ids with a request in flight
    right now.

    Attributes:
        url: the webhook URL (``<base>/webhook/<tenant>``).
        secret: the tenant's ``X-Telegram-Bot-Api-Secret-Token``.
        build_update: ``user_id -> Update dict`` (a new update id each call).
        rate: new updates per second.
        connections: concurrent requests at most.
        resend_delay: seconds between attempts of one update.
        timeout: seconds before an attempt without an answer is given up.
    """

    url: str
    secret: str
    build_update: Callable[[int], dict[str, Any]]
    rate: float = 100.0
    connections: int = 40
    resend_delay: float = 0.1
    timeout: float = 5.0
    first_user_id: int = 7_000_000_000
    attempts: list[Attempt] = field(default_factory=list)
    users: dict[int, int] = field(default_factory=dict)  # update_id -> user_id
    acknowledged: set[int] = field(default_factory=set)
    outstanding: set[int] = field(default_factory=set)
    _deliveries: set[asyncio.Task[None]] = field(default_factory=set)
    _producing: asyncio.Task[None] | None = None
    _client: httpx.AsyncClient | None = None
    _slots: asyncio.Semaphore | None = None
    _answered: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def start(self) -> None:
        """Start sending new updates."""
        self._client = httpx.AsyncClient(
            timeout=self.timeout,
            limits=httpx.Limits(max_connections=self.connections),
            headers={"X-Telegram-Bot-Api-Secret-Token": self.secret},
        )
        self._slots = asyncio.Semaphore(self.connections)
        self._producing = asyncio.create_task(self._produce())

    async def burst(self, count: int) -> None:
        """Send ``count`` new updates at once, as Telegram does with a backlog.

        Returns once all of them are in flight (or the connection limit is reached).
        """
        for _ in range(count):
            self._new_update()
        deadline = time.monotonic() + 5
        while len(self.outstanding) < min(count, self.connections):
            assert time.monotonic() < deadline, "the burst did not get under way"
            await asyncio.sleep(0.001)

    async def wait_acknowledged(self, count: int) -> None:
        """Wait until ``count`` updates in all got their 200."""
        async with self._answered:
            await self._answered.wait_for(lambda: len(self.acknowledged) >= count)

    async def stop_producing(self) -> None:
        """Send no new updates; the pending ones are still re-sent."""
        if self._producing is not None:
            self._producing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._producing

    async def finish(self, timeout: float) -> None:
        """Stop producing and wait until every update got its 200.

        Raises:
            AssertionError: some updates still had no 200 after ``timeout`` seconds.
        """
        await self.stop_producing()
        try:
            async with asyncio.timeout(timeout):
                while self._deliveries:
                    await asyncio.gather(*self._deliveries)
        except TimeoutError:
            unanswered = sorted(set(self.users) - self.acknowledged)
            raise AssertionError(f"updates without a 200 after {timeout} s: {unanswered}") from None
        finally:
            await self.close()

    async def close(self) -> None:
        """Give up: stop producing and re-sending, close the connections (test teardown)."""
        await self.stop_producing()
        deliveries = list(self._deliveries)
        for task in deliveries:
            task.cancel()
        await asyncio.gather(*deliveries, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def _produce(self) -> None:
        started = time.monotonic()
        sent = 0
        while True:
            # Paced on the clock: a slow attempt does not slow the offered load.
            sent += 1
            self._new_update()
            await asyncio.sleep(max(0.0, started + sent / self.rate - time.monotonic()))

    def _new_update(self) -> None:
        user_id = self.first_user_id + len(self.users) + 1
        update = self.build_update(user_id)
        self.users[update["update_id"]] = user_id
        task = asyncio.create_task(self._deliver(update))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, update: dict[str, Any]) -> None:
        update_id = update["update_id"]
        while True:
            assert self._slots is not None and self._client is not None
            async with self._slots:
                self.outstanding.add(update_id)
                try:
                    attempt = await self._attempt(update)
                finally:
                    self.outstanding.discard(update_id)
            self.attempts.append(attempt)
            if attempt.status == 200:
                self.acknowledged.add(update_id)
                async with self._answered:
                    self._answered.notify_all()
                return
            await asyncio.sleep(self.resend_delay)

    async def _attempt(self, update: dict[str, Any]) -> Attempt:
        assert self._client is not None
        update_id = update["update_id"]
        try:
            response = await self._client.post(self.url, json=update)
        except httpx.TransportError as exc:
            return Attempt(update_id, None, error=type(exc).__name__)
        code = None
        if response.status_code != 200:
            with contextlib.suppress(ValueError, AttributeError):
                code = response.json().get("code")
        return Attempt(
            update_id, response.status_code, retry_after=response.headers.get("retry-after"),
            code=code,
        )  # fmt: skip


def runtime_env(harness: Any, public_url: str) -> dict[str, str]:
    """The ``TENANTRY_*`` settings of a runtime process on the harness's servers and schemas."""
    return {
        "TENANTRY_DATABASE_URL": harness.database_url,
        "TENANTRY_REDIS_URL": harness.redis_url,
        "TENANTRY_BOT_API_URL": harness.bot_api.base_url,
        "TENANTRY_PUBLIC_URL": public_url,
        "TENANTRY_TENANTS_DIR": str(harness.tenants_dir),
        "TENANTRY_DATA_DIR": str(harness.data_dir),
        "TENANTRY_SECRET_KEY": harness.secret_key,
        "TENANTRY_CONTROL_SCHEMA": harness.control_schema,
        "TENANTRY_QUEUE": f"tenantry-test-{harness.run_id}",
        "TENANTRY_WATCH": "0",
        "TENANTRY_DB_POOL_MIN": "1",
        "TENANTRY_DB_POOL_MAX": "5",
        "TENANTRY_DB_APPLICATION_NAME": f"tenantry-test-{harness.run_id}",
    }
