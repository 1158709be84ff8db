"""A private Redis and PostgreSQL for the storage failover tests, stopped and started at will.

Both run in a temporary folder of the test on free loopback ports, so
stopping them disturbs nobody else's tests: ``redis-server`` with its
append-only file (``appendonly yes``, ``appendfsync everysec``) unless told
otherwise, and a PostgreSQL cluster made by ``initdb`` and served by
``pg_ctl``. :data:`needs_servers` skips a test module when either is not
installed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from core.testing.plugin import free_port

REDIS_SERVER = shutil.which("redis-server")
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)

needs_servers = pytest.mark.skipif(
    REDIS_SERVER is None or PG_BIN is None or not (PG_BIN / "initdb").exists(),
    reason="needs redis-server and PostgreSQL's initdb/pg_ctl under /usr/lib/postgresql/*/bin "
    "(apt-get install redis-server postgresql)",
)
"""The ``pytestmark`` of a module whose tests start these servers."""


class PrivateRedis:
    """``redis-server`` on a free loopback port, its append-only file in ``folder``.

    Args:
        folder: its working directory (AOF and log).
        appendonly: keep an append-only file (else nothing survives a restart).
    """

    def __init__(self, folder: Path, *, appendonly: bool = True):
        self.folder = folder
        self.appendonly = appendonly
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it on the same port as before; returns once it answers PING."""
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.folder), "--save", "",
             "--appendonly", "yes" if self.appendonly else "no",
             "--appendfsync", "everysec", "--logfile", str(self.folder / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            ping = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True
            )
            if ping.stdout.strip() == "PONG":
                return
            assert self.process.poll() is None, f"redis-server exited: {self._log()}"
            assert time.monotonic() < deadline, f"redis-server not answering: {self._log()}"
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM: Redis writes its AOF, if any, and exits (as ``redis-cli shutdown`` does)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """Teardown: make sure it is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _log(self) -> str:
        path = self.folder / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


class PrivatePostgres:
    """A PostgreSQL cluster (``initdb``) in ``folder``, served by ``pg_ctl`` on a free port.

    initdb refuses to run as root; then the cluster belongs to the system user
    ``postgres`` and the commands run through ``runuser``. ``fsync=off`` and
    ``initdb --no-sync``: the data of a test need not survive a power cut,
    and init takes under a second.

    Args:
        folder: a directory the server's user may write (``data``, ``log``, the socket).
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", "postgres", "--"]
            postgres = pwd.getpwnam("postgres")
            os.chown(folder, postgres.pw_uid, postgres.pw_gid)

    def _run(self, *args: str) -> None:
        assert PG_BIN is not None
        command = [*self._as_user, str(PG_BIN / args[0]), *args[1:]]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"

    def init(self) -> None:
        """``initdb``: trust authentication for ``postgres``, UTF-8."""
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync")  # fmt: skip

    def start(self) -> None:
        """``pg_ctl start -w`` on the same port as before."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w",
                  "-o", options, "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m fast``: ends open connections at once and shuts down cleanly."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def kill(self) -> None:
        """Teardown: stop it if it runs (immediate mode, nothing worth keeping)."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self.stop("immediate")
