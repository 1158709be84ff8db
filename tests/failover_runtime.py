"""Forks ``tenantry run`` processes from one that imported the runtime once.

``python tests/failover_runtime.py`` reads commands on stdin and answers
each with one line on stdout:

* ``run <port> <log file> <env JSON>``: fork a process that sets ``env``
  (``TENANTRY_*`` settings) in its environment, sends its output to the log
  file and calls ``core.cli.main(["run", "--port", <port>])``; from there on
  it is ``tenantry run``. Answers its pid.
* ``status <pid>``: ``running``, or its exit status as ``os.waitstatus_to_exitcode``
  gives it (``-15`` for SIGTERM).

Importing the runtime takes seconds of CPU, and the failover test starts
seven runtime processes; forked children start at the lifespan start-up
instead. Nothing has run an event loop or started a thread before the fork.
Signals go straight to the children's pids.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

import uvicorn  # noqa: F401  (what ``tenantry run`` imports, imported before the forks)

import core.cli
import core.http.app
import core.http.serving
import core.runtime.logging
import core.runtime.settings

_exited: dict[int, int] = {}


def _reap(signum: int, frame: object) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _exited[pid] = os.waitstatus_to_exitcode(status)


def _run(port: str, log_path: str, env: dict[str, str]) -> int:
    pid = os.fork()
    if pid:
        return pid
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.environ.update(env)
        code = core.cli.main(["run", "--port", port])
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    """Answer commands until stdin closes."""
    signal.signal(signal.SIGCHLD, _reap)
    for line in sys.stdin:
        command, _, rest = line.strip().partition(" ")
        if command == "run":
            port, log_path, env = rest.split(" ", 2)
            answer = str(_run(port, log_path, json.loads(env)))
        elif command == "status":
            pid = int(rest)
            answer = str(_exited[pid]) if pid in _exited else "running"
        else:
            answer = f"error unknown command {command!r}"
        print(answer, flush=True)


if __name__ == "__main__":
    main()
