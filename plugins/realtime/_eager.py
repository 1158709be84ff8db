"""Run a coroutine at once, in the caller, until it first has to wait (an eager task).

The hub hands each event's message to every connection of the runtime in one
loop. A task per connection and event would cost a wake-up of the event
loop each (about a sixth of runtime B's py-spy samples at 500 connections,
in the event loop's Event and the writer task); most sends never
wait (uvicorn writes the frame to the socket's transport and returns), so
the send runs right away, and only one that must wait (the client's TCP
window is full and uvicorn paused writing) becomes a task that finishes it.

Python 3.12 has this as ``asyncio.eager_task_factory``; on 3.11 the
coroutine is stepped by hand until its first suspension, then handed to a
task that waits for what it suspended on and steps it on, as a task would.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

__all__ = ["start"]


def start(work: Coroutine[Any, Any, None]) -> asyncio.Future[None] | None:
    """Run ``work`` until it finishes or must wait.

    Returns:
        None when it finished; otherwise the task finishing it.

    Raises:
        Exception: what ``work`` raised before it first had to wait.
    """
    if sys.version_info >= (3, 12):
        task = asyncio.eager_task_factory(asyncio.get_running_loop(), work)
        if not task.done():
            return task
        task.result()  # raises what the work raised
        return None
    try:
        waiting_on = work.send(None)
    except StopIteration:
        return None
    return asyncio.ensure_future(_finish(work, waiting_on))


async def _finish(work: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    """Step ``work`` on, from where it suspended on ``waiting_on`` (a future, or None for a bare yield)."""
    while True:
        try:
            if waiting_on is None:
                await asyncio.sleep(0)
            else:
                # What asyncio's Task does with a future a coroutine yielded.
                waiting_on._asyncio_future_blocking = False
                await asyncio.wait((waiting_on,))
        except asyncio.CancelledError:
            if waiting_on is not None:
                waiting_on.cancel()
            work.close()
            raise
        try:
            waiting_on = work.send(None)
        except StopIteration:
            return
