"""A client that delivers updates to a webhook as Telegram does, for the failover tests.

Used through ``haproxy_cluster`` (which re-exports these) by
``test_failover_haproxy`` and ``test_failover_storage``.
:class:`TelegramSender` posts updates to ``/webhook/<tenant>`` with the
secret token header and re-sends each one that got no 200 (connection
error, timeout, 5xx) until it gets one, recording every answer as an
:class:`Attempt`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt of an update.

    Attributes:
        update_id: the update.
        status: the HTTP status, None when no answer came (``error`` says why).
        error: the httpx exception's class name for a connection error or timeout.
        retry_after: the ``Retry-After`` header of the answer, if any.
        code: the problem body's ``code`` of an error answer (``webhook.retry_later``
            from a runtime, ``lb.no_runtime`` from haproxy), if any.
    """

    update_id: int
    status: int | None
    error: str | None = None
    retry_after: str | None = None
    code: str | None = None


@dataclass
class TelegramSender:
    """Delivers updates to one tenant's webhook the way Telegram does.

    A new update every ``1 / rate`` seconds, each with its own update id and
    user; at most ``connections`` requests at once (Bot API: setWebhook
    ``max_connections``, default 40). An update is re-sent
    ``resend_delay`` seconds after every attempt that got no 200, until one
    does. :attr:`outstanding` holds the update ids with a request in flight
    right now.

    Attributes:
        url: the webhook URL (``<base>/webhook/<tenant>``).
        secret: the tenant's ``X-Telegram-Bot-Api-Secret-Token``.
        build_update: ``user_id -> Update dict`` (a new update id each call).
        rate: new updates per second.
        connections: concurrent requests at most.
        resend_delay: seconds between attempts of one update.
        timeout: seconds before an attempt without an answer is given up.
    """

    url: str
    secret: str
    build_update: Callable[[int], dict[str, Any]]
    rate: float = 100.0
    connections: int = 40
    resend_delay: float = 0.1
    timeout: float = 5.0
    first_user_id: int = 7_000_000_000
    attempts: list[Attempt] = field(default_factory=list)
    users: dict[int, int] = field(default_factory=dict)  # update_id -> user_id
    acknowledged: set[int] = field(default_factory=set)
    outstanding: set[int] = field(default_factory=set)
    _deliveries: set[asyncio.Task[None]] = field(default_factory=set)
    _producing: asyncio.Task[None] | None = None
    _client: httpx.AsyncClient | None = None
    _slots: asyncio.Semaphore | None = None
    _answered: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def start(self) -> None:
        """Start sending new updates."""
        self._client = httpx.AsyncClient(
            timeout=self.timeout,
            limits=httpx.Limits(max_connections=self.connections),
            headers={"X-Telegram-Bot-Api-Secret-Token": self.secret},
        )
        self._slots = asyncio.Semaphore(self.connections)
        self._producing = asyncio.create_task(self._produce())

    async def burst(self, count: int) -> None:
        """Send ``count`` new updates at once, as Telegram does with a backlog.

        Returns once all of them are in flight (or the connection limit is reached).
        """
        for _ in range(count):
            self._new_update()
        deadline = time.monotonic() + 5
        while len(self.outstanding) < min(count, self.connections):
            assert time.monotonic() < deadline, "the burst did not get under way"
            await asyncio.sleep(0.001)

    async def wait_acknowledged(self, count: int) -> None:
        """Wait until ``count`` updates in all got their 200."""
        async with self._answered:
            await self._answered.wait_for(lambda: len(self.acknowledged) >= count)

    async def stop_producing(self) -> None:
        """Send no new updates; the pending ones are still re-sent."""
        if self._producing is not None:
            self._producing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._producing

    async def finish(self, timeout: float) -> None:
        """Stop producing and wait until every update got its 200.

        Raises:
            AssertionError: some updates still had no 200 after ``timeout`` seconds.
        """
        await self.stop_producing()
        try:
            async with asyncio.timeout(timeout):
                while self._deliveries:
                    await asyncio.gather(*self._deliveries)
        except TimeoutError:
            unanswered = sorted(set(self.users) - self.acknowledged)
            raise AssertionError(f"updates without a 200 after {timeout} s: {unanswered}") from None
        finally:
            await self.close()

    async def close(self) -> None:
        """Give up: stop producing and re-sending, close the connections (test teardown)."""
        await self.stop_producing()
        deliveries = list(self._deliveries)
        for task in deliveries:
            task.cancel()
        await asyncio.gather(*deliveries, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def _produce(self) -> None:
        started = time.monotonic()
        sent = 0
        while True:
            # Paced on the clock: a slow attempt does not slow the offered load.
            sent += 1
            self._new_update()
            await asyncio.sleep(max(0.0, started + sent / self.rate - time.monotonic()))

    def _new_update(self) -> None:
        user_id = self.first_user_id + len(self.users) + 1
        update = self.build_update(user_id)
        self.users[update["update_id"]] = user_id
        task = asyncio.create_task(self._deliver(update))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, update: dict[str, Any]) -> None:
        update_id = update["update_id"]
        while True:
            assert self._slots is not None and self._client is not None
            async with self._slots:
                self.outstanding.add(update_id)
                try:
                    attempt = await self._attempt(update)
                finally:
                    self.outstanding.discard(update_id)
            self.attempts.append(attempt)
            if attempt.status == 200:
                self.acknowledged.add(update_id)
                async with self._answered:
                    self._answered.notify_all()
                return
            await asyncio.sleep(self.resend_delay)

    async def _attempt(self, update: dict[str, Any]) -> Attempt:
        assert self._client is not None
        update_id = update["update_id"]
        try:
            response = await self._client.post(self.url, json=update)
        except httpx.TransportError as exc:
            return Attempt(update_id, None, error=type(exc).__name__)
        code = None
        if response.status_code != 200:
            with contextlib.suppress(ValueError, AttributeError):
                code = response.json().get("code")
        return Attempt(
            update_id, response.status_code, retry_after=response.headers.get("retry-after"),
            code=code,
        )  # fmt: skip
