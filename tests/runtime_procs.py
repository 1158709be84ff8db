"""Runtime processes for the kill -9 tests: ``tests/crash_runtime.py`` with the crash plugins.

Each process gets the harness's PostgreSQL, Redis, Bot API stand-in, tenants
folder and control schema through ``TENANTRY_*`` variables, as ops would run
several ``tenantry run`` on one machine.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from core.testing.plugin import free_port

TESTS = Path(__file__).parent


def log_file():
    """Where the processes' logs go: ``CRASH_LOG=path`` keeps them for debugging."""
    return open(os.environ.get("CRASH_LOG", os.devnull), "ab")


def runtime_env(tenantry: Any, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of a runtime process sharing the harness's servers and folder."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)]),
        "TENANTRY_DATABASE_URL": database_url,
        "TENANTRY_REDIS_URL": redis_url,
        "TENANTRY_BOT_API_URL": tenantry.bot_api.base_url,
        "TENANTRY_TENANTS_DIR": str(tenantry.tenants_dir),
        "TENANTRY_DATA_DIR": str(tenantry.data_dir),
        "TENANTRY_SECRET_KEY": tenantry.secret_key,
        "TENANTRY_CONTROL_SCHEMA": tenantry.control_schema,
        "TENANTRY_QUEUE": f"crash-{tenantry.run_id}",
        "TENANTRY_WATCH": "0",
        **extra,
    }


async def spawn_runtime(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    """Start a runtime process; return it and its URL once all its tenants are running.

    Raises:
        AssertionError: the process exited, or its tenants were not running within 60 s.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(TESTS / "crash_runtime.py"), str(port),
        env={**env, "TENANTRY_PUBLIC_URL": url}, cwd=str(TESTS.parent),
        stdout=log_file(), stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=url) as client:
        deadline = time.monotonic() + 60
        while True:
            assert process.returncode is None, "the runtime process exited"
            assert time.monotonic() < deadline, "the runtime process did not start its tenants"
            try:
                health = (await client.get("/health")).json()
                states = [t["state"] for t in health["tenants"]]
                if states and set(states) == {"running"}:
                    return process, url
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


async def kill_all(*processes: asyncio.subprocess.Process | None) -> None:
    """kill -9 whichever of ``processes`` still run, and reap them."""
    for process in processes:
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
