"""A realtime runtime in a process of its own (tests/realtime/realtime_runtime.py), for kill -9 and restarts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from core.testing.plugin import free_port

__all__ = ["RuntimeProcess"]


class RuntimeProcess:
    """A runtime in a process of its own (tests/realtime/realtime_runtime.py), as for kill -9.

    Args:
        tenantry: the harness whose tenant files, schemas and secrets it uses.
        env: ``TENANTRY_*`` settings on top of the harness's.
        name: ``TENANTRY_RUNTIME_NAME`` (its consumer name in the event groups).

    Attributes:
        url: its base URL once :meth:`start` returned.
        process: the asyncio subprocess.
    """

    def __init__(self, tenantry: Any, env: dict[str, str], name: str):
        tests = Path(__file__).resolve().parent.parent
        self.runner = Path(__file__).resolve().parent / "realtime_runtime.py"
        self.cwd = tests.parent
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(self.runner.parent), str(tests), str(tests.parent)]),
            "TENANTRY_DATABASE_URL": tenantry.database_url,
            "TENANTRY_REDIS_URL": tenantry.redis_url,
            "TENANTRY_BOT_API_URL": tenantry.bot_api.base_url,
            "TENANTRY_TENANTS_DIR": str(tenantry.tenants_dir),
            "TENANTRY_DATA_DIR": str(tenantry.data_dir),
            "TENANTRY_SECRET_KEY": tenantry.secret_key,
            "TENANTRY_CONTROL_SCHEMA": tenantry.control_schema,
            "TENANTRY_QUEUE": f"tenantry-test-{tenantry.run_id}",
            "TENANTRY_WATCH": "0",
            "TENANTRY_GC_FREEZE": "0",
            "TENANTRY_RUNTIME_NAME": name,
            **env,
        }
        self.url = ""
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 60.0) -> None:
        """Spawn it and wait until every tenant is running.

        Raises:
            AssertionError: it exited, or did not serve within ``timeout`` seconds.
        """
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        # REALTIME_LOG=path keeps the runtime processes' logs for debugging.
        log = Path(os.environ.get("REALTIME_LOG", os.devnull)).open("ab")  # noqa: ASYNC230
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, str(self.runner), str(port),
            env={**self.env, "TENANTRY_PUBLIC_URL": self.url}, cwd=str(self.cwd),
            stdout=log, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.url) as http:
            while True:
                assert self.process.returncode is None, "the runtime process exited"
                assert time.monotonic() < deadline, "the runtime process did not start its tenants"
                with contextlib.suppress(httpx.TransportError):
                    tenants = (await http.get("/health")).json()["tenants"]
                    if tenants and all(t["state"] == "running" for t in tenants):
                        return
                await asyncio.sleep(0.1)

    @property
    def pid(self) -> int:
        """Its process id."""
        assert self.process is not None
        return self.process.pid

    def rss_bytes(self) -> int:
        """Its resident set size (``VmRSS`` of ``/proc/<pid>/status``), bytes."""

        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise ProcessLookupError(self.pid)

    async def kill(self) -> None:
        """SIGKILL it (no shutdown of any kind) and reap it."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def stop(self) -> None:
        """SIGINT it (a graceful shutdown); SIGKILL after 20 s."""

        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self.process.wait(), 20)
        except TimeoutError:
            await self.kill()
