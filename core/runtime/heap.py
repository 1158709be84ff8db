"""Garbage-collector policy of a runtime process.

A runtime holds a large heap that lives as long as the process (aiogram's
pydantic models, Litestar, every tenant's bot, dispatcher and routers: about
250 000 objects with one tenant) and handles updates that allocate many
short-lived objects. With CPython's default thresholds, a generation-0
collection runs every 700 net allocations and every full collection walks the
whole heap (about 0.3 s each on the benchmark machine): together they cost
about as much CPU per update as parsing the update (``docs/benchmarks.md#webhook``).
So the policy:

* collects once and moves every surviving object to the permanent generation
  with :func:`gc.freeze` (https://docs.python.org/3/library/gc.html#gc.freeze),
  so later collections never traverse it again; objects are still freed by
  reference counting as usual. It does so before the tenants start (the
  imports' heap: a start of 10,000 tenants otherwise ran half a dozen full
  collections over it, about 1 s) and once more when they have started
  (:meth:`HeapPolicy.settle`: only what the start allocated is walked);
* raises the generation-0 threshold (``TENANTRY_GC_GEN0_THRESHOLD``, default
  10 000 net allocations), so young collections run less often; the
  generation-1 and -2 thresholds stay CPython's.

Frozen objects that become cyclic garbage are never collected, and a tenant
that is swapped or removed leaves exactly that behind (its dispatcher and
middlewares refer to each other). :meth:`HeapPolicy.tenant_retired` therefore
unfreezes, collects and freezes again :data:`REFREEZE_DELAY_SECONDS` after the
last retirement (one pause of a full collection per burst of changes, as
CPython would take on its own from time to time).

The policy is process-wide: ``tenantry run`` enables it (``TENANTRY_GC_FREEZE``,
default on); a runtime embedded in another process (the pytest fixture) leaves
the collector alone unless asked, and :meth:`HeapPolicy.restore` undoes it on
shutdown.
"""

from __future__ import annotations

import asyncio
import gc
import time

import structlog

__all__ = ["DEFAULT_GEN0_THRESHOLD", "REFREEZE_DELAY_SECONDS", "HeapPolicy"]

log = structlog.get_logger("tenantry.heap")

DEFAULT_GEN0_THRESHOLD = 10_000
REFREEZE_DELAY_SECONDS = 2.0


class HeapPolicy:
    """Freezes the runtime's long-lived heap and tunes generation 0 (see the module docstring).

    Args:
        enabled: apply the policy; when False every method does nothing.
        gen0_threshold: net allocations between generation-0 collections.
        refreeze_delay: seconds after the last tenant retirement before the
            old tenants' objects are collected and the heap frozen again.
    """

    def __init__(
        self,
        enabled: bool,
        gen0_threshold: int = DEFAULT_GEN0_THRESHOLD,
        refreeze_delay: float = REFREEZE_DELAY_SECONDS,
    ):
        self.enabled = enabled
        self.gen0_threshold = gen0_threshold
        self.refreeze_delay = refreeze_delay
        self._saved_thresholds: tuple[int, int, int] | None = None
        self._refreeze: asyncio.TimerHandle | None = None
        self._settled = asyncio.Event()
        self._settled.set()

    def apply(self) -> None:
        """Collect, freeze the survivors and raise the generation-0 threshold (before the tenants start)."""
        if not self.enabled:
            return
        if self._saved_thresholds is None:
            self._saved_thresholds = gc.get_threshold()
        _, gen1, gen2 = self._saved_thresholds
        gc.set_threshold(self.gen0_threshold, gen1, gen2)
        self._freeze()

    def settle(self) -> None:
        """Collect and freeze what was allocated since :meth:`apply` (once the tenants have started).

        The heap frozen already is not walked again; a later retirement
        (:meth:`tenant_retired`) unfreezes and collects all of it.
        """
        if not self.enabled or self._saved_thresholds is None:
            return
        started = time.perf_counter()
        collected = gc.collect()
        gc.freeze()
        log.info(
            "heap_frozen",
            collected=collected,
            frozen=gc.get_freeze_count(),
            pause_seconds=round(time.perf_counter() - started, 3),
        )

    def tenant_retired(self) -> None:
        """A tenant was swapped or removed: collect its objects a moment later."""
        if not self.enabled or self._saved_thresholds is None:
            return
        if self._refreeze is not None:
            self._refreeze.cancel()
        self._settled.clear()
        self._refreeze = asyncio.get_running_loop().call_later(self.refreeze_delay, self._freeze)

    async def settled(self) -> None:
        """Wait until no collection of retired tenants is pending."""
        await self._settled.wait()

    def restore(self) -> None:
        """Undo the policy: unfreeze the heap and put CPython's thresholds back (on shutdown)."""
        if self._refreeze is not None:
            self._refreeze.cancel()
            self._refreeze = None
        if self._saved_thresholds is not None:
            gc.unfreeze()
            gc.set_threshold(*self._saved_thresholds)
            self._saved_thresholds = None
        self._settled.set()

    def _freeze(self) -> None:
        self._refreeze = None
        started = time.perf_counter()
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        self._settled.set()
        log.info(
            "heap_frozen",
            collected=collected,
            frozen=gc.get_freeze_count(),
            pause_seconds=round(time.perf_counter() - started, 3),
        )
