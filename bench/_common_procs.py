"""Child processes of the benchmarks, what they use, and the cleanup after them (via ``_common``).

Everything here talks to servers on 127.0.0.1 only. Child processes are
started by :class:`Child`, which remembers when it was spawned (for start-up
timings), keeps its output in a log file and stops exactly the process it
started; :func:`wait_http` waits until one answers, :func:`rss_mb` and
:func:`cpu_seconds` measure it, :func:`child_env` is its environment.
:func:`drop_schemas` and :func:`delete_redis_keys` remove what a run left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import aiohttp

PYTHON = sys.executable


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB, from ``VmRSS`` in ``/proc/<pid>/status``.

    Raises:
        ProcessLookupError: the process is gone.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # the kernel reports kB
    raise ProcessLookupError(pid)


class Child:
    """A child process with its output in ``log_path``.

    Args:
        name: shown in messages.
        argv: the command.
        env: the full environment of the child.
        log_path: stdout and stderr go here.
        cwd: the child's working directory (default: this process's).

    Attributes:
        spawned_at: ``time.monotonic()`` just before the process was created.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        cwd: Path | None = None,
    ):
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.spawned_at = time.monotonic()
        self.process = subprocess.Popen(
            list(argv),
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
        )

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    async def stop(
        self,
        timeout: float = 30.0,
        session: aiohttp.ClientSession | None = None,
        probe_url: str | None = None,
    ) -> float | None:
        """Ask the process to stop with SIGINT (a graceful shutdown); SIGKILL it if it does not.

        Args:
            timeout: seconds to wait for the exit.
            session / probe_url: when given and ``probe_url`` still answers 3 s
                after the signal, the process ignored it (it still serves): kill
                it at once instead of waiting out ``timeout``.

        Returns:
            Seconds until it exited, or None when it had to be killed.
        """
        started = time.monotonic()
        graceful: float | None = 0.0
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            graceful = None
            probed = False
            while time.monotonic() - started < timeout:
                if not self.alive():
                    graceful = time.monotonic() - started
                    break
                if session and probe_url and not probed and time.monotonic() - started > 3:
                    probed = True
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with session.get(probe_url, timeout=aiohttp.ClientTimeout(total=2)):
                            break  # still serving: the signal was swallowed
                await asyncio.sleep(0.1)
            if graceful is None:
                self.process.kill()
            self.process.wait()
        self._log.close()
        return graceful

    def log_lines(self, *needles: str) -> list[str]:
        """Lines of the child's log that contain any of ``needles`` (case-insensitive)."""
        wanted = [n.lower() for n in needles]
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines() if any(n in line.lower() for n in wanted)]


async def wait_http(
    session: aiohttp.ClientSession, url: str, child: Child, timeout: float, interval: float = 0.05
) -> tuple[int, bytes]:
    """GET ``url`` until it answers (any status); return that status and body.

    Raises:
        RuntimeError: ``child`` exited, or nothing answered within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(
                f"{child.name} exited with {child.process.returncode}; see {child.log_path}"
            )
        with contextlib.suppress(aiohttp.ClientConnectionError, TimeoutError):
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as response:
                return response.status, await response.read()
        await asyncio.sleep(interval)
    raise RuntimeError(
        f"{child.name} did not answer {url} within {timeout:.0f} s; see {child.log_path}"
    )


async def drop_schemas(database_url: str, schemas: Iterable[str], batch: int = 50) -> int:
    """``DROP SCHEMA ... CASCADE`` for every schema, ``batch`` per statement; return how many."""
    import asyncpg

    names = sorted(set(schemas))
    conn = await asyncpg.connect(database_url)
    try:
        for start in range(0, len(names), batch):
            quoted = ", ".join(f'"{name}"' for name in names[start : start + batch])
            await conn.execute(f"DROP SCHEMA IF EXISTS {quoted} CASCADE")
    finally:
        await conn.close()
    return len(names)


async def delete_redis_keys(redis_url: str, patterns: Iterable[str]) -> int:
    """Delete every key matching any of the glob ``patterns``; return how many."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url)
    deleted = 0
    try:
        for pattern in patterns:
            keys = [key async for key in redis.scan_iter(match=pattern, count=1000)]
            for start in range(0, len(keys), 1000):
                deleted += await redis.delete(*keys[start : start + 1000])
    finally:
        await redis.aclose()
    return deleted


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used so far, in seconds (``/proc/<pid>/stat``).

    Raises:
        ProcessLookupError: the process is gone.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_env(**values: str) -> dict[str, str]:
    """This process's environment with ``values`` added and stray ``TENANTRY_*`` removed.

    Unset ``TENANTRY_*`` variables of the calling shell would otherwise leak
    into the runtime under test and change what is measured.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")}
    env.update(values)
    return env


def own_cpu_seconds() -> float:
    """User plus system CPU time this process (every thread) has used so far, in seconds."""
    times = os.times()
    return times.user + times.system
