"""Helpers shared by the benchmarks: child processes, HTTP load, cleanup, tables.

Everything here talks to servers on 127.0.0.1 only. Child processes are
started by :class:`Child`, which remembers when it was spawned (for start-up
timings), keeps its output in a log file and stops exactly the process it
started. :class:`SpawnedRun` runs one coroutine function in a spawned Python
process on uvloop with the runtime's garbage-collector policy (a load
generator, or a raw-insert baseline), and :func:`http_load` is the load such
a process can send. :func:`served_tenant`, :func:`raw_inserts` and
:func:`creates_report` are the API benchmarks' (booking, orders): one tenant
served in this process, the load and a raw-insert baseline each in a
process of its own, and their report.

They live in private modules, re-exported here so the scripts import them
from ``_common``: ``_common_procs`` (child processes, measurements of them,
cleanup), ``_common_load`` (HTTP load, spawned runs), ``_common_stats``
(percentiles, tables, profiles) and ``_common_api`` (the API benchmarks').
"""

from __future__ import annotations

from _common_api import ServedTenant, bench_servers, creates_report, raw_inserts, served_tenant
from _common_load import LoadResult, SpawnedRun, http_load, post_all
from _common_procs import PYTHON as PYTHON
from _common_procs import (
    Child,
    child_env,
    cpu_seconds,
    delete_redis_keys,
    drop_schemas,
    free_port,
    own_cpu_seconds,
    rss_mb,
    wait_http,
)
from _common_stats import Profile, format_table, median, nearest_rank

__all__ = [
    "Child",
    "LoadResult",
    "Profile",
    "ServedTenant",
    "SpawnedRun",
    "bench_servers",
    "child_env",
    "cpu_seconds",
    "creates_report",
    "delete_redis_keys",
    "drop_schemas",
    "format_table",
    "free_port",
    "http_load",
    "median",
    "nearest_rank",
    "own_cpu_seconds",
    "post_all",
    "raw_inserts",
    "rss_mb",
    "served_tenant",
    "wait_http",
]
