"""HTTP load of the benchmarks (via ``_common``): in this process, or in a spawned one.

:func:`post_all` posts bodies from this process (a :class:`LoadResult`).
:class:`SpawnedRun` runs one coroutine function in a spawned Python process
on uvloop with the runtime's garbage-collector policy (a load generator, or
a raw-insert baseline), and :func:`http_load` is the load such a process can
send. Everything talks to servers on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Awaitable, Callable, Sequence

import aiohttp


class LoadResult:
    """Outcome of one load run.

    Attributes:
        sent: requests posted.
        seconds: wall time from the first request to the last answer.
        errors: answers that were not HTTP 200, or failed connections, by reason.
    """

    def __init__(self, sent: int, seconds: float, errors: dict[str, int]):
        self.sent = sent
        self.seconds = seconds
        self.errors = errors

    @property
    def per_second(self) -> float:
        """Requests answered per second, errors included."""
        return self.sent / self.seconds if self.seconds else 0.0


async def post_all(
    session: aiohttp.ClientSession,
    requests: Sequence[tuple[str, bytes, dict[str, str]]],
    concurrency: int,
) -> LoadResult:
    """POST every ``(url, body, headers)`` with ``concurrency`` workers; wait for each answer.

    Each worker takes the next request as soon as its previous one was answered
    (closed loop), so the rate measured is what the server sustains at that
    many requests in flight.
    """
    pending = iter(requests)
    errors: dict[str, int] = {}

    async def worker() -> None:
        for url, body, headers in pending:
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        reason = f"HTTP {response.status}"
                        errors[reason] = errors.get(reason, 0) + 1
            except (TimeoutError, aiohttp.ClientError) as exc:
                reason = type(exc).__name__
                errors[reason] = errors.get(reason, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoadResult(len(requests), time.perf_counter() - started, errors)


class SpawnedRun:
    """Runs ``target(go, *args)`` in a spawned process on uvloop; the parent says when to go.

    ``target`` is an async function importable by the child (module level in
    the benchmark script or a module): it prepares (connects, warms up), then
    ``await go()`` and runs its measured part, and returns a picklable result.
    ``go()`` tells the parent the child is ready, applies the runtime's
    garbage-collector policy (:class:`core.runtime.heap.HeapPolicy`, as
    ``tenantry run`` does once its tenants started: collect, freeze, raise the
    generation-0 threshold) and waits for :meth:`run`. So a load generator
    or a baseline gets a process, a core and an event loop of its own, like
    the server under test.

    Args:
        target: ``async def target(go, *args) -> result``.
        args: picklable arguments.
    """

    def __init__(self, target: Callable[..., Awaitable[object]], *args: object):
        context = multiprocessing.get_context("spawn")
        self._pipe, child_end = context.Pipe()
        self.process = context.Process(
            target=_spawned_main, args=(child_end, target, args), daemon=True
        )
        self.process.start()
        child_end.close()

    async def ready(self, timeout: float = 120.0) -> None:
        """Wait until the child prepared and waits for :meth:`run`.

        Raises:
            RuntimeError: the child failed or exited before it was ready.
        """
        message = await self._receive(timeout)
        if message != "ready":
            raise RuntimeError(f"spawned run failed before it was ready: {message}")

    async def run(self, timeout: float = 3600.0) -> object:
        """Let the child run its measured part; return its result.

        Raises:
            RuntimeError: the child raised (its traceback is in the message).
        """
        self._pipe.send("go")
        kind, value = await self._receive(timeout)
        self.process.join(timeout=30)
        if kind == "error":
            raise RuntimeError(f"spawned run failed:\n{value}")
        return value

    def stop(self) -> None:
        """Kill the child if it still runs (after a failure on the parent's side)."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self._pipe.close()

    async def _receive(self, timeout: float) -> object:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # poll() with a short wait in a thread: the parent's loop keeps serving meanwhile.
        while not await loop.run_in_executor(None, self._pipe.poll, 0.2):
            if not self.process.is_alive() and not self._pipe.poll():
                raise RuntimeError(f"spawned run exited with {self.process.exitcode}")
            if loop.time() > deadline:
                raise RuntimeError(f"spawned run sent nothing within {timeout:.0f} s")
        return self._pipe.recv()


def _spawned_main(pipe: object, target: Callable[..., Awaitable[object]], args: tuple) -> None:
    import traceback

    import uvloop

    from core.runtime.heap import HeapPolicy

    async def go() -> None:
        pipe.send("ready")  # type: ignore[attr-defined]
        HeapPolicy(enabled=True).apply()
        loop = asyncio.get_running_loop()
        while not await loop.run_in_executor(None, pipe.poll, 0.2):  # type: ignore[attr-defined]
            pass
        pipe.recv()  # type: ignore[attr-defined]

    try:
        result = uvloop.run(target(go, *args))
    except BaseException:
        pipe.send(("error", traceback.format_exc()))  # type: ignore[attr-defined]
        raise
    pipe.send(("ok", result))  # type: ignore[attr-defined]


async def http_load(
    go: Callable[[], Awaitable[None]],
    base_url: str,
    requests: Sequence[tuple[str, str, bytes, dict[str, str]]],
    concurrency: int,
    rate: float | None = None,
    expect: int = 200,
) -> dict[str, object]:
    """Send ``(method, path, body, headers)`` requests to ``base_url``; a :class:`SpawnedRun` target.

    Closed loop when ``rate`` is None: ``concurrency`` workers, each sending
    its next request when the previous one was answered; latencies count from
    each send. Open loop otherwise: each request starts at its scheduled
    moment (``rate`` per second) whatever the answers do, and its latency
    counts from that moment, so queueing in the server is not hidden.

    Returns:
        ``{"seconds": first send to last answer, "latencies": seconds per
        request, "errors": {reason: count}}``; an answer other than
        ``expect`` is an error by status.
    """
    connector = aiohttp.TCPConnector(limit=0)
    errors: dict[str, int] = {}
    latencies = [0.0] * len(requests)
    async with aiohttp.ClientSession(base_url, connector=connector) as session:

        async def send(index: int, since: float) -> None:
            method, path, body, headers = requests[index]
            try:
                async with session.request(method, path, data=body, headers=headers) as answer:
                    await answer.read()
                    if answer.status != expect:
                        errors[f"HTTP {answer.status}"] = errors.get(f"HTTP {answer.status}", 0) + 1
            except (TimeoutError, aiohttp.ClientError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            latencies[index] = time.perf_counter() - since

        async def connect() -> None:
            async with session.get("/health") as answer:
                await answer.read()

        # Open the connections before the clock starts.
        await asyncio.gather(*(connect() for _ in range(concurrency)))
        await go()
        started = time.perf_counter()
        if rate is None:
            pending = iter(range(len(requests)))

            async def worker() -> None:
                for index in pending:
                    await send(index, time.perf_counter())

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        else:
            tasks = []
            for index in range(len(requests)):
                due = started + index / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(send(index, due)))
            await asyncio.gather(*tasks)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "latencies": latencies, "errors": errors}
