"""Runtime processes for the failover tests: forked ``tenantry run`` processes on fixed ports.

Used through ``haproxy_cluster`` (which re-exports these) by
``test_failover_haproxy`` and ``test_failover_storage``. Everything listens
on 127.0.0.1 only:

* :class:`RuntimeProcess`: one ``tenantry run`` process at a time on a fixed
  port, so it comes back at the same address after a restart, forked by a
  :class:`Forkserver` (``failover_runtime.py``); ``kill -9``
  (:meth:`~RuntimeProcess.kill`) or SIGTERM (:meth:`~RuntimeProcess.terminate`,
  uvicorn's graceful shutdown).
* :func:`runtime_env`: the ``TENANTRY_*`` settings of such a process on a
  test harness's servers and schemas.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

TESTS = Path(__file__).parent
ROOT = TESTS.parent


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
