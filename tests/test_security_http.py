"""The HTTP server: its deadline for request heads, and ``tenantry run``'s limits.

A slow-header ("slowloris") client sends a request line and then a header
byte every few seconds: without a deadline it holds a connection, and a
``limit_concurrency`` slot, as long as it likes. The first tests serve through
uvicorn with the protocol ``tenantry run`` uses (``core.http.serving``) and
talk raw HTTP to it; the last runs ``tenantry run`` itself: slow heads and
bodies, idle keep-alive connections and the concurrency limit.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
import websockets

from core.http.serving import HEADER_TIMEOUT_SECONDS, header_deadline_protocol, uvicorn_options
from core.runtime.settings import RuntimeSettings
from core.testing.plugin import free_port

DEADLINE = 0.5  # seconds given to a request head in these tests


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``GET /`` answers ``ok``; a WebSocket echoes each text message."""
    if scope["type"] == "http":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message["text"]})


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, int]]:
    """uvicorn serving :func:`echo_app` with a head deadline of :data:`DEADLINE` s."""
    port = free_port()
    config = uvicorn.Config(
        echo_app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="off",
        access_log=False,
        http=header_deadline_protocol(DEADLINE),
    )
    serving = uvicorn.Server(config)
    task = asyncio.create_task(serving.serve())
    while not serving.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.02)
    try:
        yield "127.0.0.1", port
    finally:
        serving.should_exit = True
        await asyncio.wait_for(task, 10)


async def answer_after(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """The whole answer up to the server's close, and the seconds it took."""
    started = time.monotonic()
    answer = await asyncio.wait_for(reader.read(), 10)  # returns at EOF
    return answer, time.monotonic() - started


async def test_a_head_that_trickles_in_is_cut_with_408(server):
    host, port = server
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: ")
    await writer.drain()
    started = time.monotonic()

    async def trickle() -> None:  # one header byte every 0.1 s: never idle, never done
        try:
            while True:
                await asyncio.sleep(0.1)
                writer.write(b"a")
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    trickling = asyncio.create_task(trickle())
    try:
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        trickling.cancel()
        writer.close()
    seconds = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert b"connection: close" in answer.lower()
    assert answer.endswith(f"the request head did not arrive within {DEADLINE:g} s".encode())
    assert DEADLINE * 0.8 <= seconds < DEADLINE + 1, seconds


async def test_a_connection_that_sends_nothing_is_closed(server):
    host, port = server
    reader, writer = await asyncio.open_connection(host, port)
    answer, seconds = await answer_after(reader)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert seconds < DEADLINE + 1, seconds


async def test_complete_heads_keep_alive_and_a_slow_second_head_is_cut(server):
    host, port = server
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for _ in range(3):  # prompt requests on one connection, spread over twice the deadline
            writer.write(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200"), head
            assert await asyncio.wait_for(reader.readexactly(2), 5) == b"ok"
            await asyncio.sleep(DEADLINE * 0.7)
        writer.write(b"GET / HTTP/1.1\r\nHo")  # the fourth head stops half-way
        await writer.drain()
        answer, seconds = await answer_after(reader)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert seconds < DEADLINE + 1, seconds


async def test_a_websocket_outlives_the_head_deadline(server):
    host, port = server
    async with websockets.connect(f"ws://{host}:{port}/ws", open_timeout=5) as socket:
        await asyncio.sleep(DEADLINE * 3)
        await socket.send("still here")
        assert await asyncio.wait_for(socket.recv(), 5) == "still here"


def test_the_server_options_carry_the_deadline_and_0_turns_it_off(monkeypatch):
    options = uvicorn_options(RuntimeSettings.from_env())
    config = uvicorn.Config(echo_app, **options)
    config.load()
    assert config.http_protocol_class is options["http"]
    assert options["http"].__name__ == "HeaderDeadline"
    assert HEADER_TIMEOUT_SECONDS == 10.0
    unchanged = uvicorn_options(RuntimeSettings.from_env(), header_timeout=0)["http"]
    assert unchanged.__name__ in ("HttpToolsProtocol", "H11Protocol")
    # TENANTRY_HTTP_HEADER_TIMEOUT_SECONDS is the setting; 0 turns it off.
    monkeypatch.setenv("TENANTRY_HTTP_HEADER_TIMEOUT_SECONDS", "0")
    off = RuntimeSettings.from_env()
    assert off.http_header_timeout_seconds == 0
    assert uvicorn_options(off)["http"].__name__ in ("HttpToolsProtocol", "H11Protocol")
    monkeypatch.setenv("TENANTRY_HTTP_HEADER_TIMEOUT_SECONDS", "2.5")
    short = RuntimeSettings.from_env()
    assert short.http_header_timeout_seconds == 2.5
    assert uvicorn_options(short)["http"].__name__ == "HeaderDeadline"


# ------------------------------------------------------------ tenantry run


async def _wait_healthy(url: str, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        while time.monotonic() < deadline:
            assert process.returncode is None, "tenantry run exited"
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("tenantry run did not become healthy")


async def test_tenantry_run_times_out_slow_heads_and_bodies_idle_connections_and_limits_concurrency(
    tenantry, bot_api
):
    tenantry.add_tenant("filin")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "TENANTRY_DATABASE_URL": tenantry.database_url,
        "TENANTRY_REDIS_URL": tenantry.redis_url,
        "TENANTRY_TENANTS_DIR": str(tenantry.tenants_dir),
        "TENANTRY_DATA_DIR": str(tenantry.data_dir),
        "TENANTRY_BOT_API_URL": bot_api.base_url,
        "TENANTRY_SECRET_KEY": tenantry.secret_key,
        "TENANTRY_ADMIN_TOKEN": tenantry.admin_token,
        "TENANTRY_QUEUE": f"tenantry-test-{tenantry.run_id}",
        "TENANTRY_WATCH": "0",
        "TENANTRY_RUN_JOBS": "0",
        "TENANTRY_GC_FREEZE": "0",
        "TENANTRY_DB_POOL_MIN": "1",
        "TENANTRY_DB_POOL_MAX": "4",
        "TENANTRY_HTTP_BODY_TIMEOUT_SECONDS": "0.5",
        "TENANTRY_HTTP_KEEP_ALIVE_SECONDS": "1",
        "TENANTRY_HTTP_LIMIT_CONCURRENCY": "4",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "core.cli",
        "run",
        "--port",
        str(port),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await _wait_healthy(url, process)
        host = "127.0.0.1"
        # A head that stops half-way: cut after the default 10 s (checked below).
        slow_reader, slow_writer = await asyncio.open_connection(host, port)
        slow_writer.write(b"GET /health HTTP/1.1\r\nHost: te")
        await slow_writer.drain()
        slow_started = time.monotonic()

        # A body that stops arriving: 408 once the body timeout passes.
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST /admin/tenants HTTP/1.1\r\nHost: test\r\n"
            + f"Authorization: Bearer {tenantry.admin_token}\r\n".encode()
            + b"Content-Type: application/yaml\r\nContent-Length: 100\r\n\r\nid: fil"
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 408"), head
        writer.close()

        # An idle keep-alive connection is closed by the server after its timeout.
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200"), head
        rest = await asyncio.wait_for(reader.read(), 10)  # returns at EOF
        assert rest.endswith(b"}")
        writer.close()

        cut = await asyncio.wait_for(slow_reader.read(), 15)  # returns at EOF
        slow_writer.close()
        assert cut.startswith(b"HTTP/1.1 408 Request Timeout"), cut
        assert 9 <= time.monotonic() - slow_started < 14

        # Over TENANTRY_HTTP_LIMIT_CONCURRENCY open connections, new requests get 503.
        idle = [await asyncio.open_connection(host, port) for _ in range(4)]
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            busy = await client.get("/health")
            assert busy.status_code == 503, busy.text
            for _, idle_writer in idle:
                idle_writer.close()
            deadline = time.monotonic() + 10
            while (await client.get("/health")).status_code != 200:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()


@pytest.mark.parametrize("enabled", [False, True])
async def test_websocket_compression_is_off_unless_the_setting_turns_it_on(monkeypatch, enabled):
    if enabled:
        monkeypatch.setenv("TENANTRY_HTTP_WS_COMPRESSION", "1")
    port = free_port()
    options = uvicorn_options(RuntimeSettings.from_env())
    config = uvicorn.Config(
        echo_app, host="127.0.0.1", port=port, log_config=None, lifespan="off", **options
    )
    serving = uvicorn.Server(config)
    task = asyncio.create_task(serving.serve())
    while not serving.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.02)
    try:
        # The client offers permessage-deflate, as browsers do.
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", compression="deflate") as ws:
            offered = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            await ws.send("hello")
            assert await asyncio.wait_for(ws.recv(), 5) == "hello"
        assert ("permessage-deflate" in offered) is enabled, offered
    finally:
        serving.should_exit = True
        await asyncio.wait_for(task, 10)
